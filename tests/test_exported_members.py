"""The public door: ``aiomt5.__all__`` is complete, sorted, and names ``aiomt5`` as home."""

from __future__ import annotations
import __future__

import importlib.metadata
import re
import subprocess
import sys
import types
import warnings

import aiomt5

CONTRACT = {
    "AsyncMT5Connector",
    "MT5Settings",
    "ConnectionState",
    "ConnectionStats",
    "mt5_connection",
    "Timeframe",
    "MT5Error",
    "MT5ConnectionError",
    "MT5InitializationError",
    "MT5LoginError",
    "MT5TimeoutError",
    "MT5NotAvailableError",
    "MT5CallError",
    "MT5TradeError",
    "MT5OutcomeUnknownError",
    "MT5SymbolNotFoundError",
}


def _isort_key(name: str) -> tuple[int, list[object]]:
    # RUF022's order: SCREAMING_CASE, then CamelCase, then the rest; natural sort inside.
    group = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return group, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def test_all_is_sorted_and_unique() -> None:
    assert aiomt5.__all__ == sorted(set(aiomt5.__all__), key=_isort_key)


def test_all_lists_every_public_name_and_nothing_else() -> None:
    public = {
        name
        for name, value in vars(aiomt5).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }
    assert public | set(aiomt5._LAZY) == set(aiomt5.__all__)


def test_lazy_exports_resolve_and_live_in_aiomt5() -> None:
    for name in aiomt5._LAZY:
        member = getattr(aiomt5, name)
        assert member is not None
        if isinstance(member, type | types.FunctionType):
            assert member.__module__ == "aiomt5", name


def test_contract_names_are_exported() -> None:
    assert set(aiomt5.__all__) >= CONTRACT


def test_exported_classes_and_functions_live_in_aiomt5() -> None:
    for name in aiomt5.__all__:
        member = getattr(aiomt5, name)
        if isinstance(member, type | types.FunctionType):
            assert member.__module__ == "aiomt5", name


def test_version_is_the_installed_distribution_version() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        version = aiomt5.__version__
    assert version == importlib.metadata.version("aiomt5")


def test_importing_aiomt5_loads_neither_the_simulator_nor_metatrader5_nor_numpy() -> None:
    code = (
        "import sys, aiomt5; "
        "print(sorted(m for m in ('aiomt5.sim', 'MetaTrader5', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
