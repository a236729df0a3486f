"""The documentation stays true to the code: generated parts, the reference, links, diagrams.

``python tests/test_docs.py`` rewrites every generated part (``docs/.generated/``, the figures
quoted from the benchmark results) from the code and ``docs/assets/bench/*.json``.
"""

from __future__ import annotations

import ast
import html
import html.parser
import importlib
import importlib.util
import json
import os
import pathlib
import pkgutil
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _docs_gen as gen  # the generators live next to this file

ROOT = gen.ROOT
DOCS = gen.DOCS
REFERENCE = DOCS / "reference"
PUBLIC_MODULES = gen.PUBLIC_MODULES


# --------------------------------------------------------------------------- generated parts


@pytest.mark.parametrize("path", sorted(gen.generated()), ids=lambda path: path.name)
def test_generated_part_is_current(path: pathlib.Path) -> None:
    expected = gen.generated()[path]
    assert path.exists(), f"{path} is missing: run python tests/test_docs.py"
    assert path.read_text() == expected, f"{path} is stale: run python tests/test_docs.py"


def test_every_generated_part_is_included_by_a_page() -> None:
    text = "\n".join(page.read_text() for page in gen.pages())
    unused = [
        path.relative_to(ROOT).as_posix()
        for path in gen.generated()
        if f'--8<-- "{path.relative_to(ROOT).as_posix()}"' not in text
    ]
    assert unused == [], f"no page includes {unused}"


def test_every_setting_is_in_the_configuration_tables_once() -> None:
    from aiomt5 import MT5Settings

    table = gen.settings_table()
    for name in MT5Settings.model_fields:
        assert table.count(f"| `{name}`<br>`MT5_{name.upper()}` |") == 1, name
    assert '--8<-- "docs/.generated/settings.md"' in (DOCS / "configuration.md").read_text()


def test_a_setting_without_a_topic_fails_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = dict(gen.SETTING_GROUPS)
    groups["Simulator"] = groups["Simulator"][:-1]  # sim_hold_gil loses its topic
    monkeypatch.setattr(gen, "SETTING_GROUPS", groups)
    with pytest.raises(ValueError, match="sim_hold_gil"):
        gen.settings_table()


def test_documented_defaults_are_the_codes() -> None:
    from aiomt5 import MT5Settings

    table = gen.settings_table()
    assert "| `call_timeout`<br>`MT5_CALL_TIMEOUT` | `30.0` |" in table
    assert MT5Settings.model_fields["call_timeout"].default == 30.0


def test_the_blocking_page_lists_every_blocking_twin() -> None:
    from aiomt5 import AsyncMT5Connector, MT5Connector

    table = gen.blocking_methods_table()
    twins = [
        name
        for name, member in vars(MT5Connector).items()
        if getattr(member, "__wrapped__", None) is getattr(AsyncMT5Connector, name, 0)
    ]
    assert {"call_many", "buy", "get_rates", "stream_bars", "disconnect"} <= set(twins)
    for name in twins:
        assert f"| `mt5.{name}(...)` | [`AsyncMT5Connector.{name}`]" in table, name
    page = (REFERENCE / "blocking.md").read_text()
    assert '--8<-- "docs/.generated/blocking-methods.md"' in page


def test_the_error_tree_has_every_error_and_its_bases() -> None:
    import aiomt5

    tree = gen.error_tree()
    for name in aiomt5.__all__:
        member = getattr(aiomt5, name)
        if isinstance(member, type) and issubclass(member, aiomt5.MT5Error):
            assert name in tree
            for base in member.__bases__:
                if base is not Exception:
                    assert re.search(rf"\b{base.__name__}\b(:::builtin)? -\.?-?> {name}\b", tree)


def test_quoted_figures_are_the_benchmarks() -> None:
    stale = [page.name for page in gen.pages() if gen.requote(page.read_text()) != page.read_text()]
    assert stale == [], (
        f"figures differ from docs/assets/bench: run python tests/test_docs.py {stale}"
    )


def test_an_unknown_figure_is_an_error() -> None:
    with pytest.raises(KeyError, match="no benchmark figure"):
        gen.requote("about 12<!-- bench:nothing.here -->")


