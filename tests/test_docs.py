"""The documentation stays true to the code."""

from __future__ import annotations

import enum
import pathlib
import re

from aiomt5 import MT5Settings

DOCS = pathlib.Path(__file__).parent.parent / "docs"


def test_every_setting_is_documented_with_its_variable() -> None:
    page = (DOCS / "configuration.md").read_text()
    missing = [
        name
        for name in MT5Settings.model_fields
        if f"`{name}`" not in page or f"`MT5_{name.upper()}`" not in page
    ]
    assert missing == [], f"add these settings to docs/configuration.md: {missing}"


ROW = re.compile(r"^\| `(?P<name>\w+)` \| `MT5_\w+` \| (?P<default>[^|]+) \|", re.MULTILINE)


def default_cell(name: str) -> str:
    """The Default column of a setting, generated from ``MT5Settings`` itself."""
    field = MT5Settings.model_fields[name]
    if field.default_factory is not None:  # computed from other fields: say how
        return "`2 × timeout_ms + 70 s`" if name == "connect_timeout" else "computed"  # noqa: RUF001
    default = field.default
    if isinstance(default, enum.Enum):
        default = default.value
    return f"`{default!r}`"


def regenerate(page: str) -> str:
    """``page`` with every settings row's Default cell rewritten from the code."""
    return ROW.sub(
        lambda m: m.group(0).replace(m.group("default"), default_cell(m.group("name"))),
        page,
    )


def test_documented_defaults_are_the_codes() -> None:
    page = (DOCS / "configuration.md").read_text()
    assert page == regenerate(page), "run: python tests/test_docs.py (rewrites the defaults)"
    assert {m.group("name") for m in ROW.finditer(page)} == set(MT5Settings.model_fields)


if __name__ == "__main__":
    target = DOCS / "configuration.md"
    target.write_text(regenerate(target.read_text()))
