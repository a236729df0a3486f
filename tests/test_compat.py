"""``aiomt5.compat.install``: unmodified MetaTrader5 code over a connector, on any backend."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

import aiomt5.compat
from aiomt5._remote import RemoteServer
from aiomt5.sim import DEFAULT_LOGIN, SimTerminal, make_module
from aiomt5.testing import sim_terminal

TOKEN = "test-token-" + "0badf00d" * 4
TEST_SETTINGS: dict[str, Any] = {"testing": True, "health_check": False, "call_timeout": 5.0}

# An unmodified MetaTrader5 script: only the module it imports differs.
SCRIPT = textwrap.dedent(
    """
    import MetaTrader5 as mt5

    assert mt5.initialize(), mt5.last_error()
    info = mt5.account_info()
    rates = mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_H1, 0, 10)
    tick = mt5.symbol_info_tick("EURUSD")
    request = {
        "action": mt5.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": mt5.ORDER_TYPE_BUY,
        "price": tick.ask,
        "deviation": 20,
        "type_filling": mt5.ORDER_FILLING_IOC,
        "comment": "compat",
    }
    result = mt5.order_send(request)
    assert result.retcode == mt5.TRADE_RETCODE_DONE, result
    positions = mt5.positions_get(symbol="EURUSD")
    OUTPUT = (info.login, len(rates), rates["close"][-1], len(positions), positions[0].comment)
    mt5.shutdown()
    """
)


@pytest.fixture
def uninstalled() -> Iterator[None]:
    yield
    aiomt5.compat.uninstall()
    assert "MetaTrader5" not in sys.modules


def _run_script() -> tuple[Any, ...]:
    namespace: dict[str, Any] = {}
    exec(SCRIPT, namespace)
    return namespace["OUTPUT"]


def test_unmodified_script_runs_on_the_simulator(uninstalled: None) -> None:
    term = sim_terminal(11)
    aiomt5.compat.install(backend=term, **TEST_SETTINGS)
    login, bars, close, positions, comment = _run_script()
    assert (bars, positions, comment) == (10, 1, "compat")
    assert login == DEFAULT_LOGIN
    twin = sim_terminal(11)  # same seed and clock: the same market
    assert twin.initialize()
    assert close == twin.copy_rates_from_pos("EURUSD", twin.TIMEFRAME_H1, 0, 10)["close"][-1]


def test_unmodified_script_runs_against_aiomt5_serve(uninstalled: None) -> None:
    remote_term = sim_terminal(12)
    with RemoteServer(make_module(remote_term), port=0, token=TOKEN) as server:
        server.start()
        aiomt5.compat.install(backend=server.url, remote_token=TOKEN, **TEST_SETTINGS)
        login, bars, _, positions, _ = _run_script()
    assert (bars, positions, login) == (10, 1, DEFAULT_LOGIN)
    assert remote_term.calls["order_send"] == 1


def test_module_has_every_constant_and_function_of_the_reference(uninstalled: None) -> None:
    import json
    import pathlib

    surface = json.loads(
        (pathlib.Path(__file__).parent / "data" / "mt5_api_surface.json").read_text()
    )
    module = aiomt5.compat.install(backend="sim", **TEST_SETTINGS)
    assert {n: getattr(module, n) for n in surface["constants"]} == surface["constants"]
    assert [n for n in surface["functions"] if not callable(getattr(module, n, None))] == []
    assert module.TradePosition.__name__ == "TradePosition"


def test_calls_before_initialize_fail_like_the_real_module(uninstalled: None) -> None:
    mt5 = aiomt5.compat.install(backend=sim_terminal(1), **TEST_SETTINGS)
    assert mt5.account_info() is None
    assert mt5.last_error() == (-10004, "No IPC connection")
    assert mt5.symbol_select("EURUSD") is False
    assert mt5.version() == (0, 0, "")


def test_failures_return_the_failure_value_and_set_last_error(uninstalled: None) -> None:
    term = sim_terminal(2)
    mt5 = aiomt5.compat.install(backend=term, **TEST_SETTINGS)
    assert mt5.initialize()
    assert mt5.last_error() == (1, "Success")
    assert mt5.symbol_info("NOSUCH") is None
    assert mt5.last_error()[0] == -4
    assert mt5.positions_get("EURUSD") is None  # positional: refused as by MetaTrader5
    assert mt5.last_error() == (-2, "Unnamed arguments not allowed")
    assert mt5.symbols_total() > 0
    assert mt5.last_error() == (1, "Success")


def test_a_hung_call_times_out_instead_of_blocking_forever(uninstalled: None) -> None:
    term = sim_terminal(3)
    mt5 = aiomt5.compat.install(backend=term, **{**TEST_SETTINGS, "call_timeout": 0.2})
    assert mt5.initialize()
    hang = term.faults.hang("account_info", seconds=None)
    try:
        assert mt5.account_info() is None
        assert mt5.last_error() == (-10005, "IPC timeout")
    finally:
        hang.release()


def test_initialize_arguments_override_the_settings(uninstalled: None) -> None:
    term: SimTerminal = sim_terminal(4)
    mt5 = aiomt5.compat.install(backend=term, **TEST_SETTINGS)
    assert mt5.initialize(login=12345, password="wrong", server="Nowhere") is False
    assert mt5.last_error()[0] in (-6, -10003, -10004)
    assert mt5.initialize(nonsense=1) is False
    assert mt5.last_error()[0] == -2


def test_the_python_helpers_work_on_a_remote_terminal(uninstalled: None) -> None:
    remote_term = sim_terminal(13)
    with RemoteServer(make_module(remote_term), port=0, token=TOKEN) as server:
        server.start()
        mt5 = aiomt5.compat.install(backend=server.url, remote_token=TOKEN, **TEST_SETTINGS)
        assert mt5.initialize(), mt5.last_error()
        bought = mt5.Buy("EURUSD", 0.1)
        assert bought.retcode == mt5.TRADE_RETCODE_DONE
        assert mt5.Sell("GBPUSD", 0.2).retcode == mt5.TRADE_RETCODE_DONE
        assert mt5.positions_total() == 2
        assert mt5.Close("EURUSD") is True
        assert [p.symbol for p in mt5.positions_get()] == ["GBPUSD"]
        mt5.shutdown()


def test_module_functions_do_not_bind_when_kept_on_a_class(uninstalled: None) -> None:
    """aiomql keeps ``_login = MetaTrader5.login`` on a class and calls ``self._login(...)``; the
    extension's builtins never bind, so neither may the installed module's functions."""
    from aiomt5._mt5.functions import API_FUNCTIONS

    mt5 = aiomt5.compat.install(backend=sim_terminal(3), **TEST_SETTINGS)

    class Wrapper:
        _initialize = mt5.initialize
        _login = mt5.login
        _account_info = mt5.account_info
        _last_error = mt5.last_error

    wrapper = Wrapper()
    assert wrapper._initialize(), wrapper._last_error()
    assert wrapper._login(DEFAULT_LOGIN, password="Demo-Pass-1", timeout=60000), mt5.last_error()
    assert wrapper._account_info().login == DEFAULT_LOGIN
    holder = type("Holder", (), {name: getattr(mt5, name) for name in API_FUNCTIONS})()
    assert [name for name in API_FUNCTIONS if getattr(holder, name) is not getattr(mt5, name)] == []
    assert repr(mt5.login) == "<built-in function login>"
    mt5.shutdown()