def _charts() -> Any:
    spec = importlib.util.spec_from_file_location("bench_charts", ROOT / "bench" / "charts.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_charts_are_drawn_from_the_results_and_shown() -> None:
    charts = _charts()
    page = (DOCS / "benchmarks.md").read_text()
    for name, draw in charts.CHARTS.items():
        path = gen.BENCH_RESULTS / name
        assert path.read_text() == draw(), f"{name} is stale: run python bench/charts.py"
        assert f"(assets/bench/{name})" in page, f"docs/benchmarks.md does not show {name}"


def test_a_log_scale_chart_spans_decades() -> None:
    svg = _charts().bar_chart("t", [("a", [("x", 2.0), ("y", 150_000.0)])], unit="µs", log=True)
    for tick in ("1", "10", "100", "1,000", "10,000", "100,000", "1,000,000"):
        assert f">{tick}</text>" in svg
    assert "(log scale)" in svg


# --------------------------------------------------------------------------- the reference

DIRECTIVE = re.compile(r"^::: (?P<target>[\w.]+)", re.MULTILINE)


def documented() -> set[str]:
    return {
        m.group("target")
        for page in REFERENCE.glob("*.md")
        for m in DIRECTIVE.finditer(page.read_text())
    }


def missing_from_reference(targets: set[str]) -> list[str]:
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        missing += [
            f"{module_name}.{name}"
            for name in module.__all__
            if f"{module_name}.{name}" not in targets
        ]
    return missing


def test_every_public_name_is_in_the_reference() -> None:
    missing = missing_from_reference(documented())
    assert missing == [], f"add '::: NAME' for these to a page of docs/reference/: {missing}"


def test_a_missing_public_name_is_noticed() -> None:
    targets = documented()
    targets.discard("aiomt5.TradingSessions")
    assert missing_from_reference(targets) == ["aiomt5.TradingSessions"]


def test_a_missing_replay_name_is_noticed() -> None:
    targets = documented()
    targets.discard("aiomt5.replay.VirtualTimeLoop")
    assert missing_from_reference(targets) == ["aiomt5.replay.VirtualTimeLoop"]


def test_every_public_module_is_in_the_reference() -> None:
    import aiomt5

    public = {
        f"aiomt5.{info.name}"
        for info in pkgutil.iter_modules(aiomt5.__path__)
        if not info.name.startswith("_")
    }
    assert "aiomt5.replay" in public
    unlisted = sorted(public - set(PUBLIC_MODULES) - gen.UNLISTED_MODULES)
    assert unlisted == [], f"add {unlisted} to PUBLIC_MODULES in tests/_docs_gen.py"


def test_every_constant_is_in_the_reference() -> None:
    constants = importlib.import_module("aiomt5.constants")
    page = (REFERENCE / "constants.md").read_text()
    assert '--8<-- "docs/.generated/constants.md"' in page
    table = gen.constants_table()
    missing = [n for n in constants.__all__ if n != "CONSTANTS" and f"| `{n}` |" not in table]
    assert missing == []


def test_reference_pages_are_in_the_nav_and_name_no_private_module() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in REFERENCE.glob("*.md"):
        assert f"reference/{page.name}" in nav, page.name
        for target in DIRECTIVE.findall(page.read_text()):
            assert "._" not in target, f"{page.name} documents the private {target}"
    guides = "\n".join(p.read_text() for p in DOCS.glob("*.md") if p.name != "changelog.md")
    assert "aiomt5._" not in guides, "a guide names a private module: name the public one"


def test_every_page_links_the_public_names_it_mentions() -> None:
    unlinked = {
        page.relative_to(DOCS).as_posix(): sorted(
            {m.group("name") for _, m in gen.mentions(page.read_text())}
            - {m.group(1) for m in re.finditer(r"\[`([\w.]+)`\]\[", page.read_text())}
        )
        for page in gen.pages()
        if page.name not in gen.UNLINKED_PAGES
    }
    unlinked = {page: names for page, names in unlinked.items() if names}
    assert unlinked == {}, f"run python tests/test_docs.py to link them: {unlinked}"


def test_linking_a_page_links_each_name_once() -> None:
    page = "Use `MT5Settings` and `AsyncMT5Connector`; `MT5Settings` again.\n```\n`Trader`\n```\n"
    assert gen.link_first_mentions(page) == (
        "Use [`MT5Settings`][aiomt5.MT5Settings] and "
        "[`AsyncMT5Connector`][aiomt5.AsyncMT5Connector]; `MT5Settings` again."
        "\n```\n`Trader`\n```\n"
    )


def test_reference_examples_are_python() -> None:
    pages = [*REFERENCE.glob("*.md"), DOCS / "index.md"]
    for page in pages:
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL):
            compile(block, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def _examples() -> list[tuple[str, int, str]]:
    """``(page, index, source)`` of every Python example of the reference pages."""
    found = []
    for page in sorted(REFERENCE.glob("*.md")):
        blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)
        found += [(page.name, index, block) for index, block in enumerate(blocks)]
    return found


