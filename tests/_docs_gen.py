"""The parts of the docs generated from the code and the benchmark results, so they cannot drift.

Each generator returns the text of one file under ``docs/.generated/`` (a hidden folder: Zensical
does not make pages of it; the pages include the files with ``--8<--``). ``tests/test_docs.py``
fails when a committed file differs from what its generator says now; ``python
tests/test_docs.py`` rewrites them.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import pathlib
import re
from collections.abc import Callable, Iterator
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATED = DOCS / ".generated"
BENCH_RESULTS = DOCS / "assets" / "bench"

# --------------------------------------------------------------------------- settings

SETTING_GROUPS: dict[str, tuple[str, ...]] = {
    "Credentials": ("login", "password", "server", "path", "portable", "attach_first"),
    "Timeouts": ("call_timeout", "timeout_ms", "connect_timeout", "health_check_timeout"),
    "Supervisor": (
        "max_retries",
        "retry_delay",
        "retry_max_delay",
        "reconnect_max_retries",
        "wait_for_reconnect",
        "health_check",
        "health_check_interval",
        "testing",
    ),
    "Backend and worker": (
        "backend",
        "isolation",
        "isolation_hard_limit",
        "worker_wedged_after",
        "max_queued_calls",
        "worker_idle_spin",
        "symbol_cache_ttl",
    ),
    "Remote": ("remote_token", "remote_tls", "remote_tls_ca"),
    "Simulator": ("sim_seed", "sim_start", "sim_speed", "sim_symbol_suffix", "sim_hold_gil"),
}
"""Every ``MT5Settings`` field in exactly one topic (a test fails when a field has none)."""


def setting_default(name: str) -> str:
    """The Default cell of a setting, from ``MT5Settings`` itself."""
    from aiomt5 import MT5Settings

    field = MT5Settings.model_fields[name]
    if field.default_factory is not None:  # computed from other fields: say how
        return "`2 × timeout_ms + 70 s`" if name == "connect_timeout" else "computed"  # noqa: RUF001
    default = field.default
    if isinstance(default, enum.Enum):
        default = default.value
    return f"`{default!r}`"


def settings_table() -> str:
    """The configuration table, one section per topic, rows in the topic's order."""
    from aiomt5 import MT5Settings

    fields = MT5Settings.model_fields
    placed = [name for names in SETTING_GROUPS.values() for name in names]
    unplaced = sorted(set(fields) - set(placed))
    unknown = sorted(set(placed) - set(fields))
    if unplaced or unknown or len(placed) != len(set(placed)):
        raise ValueError(
            f"tests/_docs_gen.py SETTING_GROUPS is out of date: put {unplaced} in one topic, "
            f"remove {unknown}, and list each field once"
        )
    lines: list[str] = []
    for topic, names in SETTING_GROUPS.items():
        lines += [f"### {topic}", "", "| Setting | Default | Meaning |", "|---|---|---|"]
        for name in names:
            description = " ".join((fields[name].description or "").split()).replace("|", "\\|")
            lines.append(
                f"| `{name}`<br>`MT5_{name.upper()}` | {setting_default(name)} | {description} |"
            )
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- errors


