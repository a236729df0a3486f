"""SimTerminal: connection and accounts, symbols, Market Watch, market data, history reads."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from aiomt5.sim import (
    DEFAULT_LOGIN,
    DEFAULT_PASSWORD,
    DEFAULT_SERVER,
    SimAccount,
    SimClock,
    SimTerminal,
)

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday
NOW_S = int(NOW.timestamp())


@pytest.fixture
def term() -> SimTerminal:
    t = SimTerminal(seed=11, clock=SimClock.fixed(NOW))
    assert t.initialize()
    return t


# ---------------------------------------------------------------- initialize / login / shutdown
def test_initialize_attaches_to_the_logged_in_demo_account() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    assert term.initialize() is True
    assert term.account_info().login == DEFAULT_LOGIN
    assert term.terminal_info().connected is True


def test_initialize_with_credentials_logs_in() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    ok = term.initialize(login=DEFAULT_LOGIN + 1, password=DEFAULT_PASSWORD, server=DEFAULT_SERVER)
    assert ok is True
    assert term.account_info().login == DEFAULT_LOGIN + 1
    assert term.account_info().margin_mode == term.ACCOUNT_MARGIN_MODE_RETAIL_NETTING


def test_wrong_password_fails_minus_6_and_closes_the_pipe() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    assert term.initialize(login=DEFAULT_LOGIN, password="wrong", server=DEFAULT_SERVER) is False
    assert term.last_error() == (-6, "Terminal: Authorization failed")
    assert term.account_info() is None
    assert term.last_error() == (-10004, "No IPC connection")


def test_failed_login_keeps_the_pipe_open() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    assert term.initialize()
    assert term.login(DEFAULT_LOGIN, "wrong") is False
    assert term.last_error() == (-6, "Terminal: Authorization failed")
    assert term.terminal_info() is not None
    assert term.terminal_info().connected is False
    assert term.login(DEFAULT_LOGIN, DEFAULT_PASSWORD, DEFAULT_SERVER) is True
    assert term.terminal_info().connected is True


def test_login_needs_an_open_pipe() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    assert term.login(DEFAULT_LOGIN, DEFAULT_PASSWORD) is False
    assert term.last_error() == (-10004, "No IPC connection")


def test_initialize_argument_errors() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    assert term.initialize("a", "b") is False
    assert term.last_error() == (-2, "Invalid number of arguments")
    assert term.initialize(123) is False
    assert term.last_error() == (-2, "Invalid 1st unnamed argument")
    assert term.initialize(login="123") is False
    assert term.last_error() == (-2, 'Invalid "login" argument')
    assert term.initialize(login=1, password=5) is False
    assert term.last_error() == (-2, 'Invalid "password" argument')
    assert term.initialize(timeout=1.5) is False
    assert term.last_error() == (-2, 'Invalid "timeout" argument')


def test_bad_initialize_drops_a_live_session(term: SimTerminal) -> None:
    assert term.initialize(login="x") is False
    assert term.terminal_info() is None
    assert term.last_error() == (-10004, "No IPC connection")


def test_initialize_with_a_wrong_path_fails_minus_10003() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    assert term.initialize(r"C:\nowhere\terminal64.exe") is False
    code, message = term.last_error()
    assert code == -10003
    assert message.startswith("IPC initialize failed, Process create failed")


def test_initialize_with_the_right_path_and_portable() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    assert term.initialize(term.path.upper(), portable=True)
    info = term.terminal_info()
    assert info.data_path == info.path


def test_investor_password_logs_in_read_only() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    assert term.initialize(login=DEFAULT_LOGIN, password="Demo-Investor-1")
    assert term.account_info().trade_allowed is False


def test_configured_accounts_replace_the_defaults() -> None:
    account = SimAccount(
        login=42, password="pw", server="Broker-Live", currency="EUR", balance=500.0
    )
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW), accounts=[account])
    assert term.initialize(login=42, password="pw", server="Broker-Live")
    info = term.account_info()
    assert (info.currency, info.balance, info.server) == ("EUR", 500.0, "Broker-Live")


def test_shutdown_closes_the_pipe_and_always_returns_true() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    assert term.shutdown() is True
    assert term.initialize()
    assert term.shutdown() is True
    assert term.account_info() is None
    assert term.last_error() == (-10004, "No IPC connection")


def test_version_and_terminal_info(term: SimTerminal) -> None:
    version = term.version()
    assert isinstance(version, tuple)
    assert version[0] == 500
    assert version[1] >= 2364
    info = term.terminal_info()
    assert info.maxbars == 100_000
    assert info.trade_allowed is True
    assert 0 < info.ping_last < 1_000_000
    assert info.path.endswith("MetaTrader 5")


def test_account_info_is_a_realistic_demo(term: SimTerminal) -> None:
    info = term.account_info()
    assert info.trade_mode == term.ACCOUNT_TRADE_MODE_DEMO
    assert info.margin_mode == term.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    assert (info.currency, info.leverage) == ("USD", 100)
    assert info.balance == info.equity == info.margin_free == 10_000.0
    assert info.margin == 0.0


# ---------------------------------------------------------------- symbols and the Market Watch
def test_symbols_total_counts_every_symbol(term: SimTerminal) -> None:
    assert term.symbols_total() == len(term.symbols_get()) >= 30


def test_symbols_get_filters_with_group(term: SimTerminal) -> None:
    names = {s.name for s in term.symbols_get(group="*USD*,!*JPY*")}
    assert "EURUSD" in names
    assert "USDJPY" not in names
    assert {s.name for s in term.symbols_get("EUR*")} >= {"EURUSD", "EURJPY"}
    assert term.symbols_get(1) is False
    assert term.last_error() == (-2, 'Invalid "group" argument')


def test_symbol_info_of_unknown_symbol_is_not_found(term: SimTerminal) -> None:
    assert term.symbol_info("NOPE") is None
    assert term.last_error() == (-4, "Terminal: Not found")


def test_symbol_info_works_outside_the_market_watch_without_prices(term: SimTerminal) -> None:
    info = term.symbol_info("NZDJPY")
    assert info.select is False
    assert info.visible is False
    assert info.bid == 0.0
    assert info.digits == 3


def test_ticks_need_a_selected_symbol(term: SimTerminal) -> None:
    assert term.symbol_info_tick("NZDJPY") is None
    assert term.last_error() == (-1, "Terminal: Call failed")
    assert term.copy_rates_from_pos("NZDJPY", term.TIMEFRAME_M1, 0, 10) is None
    assert term.symbol_select("NZDJPY", True) is True
    tick = term.symbol_info_tick("NZDJPY")
    assert tick.bid > 0
    assert tick.ask >= tick.bid
    info = term.symbol_info("NZDJPY")
    assert info.select
    assert info.visible
    assert info.bid == tick.bid


def test_symbol_select_of_unknown_symbol_fails(term: SimTerminal) -> None:
    assert term.symbol_select("NOPE", True) is False
    assert term.last_error()[0] == -4


def test_symbol_select_accepts_truthy_enable_and_removes(term: SimTerminal) -> None:
    assert term.symbol_select("EURJPY", 1)
    assert term.symbol_info("EURJPY").select
    assert term.symbol_select("EURJPY", 0)
    assert not term.symbol_info("EURJPY").select


def test_broker_suffix_renames_every_symbol() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW), symbol_suffix=".m")
    assert term.initialize()
    assert term.symbol_info("EURUSD") is None
    info = term.symbol_info("EURUSD.m")
    assert info.select is True
    assert info.name == "EURUSD.m"
    assert term.symbol_info_tick("EURUSD.m") is not None


def test_market_book_needs_a_subscription(term: SimTerminal) -> None:
    assert term.market_book_get("EURUSD") is None
    assert term.market_book_add("EURUSD") is True
    book = term.market_book_get("EURUSD")
    sells = [b for b in book if b.type == term.BOOK_TYPE_SELL]
    buys = [b for b in book if b.type == term.BOOK_TYPE_BUY]
    assert len(sells) == len(buys) == 10
    assert min(s.price for s in sells) > max(b.price for b in buys)
    assert [b.price for b in book] == sorted((b.price for b in book), reverse=True)
    assert term.market_book_release("EURUSD") is True
    assert term.market_book_release("EURUSD") is False
    assert term.last_error() == (1, "Success")  # 5.0.6231 leaves it untouched
    assert term.market_book_add() is None
    assert term.last_error() == (-2, "Invalid arguments")


# ---------------------------------------------------------------- market data
def test_copy_rates_from_pos_returns_oldest_first_ending_at_the_forming_bar(
    term: SimTerminal,
) -> None:
    term.clock.advance(30)  # a forming bar exists once its first tick has arrived
    rates = term.copy_rates_from_pos("EURUSD", term.TIMEFRAME_M1, 0, 5)
    assert len(rates) == 5
    assert list(np.diff(rates["time"])) == [60] * 4
    assert rates["time"][-1] == NOW_S - NOW_S % 60


def test_copy_rates_range_is_inclusive(term: SimTerminal) -> None:
    rates = term.copy_rates_range("EURUSD", term.TIMEFRAME_M5, NOW_S - 3600, NOW_S - 1800)
    assert rates["time"][0] == NOW_S - 3600
    assert rates["time"][-1] == NOW_S - 1800
    assert len(rates) == 7


def test_copy_rates_accepts_aware_datetimes_ints_and_floats(term: SimTerminal) -> None:
    by_dt = term.copy_rates_from("EURUSD", term.TIMEFRAME_H1, NOW, 3)
    by_int = term.copy_rates_from("EURUSD", term.TIMEFRAME_H1, NOW_S, 3)
    by_float = term.copy_rates_from("EURUSD", term.TIMEFRAME_H1, NOW_S + 0.9, 3)
    assert np.array_equal(by_dt, by_int)
    assert np.array_equal(by_int, by_float)


FIRST_BAR = int(datetime(2000, 1, 3, tzinfo=UTC).timestamp())  # EURUSD's history start
BEFORE = (datetime(1995, 1, 2, tzinfo=UTC), datetime(1995, 1, 9, tzinfo=UTC))
FUTURE = (datetime(2027, 1, 4, tzinfo=UTC), datetime(2027, 1, 5, tzinfo=UTC))


@pytest.mark.parametrize(
    ("function", "args"),
    [
        ("copy_rates_range", (1, *BEFORE)),
        ("copy_rates_range", (1, *FUTURE)),
        ("copy_rates_from", (1, BEFORE[1], 10)),
        ("copy_ticks_range", (*BEFORE, -1)),
        ("copy_ticks_range", (*FUTURE, -1)),
        ("copy_ticks_from", (FUTURE[0], 10, -1)),
    ],
)
def test_requests_entirely_outside_the_servers_data_fail(
    term: SimTerminal, function: str, args: tuple[object, ...]
) -> None:
    # "If the interval of the requested data is completely outside the available data on the
    # server, then the function returns false" (the CopyRates documentation).
    assert getattr(term, function)("EURUSD", *args) is None
    assert term.last_error() == (-1, "Terminal: Call failed")


def test_requests_reaching_into_the_data_return_what_is_there(term: SimTerminal) -> None:
    rates = term.copy_rates_range("EURUSD", term.TIMEFRAME_H1, BEFORE[0], FIRST_BAR + 3600)
    assert list(rates["time"]) == [FIRST_BAR, FIRST_BAR + 3600]
    assert len(term.copy_rates_from("EURUSD", term.TIMEFRAME_H1, FIRST_BAR, 10)) == 1
    ticks = term.copy_ticks_from("EURUSD", BEFORE[0], 5, term.COPY_TICKS_ALL)
    assert ticks["time"][0] >= FIRST_BAR
    # Inside the history, a closed market is no data, not a failure.
    weekend = datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    assert len(term.copy_rates_range("EURUSD", term.TIMEFRAME_M1, *weekend)) == 0
    assert term.last_error() == (1, "Success")


@pytest.mark.parametrize("bad", ["2026-03-04", np.datetime64("2026-03-04"), 2**31, 0])
def test_copy_rates_rejects_other_date_types(term: SimTerminal, bad: object) -> None:
    assert term.copy_rates_from("EURUSD", term.TIMEFRAME_H1, bad, 3) is None
    assert term.last_error() == (-2, "Invalid arguments")


def test_requests_of_maxbars_or_more_fail_as_a_whole() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW), maxbars=1000)
    assert term.initialize()
    assert len(term.copy_rates_from_pos("EURUSD", term.TIMEFRAME_M1, 0, 999)) == 999
    assert term.copy_rates_from_pos("EURUSD", term.TIMEFRAME_M1, 0, 1000) is None
    assert term.last_error() == (-2, "Terminal: Invalid params")
    assert term.copy_rates_range("EURUSD", term.TIMEFRAME_M1, NOW_S - 1000 * 60, NOW_S) is None
    assert term.last_error() == (-2, "Terminal: Invalid params")
    assert term.copy_rates_from_pos("EURUSD", term.TIMEFRAME_M1, 500, 600) is None
    assert term.last_error() == (-1, "Terminal: Call failed")


def test_weekend_has_no_fx_bars_but_crypto_trades(term: SimTerminal) -> None:
    saturday = int(datetime(2026, 2, 28, tzinfo=UTC).timestamp())
    assert term.symbol_select("BTCUSD", True)
    fx = term.copy_rates_range("EURUSD", term.TIMEFRAME_H1, saturday, saturday + 86400 - 1)
    btc = term.copy_rates_range("BTCUSD", term.TIMEFRAME_H1, saturday, saturday + 86400 - 1)
    assert len(fx) == 0
    assert fx.dtype == term.copy_rates_from_pos("EURUSD", 1, 0, 1).dtype
    assert len(btc) == 24


def test_live_ticks_appear_as_the_clock_advances(term: SimTerminal) -> None:
    first = term.symbol_info_tick("EURUSD")
    term.clock.advance(120)
    later = term.symbol_info_tick("EURUSD")
    assert later.time_msc > first.time_msc
    ticks = term.copy_ticks_range("EURUSD", NOW_S, NOW_S + 120, term.COPY_TICKS_ALL)
    assert ticks["time_msc"][-1] == later.time_msc
    assert np.all(np.diff(ticks["time_msc"]) > 0)


def test_ticks_agree_with_their_m1_bar(term: SimTerminal) -> None:
    minute = NOW_S - 3600
    bar = term.copy_rates_range("EURUSD", term.TIMEFRAME_M1, minute, minute)[0]
    ticks = term.copy_ticks_range("EURUSD", minute, minute + 59, term.COPY_TICKS_ALL)
    assert len(ticks) == bar["tick_volume"]
    assert ticks["bid"][0] == bar["open"]
    assert ticks["bid"][-1] == bar["close"]
    assert ticks["bid"].max() == bar["high"]
    assert ticks["bid"].min() == bar["low"]


def test_copy_ticks_trade_flag_is_empty_for_fx(term: SimTerminal) -> None:
    ticks = term.copy_ticks_range("EURUSD", NOW_S - 600, NOW_S, term.COPY_TICKS_TRADE)
    assert len(ticks) == 0
    assert term.copy_ticks_range("EURUSD", NOW_S - 600, NOW_S, 7) is None
    assert term.last_error() == (-2, "Invalid arguments")


def test_market_data_is_deterministic_per_seed() -> None:
    def rates(seed: int) -> np.ndarray:
        t = SimTerminal(seed=seed, clock=SimClock.fixed(NOW))
        t.initialize()
        return t.copy_rates_from_pos("EURUSD", 16385, 0, 48)

    assert np.array_equal(rates(5), rates(5))
    assert not np.array_equal(rates(5), rates(6))


# ---------------------------------------------------------------- trading reads on a fresh account
def test_fresh_account_has_no_positions_orders_or_history(term: SimTerminal) -> None:
    assert term.positions_total() == 0
    assert term.orders_total() == 0
    assert term.positions_get() == ()
    assert term.orders_get(symbol="EURUSD") == ()
    assert term.history_orders_total(NOW_S - 86400, NOW_S) == 0
    assert term.history_deals_total(NOW_S - 86400, NOW_S) == 0
    assert term.history_deals_get(NOW_S - 86400, NOW_S, group="*") == ()
    assert term.history_orders_get(ticket=123) == ()
    assert term.history_deals_get(position=123) == ()


def test_positions_get_rejects_positional_arguments(term: SimTerminal) -> None:
    assert term.positions_get("EURUSD") is None
    assert term.last_error() == (-2, "Unnamed arguments not allowed")
    assert term.orders_get(ticket="1") is None
    assert term.last_error() == (-2, 'Invalid "ticket" argument')


def test_history_get_needs_dates_or_ticket_or_position(term: SimTerminal) -> None:
    assert term.history_deals_get() is None
    assert term.last_error() == (-2, "Invalid arguments")
    assert term.history_orders_get(NOW_S) is None
    assert term.last_error() == (-2, "Invalid arguments")
    assert term.history_orders_get(NOW_S, NOW_S, 3) is None


# ---------------------------------------------------------------- calculations
def test_order_calc_margin_and_profit(term: SimTerminal) -> None:
    margin = term.order_calc_margin(term.ORDER_TYPE_BUY, "EURUSD", 1.0, 1.1)
    assert margin == pytest.approx(1100.0)
    profit = term.order_calc_profit(term.ORDER_TYPE_BUY, "EURUSD", 1.0, 1.1, 1.1010)
    assert profit == pytest.approx(100.0)
    loss = term.order_calc_profit(term.ORDER_TYPE_SELL, "EURUSD", 0.5, 1.1, 1.1010)
    assert loss == pytest.approx(-50.0)
    assert term.order_calc_profit(term.ORDER_TYPE_BUY_LIMIT, "EURUSD", 1.0, 1.1, 1.2) is None
    assert term.order_calc_margin(term.ORDER_TYPE_BUY, "NOPE", 1.0, 1.1) is None


def test_order_calc_accepts_int_volumes(term: SimTerminal) -> None:
    assert term.order_calc_margin(0, "EURUSD", 1, 1.1) == pytest.approx(1100.0)


# ---------------------------------------------------------------- threads and calls are recorded
def test_calls_and_threads_are_recorded(term: SimTerminal) -> None:
    term.terminal_info()
    assert term.calls["terminal_info"] == 1
    assert term.calls["initialize"] == 1
    assert sum(term.thread_names.values()) == sum(term.calls.values())


def test_trading_works_with_a_broker_suffix() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW), symbol_suffix=".m")
    assert term.initialize()
    tick = term.symbol_info_tick("EURUSD.m")
    result = term.order_send(
        action=term.TRADE_ACTION_DEAL,
        symbol="EURUSD.m",
        volume=0.1,
        type=term.ORDER_TYPE_BUY,
        price=tick.ask,
        type_filling=term.ORDER_FILLING_IOC,
    )
    assert result.retcode == term.TRADE_RETCODE_DONE
    assert term.positions_get(symbol="EURUSD.m")[0].volume == 0.1