RUN_EXAMPLE = """
import ast, asyncio, sys
source = sys.stdin.read()
code = compile(source, sys.argv[1], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__"})
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


@pytest.mark.parametrize(
    ("page", "index", "source"), _examples(), ids=[f"{p}#{i}" for p, i, _ in _examples()]
)
def test_a_reference_example_runs_on_the_simulator(
    page: str, index: int, source: str, tmp_path: pathlib.Path
) -> None:
    # The simulator's clock starts on a Wednesday noon whatever the day: markets are open.
    env = {**os.environ, "MT5_SIM_START": "2026-03-04T12:00:00Z", "MT5_TESTING": "true"}
    if "def test_" in source:  # a test for the pytest plugin: run it as one
        (tmp_path / "test_example.py").write_text(source)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += ["-o", "asyncio_mode=auto", str(tmp_path / "test_example.py")]
    else:
        command = [sys.executable, "-c", RUN_EXAMPLE, f"{page}#{index}"]
    run = subprocess.run(
        command, input=source, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, f"docs/reference/{page} example {index}:\n{run.stderr[-3000:]}"


# --------------------------------------------------------------------------- example outputs

OUTPUT = re.compile(
    r"<!-- output of: python (?P<args>[^>]+?) -->\n.*?```text\n(?P<output>.*?)```", re.DOTALL
)
"""A page's example output: the marker, then (after the example, maybe) its ``text`` block."""


def shown_outputs() -> list[tuple[str, list[str], str]]:
    """``(page, command arguments, output)`` for every output a page shows."""
    return [
        (page.name, m.group("args").split(), m.group("output"))
        for page in gen.pages()
        for m in OUTPUT.finditer(page.read_text())
    ]


def test_the_home_and_bot_pages_show_their_examples_outputs() -> None:
    shown = {(page, args[0]) for page, args, _ in shown_outputs()}
    assert ("index.md", "examples/hello.py") in shown
    assert ("bot.md", "examples/bot.py") in shown
    assert '--8<-- "examples/bot.py"' in (DOCS / "bot.md").read_text()
    assert '--8<-- "examples/hello.py"' in (DOCS / "index.md").read_text()


@pytest.mark.parametrize(
    ("page", "args", "output"), shown_outputs(), ids=[f"{p}:{a[0]}" for p, a, _ in shown_outputs()]
)
def test_a_shown_output_is_what_the_example_prints(page: str, args: list[str], output: str) -> None:
    run = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == output, f"docs/{page} shows another output than {' '.join(args)} prints"


# --------------------------------------------------------------------------- the built site


