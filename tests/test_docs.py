"""The documentation stays true to the code."""

from __future__ import annotations

import pathlib

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