def error_tree() -> str:
    """The exception tree as a Mermaid flowchart, drawn from the classes' bases."""
    import aiomt5

    errors = [
        getattr(aiomt5, name)
        for name in aiomt5.__all__
        if inspect.isclass(getattr(aiomt5, name))
        and issubclass(getattr(aiomt5, name), aiomt5.MT5Error)
    ]
    ours = set(errors)
    lines = ["```mermaid", "flowchart LR"]
    builtin_edges: list[str] = []
    for error in sorted(errors, key=lambda cls: (len(cls.__mro__), cls.__name__)):
        bases = [base for base in error.__bases__ if base in ours]
        for index, base in enumerate(bases):
            arrow = "-->" if index == 0 else "-.->"  # a second parent: dotted
            lines.append(f"    {base.__name__} {arrow} {error.__name__}")
        builtin_edges.extend(
            f"    {base.__name__}:::builtin -.-> {error.__name__}"
            for base in error.__bases__
            if base not in ours and base is not Exception
        )
    lines += builtin_edges
    lines += ["    classDef builtin fill:none,stroke-dasharray:3 3", "```", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- constants


def constants_table() -> str:
    """Every name of ``aiomt5.constants`` with its value, by family (the name's first word)."""
    constants = importlib.import_module("aiomt5.constants")
    families: dict[str, list[str]] = {}
    for name in sorted(constants.__all__):
        if name == "CONSTANTS":
            continue
        families.setdefault(name.split("_")[0], []).append(name)
    lines: list[str] = []
    for family, names in sorted(families.items()):
        lines += [f"### `{family}_*`", "", "| Name | Value |", "|---|---|"]
        lines += [f"| `{name}` | `{getattr(constants, name)!r}` |" for name in names]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- blocking facade


def blocking_methods_table() -> str:
    """``MT5Connector``'s blocking twins of the async methods, each linked to its async entry.

    The twins are made by ``_blocking()`` (``functools.update_wrapper``: ``__wrapped__`` is the
    async method), so the reference's static reading of ``MT5Connector`` does not show them.
    """
    from aiomt5 import AsyncMT5Connector, MT5Connector

    lines = ["| Blocking method | Does what the async method does |", "|---|---|"]
    for name, member in vars(MT5Connector).items():
        wrapped = getattr(member, "__wrapped__", None)
        if wrapped is None or getattr(AsyncMT5Connector, name, None) is not wrapped:
            continue
        summary = (inspect.getdoc(wrapped) or "").split("\n\n")[0].replace("\n", " ")
        summary = summary.replace("|", "\\|")
        lines.append(
            f"| `mt5.{name}(...)` | [`AsyncMT5Connector.{name}`]"
            f"[aiomt5.AsyncMT5Connector.{name}]: {summary} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- benchmarks


def bench_results(name: str) -> dict[str, Any]:
    """One committed benchmark result (``docs/assets/bench/<name>.json``)."""
    data: dict[str, Any] = json.loads((BENCH_RESULTS / f"{name}.json").read_text())
    return data


def _figure(value: float) -> str:
    """A measured figure at the precision it deserves (three significant digits; counts whole)."""
    if isinstance(value, int):
        return f"{value:,}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def bench_tables() -> Iterator[tuple[str, str]]:
    """``(file name, markdown)`` for every table of every benchmark result, with its source."""
    for path in sorted(BENCH_RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        for name, table in data["tables"].items():
            columns = table["columns"]
            lines = [
                "| " + " | ".join(column["label"] for column in columns) + " |",
                "|" + "---|" * len(columns),
            ]
            for row in table["rows"]:
                cells = []
                for column in columns:
                    value = row[column["key"]]
                    cells.append(_figure(value) if isinstance(value, int | float) else f"{value}")
                lines.append("| " + " | ".join(cells) + " |")
            source = f"`{data['command']}`, {data['date']}, {data['machine']}"
            lines += ["", f"<small>{source}</small>", ""]
            yield f"bench-{path.stem}-{name}.md", "\n".join(lines)


def bench_figures() -> dict[str, str]:
    """Every figure pages may quote in prose, by ``<result file>.<figure>``.

    In a page, a quoted figure is followed by its key in a comment: ``2,130<!-- bench:trade.x -->``;
    ``requote`` rewrites them from these values.
    """
    figures: dict[str, str] = {}
    for path in sorted(BENCH_RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        for key, value in data.get("figures", {}).items():
            figures[f"{path.stem}.{key}"] = value if isinstance(value, str) else _figure(value)
    return figures


# --------------------------------------------------------------------------- all of them


def generated() -> dict[pathlib.Path, str]:
    """Every generated file and what it must contain now."""
    files: dict[pathlib.Path, str] = {
        GENERATED / "settings.md": settings_table(),
        GENERATED / "errors.md": error_tree(),
        GENERATED / "constants.md": constants_table(),
        GENERATED / "blocking-methods.md": blocking_methods_table(),
    }
    for name, text in bench_tables():
        files[GENERATED / name] = text
    return files


QUOTE = re.compile(r"(?P<figure>[0-9][0-9,.]*)<!-- bench:(?P<key>[\w.-]+) -->")
"""A figure quoted in prose and the result it comes from."""


def requote(page: str) -> str:
    """``page`` with every quoted figure rewritten from the benchmark results."""
    figures = bench_figures()

    def replace(match: re.Match[str]) -> str:
        key = match.group("key")
        if key not in figures:
            raise KeyError(f"no benchmark figure {key!r}; the known ones are {sorted(figures)}")
        return f"{figures[key]}<!-- bench:{key} -->"

    return QUOTE.sub(replace, page)


def pages() -> Iterator[pathlib.Path]:
    """Every page of the site's sources."""
    yield from sorted(path for path in DOCS.rglob("*.md") if ".generated" not in path.parts)


def write_all(write: Callable[[pathlib.Path, str], Any] | None = None) -> list[pathlib.Path]:
    """Rewrite every generated file that changed; returns those rewritten."""
    changed = []
    files = generated()
    for page in pages():
        files[page] = requote(page.read_text())
        if page.name not in UNLINKED_PAGES:
            files[page] = link_first_mentions(files[page])
    for path, text in files.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            (write or pathlib.Path.write_text)(path, text)
            changed.append(path)
    return changed


# --------------------------------------------------------------------------- guide links

UNLINKED_PAGES = frozenset({"changelog.md", "api.md"})
"""Pages whose names stay unlinked: the changelog (history), the old reference's pointer page."""

PUBLIC_MODULES = (
    "aiomt5",
    "aiomt5.sim",
    "aiomt5.testing",
    "aiomt5.replay",
    "aiomt5.logging",
    "aiomt5.compat",
)
"""Modules whose ``__all__`` the reference documents name by name (``::: module.name``) and the
guides link to; ``aiomt5.constants`` has its generated table instead. In this order a bare name
links to the first module that has it (``aiomt5``'s own wins)."""
UNLISTED_MODULES = frozenset({"aiomt5.constants"})
"""Public modules documented another way than name by name (the constants' generated table)."""
_TOO_GENERIC = frozenset(
    {"install", "uninstall", "configure", "Check", "Gap", "Hang", "CATALOGUE", "run"}
)
_MENTION = re.compile(r"(?<!\[)`(?P<name>[A-Za-z_][\w.]*)`(?!\]|\()")


def reference_targets() -> dict[str, str]:
    """How a guide may write a public name (``Name`` or its full path) and its reference id."""
    targets: dict[str, str] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            full = f"{module_name}.{name}"
            targets[full] = full
            if module_name != "aiomt5.compat" and name not in _TOO_GENERIC:
                targets.setdefault(name, full)  # aiomt5's own name wins over a submodule's
    return targets


def mentions(page: str) -> Iterator[tuple[int, re.Match[str]]]:
    """``(line number, match)`` of each backticked public name in prose (not code, headings)."""
    targets = reference_targets()
    fence = False
    for number, line in enumerate(page.split("\n")):
        if line.lstrip().startswith("```"):
            fence = not fence
        if fence or line.startswith(("#", "::: ")):
            continue
        for match in _MENTION.finditer(line):
            if match.group("name") in targets:
                yield number, match


def link_first_mentions(page: str) -> str:
    """``page`` with the first mention of each public name linked to its reference entry."""
    targets = reference_targets()
    linked = {m.group(1) for m in re.finditer(r"\[`([\w.]+)`\]\[", page)}
    lines = page.split("\n")
    for number, match in list(mentions(page)):
        name = match.group("name")
        if name in linked:
            continue
        linked.add(name)
        line = lines[number]
        start = line.index(f"`{name}`", match.start())
        lines[number] = f"{line[:start]}[`{name}`][{targets[name]}]{line[start + len(name) + 2 :]}"
    return "\n".join(lines)