class _Links(html.parser.HTMLParser):
    """Every ``id`` and every link (``href``/``src``) of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "a" and values.get("name"):
            self.ids.add(str(values["name"]))
        self.links.extend(str(values[name]) for name in ("href", "src") if values.get(name))


@pytest.fixture(scope="module")
def site() -> Iterator[pathlib.Path]:
    """The site built strict into a private folder (skipped without the docs extra)."""
    zensical = shutil.which("zensical", path=str(pathlib.Path(sys.executable).parent))
    if zensical is None:
        pytest.skip("zensical is not installed: pip install -e '.[docs]'")
    (ROOT / ".docs-tools").mkdir(exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="site-test-", dir=ROOT / ".docs-tools"))
    # Zensical wants the config and the output in the project: a private copy of the config.
    config = ROOT / f".mkdocs-test-{os.getpid()}.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text() + f"\nsite_dir: {work / 'site'}\n")
    try:
        run = subprocess.run(
            [zensical, "build", "--strict", "--clean", "-f", str(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        config.unlink()
    try:
        assert run.returncode == 0, run.stdout + run.stderr
        yield work / "site"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_no_broken_internal_link_or_anchor(site: pathlib.Path) -> None:
    pages: dict[pathlib.Path, _Links] = {}
    for path in site.rglob("*.html"):
        parser = _Links()
        parser.feed(path.read_text(errors="replace"))
        pages[path] = parser
    broken = []
    checked = 0
    base = urllib.parse.urlparse("https://aiomt5.readthedocs.io/en/latest/").path
    for path, parser in pages.items():
        for link in parser.links:
            url = urllib.parse.urlparse(link)
            if url.scheme or url.netloc or link.startswith(("mailto:", "data:", "javascript:")):
                continue
            if url.path.startswith("/"):  # root-absolute (404.html): under the versioned base
                if not url.path.startswith(base):
                    broken.append(f"{path.relative_to(site)}: {link} (outside {base})")
                    continue
                target = site / url.path[len(base) :]
            else:
                target = (path.parent / urllib.parse.unquote(url.path)) if url.path else path
            if target.is_dir() or not target.suffix:
                target = target / "index.html"
            checked += 1
            if not target.exists():
                broken.append(f"{path.relative_to(site)}: {link}")
            elif url.fragment and target.suffix == ".html":
                ids = pages[target.resolve()].ids if target.resolve() in pages else set()
                if target.resolve() not in pages:
                    found = _Links()
                    found.feed(target.read_text(errors="replace"))
                    ids = found.ids
                if urllib.parse.unquote(url.fragment) not in ids and url.fragment != "__skip":
                    broken.append(f"{path.relative_to(site)}: {link} (no such anchor)")
    assert checked > 1000
    assert broken == [], "\n".join(broken)


def test_sitemap_lists_every_page_under_the_versioned_url(site: pathlib.Path) -> None:
    sitemap = (site / "sitemap.xml").read_text()
    locations = set(re.findall(r"<loc>(.*?)</loc>", sitemap))
    for page in ["", "reference/connector/", "reference/errors/", "benchmarks/", "bot/"]:
        assert f"https://aiomt5.readthedocs.io/en/latest/{page}" in locations, page
    four_oh_four = (site / "404.html").read_text()
    assets = re.findall(r'(?:href|src)="(/[^"]*assets/[^"]*)"', four_oh_four)
    assert assets
    assert all(asset.startswith("/en/latest/assets/") for asset in assets)


def test_pages_have_previous_and_next_links(site: pathlib.Path) -> None:
    page = (site / "reference" / "connector" / "index.html").read_text()
    for mark in ('rel="prev"', 'rel="next"', "md-footer__link--prev", "md-footer__link--next"):
        assert mark in page


def test_the_connector_reference_shows_inherited_trading_methods(site: pathlib.Path) -> None:
    page = (site / "reference" / "connector" / "index.html").read_text()
    for name in ("buy", "sell", "order_send", "positions", "get_rates", "events"):
        assert f'id="aiomt5.AsyncMT5Connector.{name}"' in page, name


# --------------------------------------------------------------------------- diagrams

MERMAID = re.compile(r"^```mermaid\n(.*?)^```", re.MULTILINE | re.DOTALL)


def diagrams() -> list[tuple[str, str]]:
    """``(where, source)`` of every Mermaid diagram of the docs, generated ones included."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for index, source in enumerate(MERMAID.findall(page.read_text())):
            found.append((f"{page.relative_to(DOCS)}#{index + 1}", source))
    return found


def test_the_guides_that_explain_behaviour_over_time_have_diagrams() -> None:
    where = {name.split("#")[0] for name, _ in diagrams()}
    for page in ["index.md", "supervisor.md", "trading.md", "remote.md", "concepts.md"]:
        assert page in where, f"docs/{page} has no diagram"
    assert ".generated/errors.md" in where


def _node_modules() -> pathlib.Path | None:
    """Where mermaid (and jsdom) are installed: ``$AIOMT5_DOCS_NODE_MODULES`` or .ci/run's cache."""
    candidates = [
        os.environ.get("AIOMT5_DOCS_NODE_MODULES", ""),
        ROOT / ".docs-tools/node_modules",
    ]
    for candidate in candidates:
        if candidate and (pathlib.Path(candidate) / "mermaid/dist/mermaid.min.js").exists():
            return pathlib.Path(candidate)
    return None


