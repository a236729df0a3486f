"""The simulator against the reference surface of MetaTrader5 5.0.6231 (tests/data/*.json).

The JSON was read from the official wheel's binary; every function, constant, struct field order and
type, array dtype and error text it lists is checked here against ``aiomt5.sim``.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np
import pytest

import aiomt5.sim
from aiomt5._mt5.codes import ERROR_TEXTS
from aiomt5.sim import RATES_DTYPE, TICKS_DTYPE, SimClock, SimTerminal

SURFACE: dict[str, Any] = json.loads(
    (pathlib.Path(__file__).parent / "data" / "mt5_api_surface.json").read_text()
)
FUNCTIONS: dict[str, Any] = SURFACE["functions"]
NOARGS = [n for n, f in FUNCTIONS.items() if f.get("c_flags") == "METH_NOARGS"]
VARARGS = [n for n, f in FUNCTIONS.items() if f.get("c_flags") == "METH_VARARGS"]
KEYWORDS = [n for n, f in FUNCTIONS.items() if f.get("c_flags") == "METH_VARARGS|METH_KEYWORDS"]
PY_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


@pytest.fixture
def term() -> SimTerminal:
    t = SimTerminal(seed=7, clock=SimClock.fixed("2026-03-04T12:00:00Z"))
    assert t.initialize()
    return t


@pytest.fixture
def module(term: SimTerminal):
    return aiomt5.sim.make_module(term)


def test_every_function_exists_on_the_installed_module(module) -> None:
    missing = [name for name in FUNCTIONS if not callable(getattr(module, name, None))]
    assert missing == []


def test_every_constant_has_the_official_value(module) -> None:
    wrong = {
        name: getattr(module, name, "<missing>")
        for name, value in SURFACE["constants"].items()
        if getattr(module, name, None) != value
    }
    assert wrong == {}
    assert len(SURFACE["constants"]) == 223


def test_constants_absent_in_5_0_6231_are_absent(module) -> None:
    for name in ("SYMBOL_FILLING_FOK", "SYMBOL_FILLING_IOC", "TRADE_RETCODE_HEDGE_PROHIBITED"):
        assert not hasattr(module, name)
    assert not [n for n in dir(module) if n.startswith(("SYMBOL_EXPIRATION_", "ERR_"))]


def test_module_metadata_matches(module) -> None:
    assert module.__version__ == SURFACE["version"] == "5.0.6231"
    assert module.__author__ == "MetaQuotes Ltd."


def test_functions_kept_as_class_attributes_do_not_bind_like_the_extensions_builtins(
    module,
) -> None:
    """Real code stores the functions on a class and calls them through self (aiomql)."""
    holder = type("Holder", (), {name: getattr(module, name) for name in FUNCTIONS})()
    bound = [name for name in FUNCTIONS if getattr(holder, name) is not getattr(module, name)]
    assert bound == []


@pytest.mark.parametrize("name", sorted(SURFACE["structs"]))
def test_struct_field_order_matches(module, name: str) -> None:
    struct = getattr(module, name)
    expected = SURFACE["structs"][name]
    assert struct._field_names == tuple(expected)
    assert struct.n_fields == len(expected)
    instance = struct(tuple(range(len(expected))))
    assert isinstance(instance, tuple)
    assert list(instance._asdict()) == expected
    assert repr(instance).startswith(f"{name}({expected[0]}=0, ")
    assert not hasattr(instance, "_fields")
    assert not hasattr(instance, "_replace")


@pytest.mark.parametrize("name", sorted(SURFACE["structs"]))
def test_struct_types_support_match_like_every_cpython_struct_sequence(module, name: str) -> None:
    """CPython 3.10+ sets ``__match_args__`` on every PyStructSequence type (``os.stat_result``
    has it too); aiomql builds its order requests from ``TradeRequest.__match_args__``."""
    import os

    assert hasattr(os.stat_result, "__match_args__")  # the CPython behaviour we mirror
    struct = getattr(module, name)
    fields = tuple(SURFACE["structs"][name])
    assert struct.__match_args__ == fields
    match struct(tuple(range(len(fields)))):
        case struct(first, second):  # type: ignore[misc]
            assert (first, second) == (0, 1)
        case _:
            pytest.fail(f"{name} does not match positionally")


def test_struct_asdict_is_shallow(term: SimTerminal) -> None:
    request = term.TradeRequest(tuple(range(17)))
    result = term.OrderSendResult((1, 2, 3, 4.0, 5.0, 6.0, 7.0, "x", 9, 10, request))
    assert result._asdict()["request"] is request


def _live_structs(term: SimTerminal) -> dict[str, Any]:
    term.symbol_select("EURUSD", True)
    term.market_book_add("EURUSD")
    return {
        "TerminalInfo": term.terminal_info(),
        "AccountInfo": term.account_info(),
        "SymbolInfo": term.symbol_info("EURUSD"),
        "Tick": term.symbol_info_tick("EURUSD"),
        "BookInfo": term.market_book_get("EURUSD")[0],
    }


def test_live_struct_fields_have_the_official_python_types(term: SimTerminal) -> None:
    for name, value in _live_structs(term).items():
        assert type(value).__name__ == name
        fields = SURFACE["struct_details"][name]["fields"]
        wrong = [
            (f["name"], type(v).__name__)
            for f, v in zip(fields, value, strict=True)
            if type(v) is not PY_TYPES[f["py"]]
        ]
        assert wrong == [], name


@pytest.mark.parametrize(("dtype", "key"), [(RATES_DTYPE, "rates"), (TICKS_DTYPE, "ticks")])
def test_array_dtypes_are_packed_60_bytes(dtype: np.dtype, key: str) -> None:
    assert dtype.itemsize == SURFACE["arrays_meta"]["itemsize"] == 60
    assert [(n, dtype[n].str) for n in dtype.names] == [tuple(f) for f in SURFACE["arrays"][key]]
    assert [dtype.fields[n][1] for n in dtype.names] == SURFACE["arrays_meta"]["offsets"][key]


def test_copy_results_are_contiguous_owned_arrays(term: SimTerminal) -> None:
    rates = term.copy_rates_from_pos("EURUSD", term.TIMEFRAME_M1, 0, 50)
    ticks = term.copy_ticks_from("EURUSD", 1772625600 - 600, 100, term.COPY_TICKS_ALL)
    for array, dtype in ((rates, RATES_DTYPE), (ticks, TICKS_DTYPE)):
        assert array.dtype == dtype
        assert array.ndim == 1
        assert array.flags.c_contiguous
        assert array.flags.owndata


def test_error_texts_match_the_reference() -> None:
    for code, entry in SURFACE["last_error_codes"].items():
        assert ERROR_TEXTS[int(code)] == entry["messages"][0].split(", <detail>")[0]


@pytest.mark.parametrize("name", NOARGS)
def test_noargs_functions_reject_arguments_like_c(module, name: str) -> None:
    with pytest.raises(TypeError, match=rf"{name}\(\) takes no arguments \(1 given\)"):
        getattr(module, name)(1)
    with pytest.raises(TypeError, match=rf"{name}\(\) takes no keyword arguments"):
        getattr(module, name)(x=1)


@pytest.mark.parametrize("name", VARARGS)
def test_varargs_functions_reject_keywords_like_c(module, name: str) -> None:
    with pytest.raises(TypeError, match=rf"{name}\(\) takes no keyword arguments"):
        getattr(module, name)(symbol="EURUSD")


# (function, arguments of a valid call) for every C function: used to show the failure returns.
VALID_CALLS: dict[str, tuple[Any, ...]] = {
    "login": (aiomt5.sim.DEFAULT_LOGIN,),
    "version": (),
    "terminal_info": (),
    "account_info": (),
    "copy_ticks_from": ("EURUSD", 1772625000, 10, -1),
    "copy_ticks_range": ("EURUSD", 1772625000, 1772625600, -1),
    "copy_rates_from": ("EURUSD", 1, 1772625600, 10),
    "copy_rates_from_pos": ("EURUSD", 1, 0, 10),
    "copy_rates_range": ("EURUSD", 1, 1772625000, 1772625600),
    "positions_total": (),
    "positions_get": (),
    "orders_total": (),
    "orders_get": (),
    "history_orders_total": (1772000000, 1772625600),
    "history_deals_total": (1772000000, 1772625600),
    "order_calc_margin": (0, "EURUSD", 1.0, 1.1),
    "order_calc_profit": (0, "EURUSD", 1.0, 1.1, 1.2),
    "symbol_info": ("EURUSD",),
    "symbol_info_tick": ("EURUSD",),
    "symbol_select": ("EURUSD",),
    "symbols_total": (),
    "symbols_get": (),
    "market_book_get": ("EURUSD",),
}


def test_failure_returns_before_initialize_follow_the_binary() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed("2026-03-04T12:00:00Z"))
    expected_failure = {"login": False, "symbol_select": False, "version": (0, 0, "")}
    for name, args in VALID_CALLS.items():
        result = getattr(term, name)(*args)
        assert result == expected_failure.get(name), name
        assert term.last_error() == (-10004, "No IPC connection"), name
    for name in ("history_orders_get", "history_deals_get"):
        assert getattr(term, name)(1772000000, 1772625600) is None
    assert term.order_send({"action": 1}) is None
    assert term.order_check({"action": 1}) is None
    assert term.shutdown() is True


def test_every_call_resets_last_error(term: SimTerminal) -> None:
    assert term.market_book_add("EURUSD")
    for name, args in VALID_CALLS.items():
        assert term.symbol_info("NOPE") is None
        assert term.last_error() == (-4, "Terminal: Not found")
        getattr(term, name)(*args)
        assert term.last_error() == (1, "Success"), name


def test_wrong_argument_counts_fail_with_invalid_arguments(term: SimTerminal) -> None:
    for name in ("copy_rates_from", "copy_rates_range", "copy_ticks_from", "copy_rates_from_pos"):
        assert getattr(term, name)("EURUSD", 1, 2) is None
        assert term.last_error() == (-2, "Invalid arguments")
    assert term.history_deals_total(1) is None
    assert term.last_error() == (-2, "Invalid arguments")
    assert term.symbol_select() is False
    assert term.last_error() == (-2, "Invalid arguments")


def test_c_type_errors_surface_as_system_error(term: SimTerminal) -> None:
    with pytest.raises(SystemError) as info:
        term.copy_rates_from_pos("EURUSD", 1, 0, 10.0)
    assert isinstance(info.value.__cause__, TypeError)


def test_official_example_code_runs_unmodified() -> None:
    terminal = SimTerminal(seed=3, clock=SimClock.fixed("2026-03-04T12:00:00Z"))
    aiomt5.sim.install(terminal)
    try:
        import MetaTrader5 as mt5

        assert mt5.initialize()
        assert mt5.version()[0] == 500
        info = mt5.terminal_info()
        assert info.connected
        assert info.maxbars == 100_000
        assert mt5.symbol_select("GBPUSD", True)
        rates = mt5.copy_rates_from("GBPUSD", mt5.TIMEFRAME_M5, 1772625600, 10)
        assert len(rates) == 10
        ticks = mt5.copy_ticks_range("GBPUSD", 1772625000, 1772625600, mt5.COPY_TICKS_ALL)
        assert len(ticks) > 0
        assert mt5.account_info().login == aiomt5.sim.DEFAULT_LOGIN
        assert mt5.shutdown()
    finally:
        aiomt5.sim.uninstall()


@pytest.mark.parametrize(
    "credentials",
    [{"login": 0}, {"login": 0, "password": "", "server": ""}, {"password": "", "server": ""}],
)
def test_initialize_with_login_0_attaches_to_the_logged_in_account(
    credentials: dict[str, Any],
) -> None:
    # Public code (and async wrappers, by default) attach this way: 0 and "" mean "not given".
    terminal = SimTerminal(seed=1, clock=SimClock.fixed("2026-03-04T12:00:00Z"))
    assert terminal.initialize(**credentials), terminal.last_error()
    assert terminal.account_info().login == aiomt5.sim.DEFAULT_LOGIN


def _docs_deal(mt5: Any, symbol: str, kind: int, price: float, **extra: Any) -> dict[str, Any]:
    """A request shaped as the official order_send/order_check examples build it."""
    point = mt5.symbol_info(symbol).point
    request = {
        "action": mt5.TRADE_ACTION_DEAL, "symbol": symbol, "volume": 0.1, "type": kind,
        "price": price, "deviation": 20, "magic": 234000, "comment": "python script open",
        "type_time": mt5.ORDER_TIME_GTC, "type_filling": mt5.ORDER_FILLING_RETURN,
    }  # fmt: skip
    if "position" not in extra:  # unrounded stops, as the examples compute them
        request["sl"] = price - 100 * point
        request["tp"] = price + 100 * point
    return {**request, **extra}


def test_docs_order_send_and_order_check_examples_succeed_on_the_installed_module() -> None:
    # The official examples: USDJPY, instant execution, ORDER_FILLING_RETURN, open then close.
    terminal = SimTerminal(seed=3, clock=SimClock.fixed("2026-03-04T12:00:00Z"))
    mt5 = aiomt5.sim.install(terminal)
    try:
        assert mt5.initialize()
        symbol = "USDJPY"
        info = mt5.symbol_info(symbol)
        assert info.visible or mt5.symbol_select(symbol, True)
        checked = mt5.order_check(
            _docs_deal(mt5, symbol, mt5.ORDER_TYPE_BUY, mt5.symbol_info_tick(symbol).ask)
        )
        assert (checked.retcode, checked.comment) == (0, "Done")
        opened = mt5.order_send(
            _docs_deal(mt5, symbol, mt5.ORDER_TYPE_BUY, mt5.symbol_info_tick(symbol).ask)
        )
        assert opened.retcode == mt5.TRADE_RETCODE_DONE, opened
        terminal.clock.advance(2)  # the example sleeps 2 s before closing
        closed = mt5.order_send(
            _docs_deal(
                mt5, symbol, mt5.ORDER_TYPE_SELL, mt5.symbol_info_tick(symbol).bid,
                position=opened.order, comment="python script close",
            )
        )  # fmt: skip
        assert closed.retcode == mt5.TRADE_RETCODE_DONE, closed
        assert mt5.positions_total() == 0
    finally:
        aiomt5.sim.uninstall()


@pytest.mark.parametrize(
    ("symbol", "exemode", "return_allowed"),
    [
        ("EURUSD", 1, True),  # majors: instant execution, like MetaQuotes' demo server
        ("USDJPY", 1, True),
        ("EURGBP", 2, False),  # crosses: market execution refuses Return, as many brokers do
        ("XAUUSD", 2, False),
        ("EURCHF", 1, True),
        ("US30", 2, False),
    ],
)
def test_symbols_carry_their_execution_mode_and_return_filling_follows_it(
    term: SimTerminal, symbol: str, exemode: int, return_allowed: bool
) -> None:
    assert term.symbol_select(symbol, True)
    assert term.symbol_info(symbol).trade_exemode == exemode
    tick = term.symbol_info_tick(symbol)
    checked = term.order_check(
        action=1, symbol=symbol, volume=term.symbol_info(symbol).volume_min, type=0,
        price=tick.ask, deviation=20, type_filling=2,  # ORDER_FILLING_RETURN
    )  # fmt: skip
    assert (checked.retcode == 0) is return_allowed, checked.comment
    if not return_allowed:
        assert checked.retcode == 10030  # Unsupported filling mode


def test_a_range_entirely_in_the_future_fails_like_the_terminal(term: SimTerminal) -> None:
    now = 1772625600  # the fixture's clock
    assert term.copy_rates_range("EURUSD", 1, now + 3600, now + 7200) is None
    assert term.last_error() == (-1, "Terminal: Call failed")
    assert term.copy_ticks_range("EURUSD", now + 3600, now + 7200, -1) is None
    assert term.last_error() == (-1, "Terminal: Call failed")