NODE_PARSE = """
const { JSDOM } = require(process.argv[1] + "/jsdom");
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
(async () => {
  const { default: mermaid } = await import(process.argv[1] + "/mermaid/dist/mermaid.core.mjs");
  const diagrams = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const results = {};
  for (const [where, source] of diagrams) {
    try { results[where] = (await mermaid.parse(source)).diagramType; }
    catch (error) { results[where] = "ERROR " + String(error.message || error); }
  }
  console.log(JSON.stringify(results));
})();
"""


def test_every_diagram_parses_with_mermaid() -> None:
    node = shutil.which("node")
    modules = _node_modules()
    if node is None or modules is None or not (modules / "jsdom").exists():
        pytest.skip("needs node, and `npm install --prefix .docs-tools mermaid@12 jsdom` (.ci/run)")
    found = diagrams()
    run = subprocess.run(
        [node, "-e", NODE_PARSE, str(modules)],
        input=json.dumps(found),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    errors = {where: kind for where, kind in results.items() if kind.startswith("ERROR")}
    assert errors == {}
    assert len(results) == len(found)


def test_a_broken_diagram_fails_to_parse() -> None:
    node = shutil.which("node")
    modules = _node_modules()
    if node is None or modules is None or not (modules / "jsdom").exists():
        pytest.skip("needs node, mermaid and jsdom (see test_every_diagram_parses_with_mermaid)")
    run = subprocess.run(
        [node, "-e", NODE_PARSE, str(modules)],
        input=json.dumps([["broken", "stateDiagram-v2\n  A --> : x\n"]]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(run.stdout.strip().splitlines()[-1])["broken"].startswith("ERROR")


RENDER_PAGE = """<!doctype html><html><body><pre id="out">pending</pre>
<script src="{mermaid}"></script>
<script>
(async () => {{
  mermaid.initialize({{startOnLoad: false}});
  const diagrams = {diagrams};
  const results = {{}};
  for (let i = 0; i < diagrams.length; i++) {{
    const [where, source] = diagrams[i];
    try {{
      const {{svg}} = await mermaid.render("d" + i, source);
      const holder = document.createElement("div");
      holder.innerHTML = svg;
      document.body.appendChild(holder);
      const drawn = holder.querySelector("svg");
      const box = drawn ? drawn.getBoundingClientRect() : {{width: 0, height: 0}};
      const shapes = holder.querySelectorAll("g.node, g.actor, rect.actor, g.stateGroup").length;
      results[where] = box.width > 50 && box.height > 50 && shapes > 1
        ? `ok ${{Math.round(box.width)}}x${{Math.round(box.height)}} ${{shapes}} shapes`
        : `ERROR empty drawing ${{box.width}}x${{box.height}}, ${{shapes}} shapes`;
    }} catch (error) {{ results[where] = "ERROR " + String(error.message || error); }}
  }}
  document.getElementById("out").textContent = JSON.stringify(results);
}})();
</script></body></html>
"""


def test_every_diagram_renders_in_a_browser(tmp_path: pathlib.Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    modules = _node_modules()
    if browser is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium) to render the diagrams")
    if modules is None:
        pytest.skip("needs mermaid: npm install --prefix .docs-tools mermaid@12 jsdom")
    found = diagrams()
    page = tmp_path / "render.html"
    page.write_text(
        RENDER_PAGE.format(
            mermaid=(modules / "mermaid/dist/mermaid.min.js").as_uri(),
            diagrams=json.dumps(found).replace("</", "<\\/"),
        )
    )
    run = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=60000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    match = re.search(r'<pre id="out">(.*?)</pre>', run.stdout, re.DOTALL)
    assert match, run.stderr[-2000:]
    results = json.loads(html.unescape(match.group(1)))
    errors = {where: kind for where, kind in results.items() if not kind.startswith("ok")}
    assert errors == {}
    assert len(results) == len(found)


if __name__ == "__main__":
    for path in gen.write_all():
        print("rewrote", path.relative_to(ROOT))
