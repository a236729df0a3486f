"""AsyncMT5Connector against the simulated terminal: lifecycle, calls, errors, timeouts, symbols."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from aiomt5 import AsyncMT5Connector, mt5_connection
from aiomt5._core._backoff import backoff_delay, is_testing, set_testing
from aiomt5._core._errors import (
    MT5ClosedError,
    MT5ConfigurationError,
    MT5ConnectionError,
    MT5InvalidArgumentError,
    MT5IPCTimeoutError,
    MT5LoginError,
    MT5NotAvailableError,
    MT5NotConnectedError,
    MT5OutcomeUnknownError,
    MT5SymbolNotFoundError,
    MT5TimeoutError,
    MT5WorkerBusyError,
)
from aiomt5._core._events import ConnectorEvent, LateResult, StateChanged, WorkerWedged
from aiomt5._core._types import ConnectionState
from aiomt5._market._symbols import pick_symbol
from aiomt5._market._timeframe import Timeframe
from aiomt5._settings import MT5Settings
from aiomt5.sim import DEFAULT_LOGIN, DEFAULT_PASSWORD, DEFAULT_SERVER, SimClock, SimTerminal

SIM_START = "2026-03-02T10:00:00Z"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def sim_settings(**overrides: Any) -> MT5Settings:
    fields: dict[str, Any] = {"backend": "sim", "testing": True, "call_timeout": 5.0}
    fields.update(overrides)
    return MT5Settings(_env_file=None, **fields)


class Recorder:
    def __init__(self) -> None:
        self.events: list[ConnectorEvent] = []
        self.arrived = asyncio.Event()

    def __call__(self, event: ConnectorEvent) -> None:
        self.events.append(event)
        self.arrived.set()

    def of(self, kind: type[ConnectorEvent]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind: type[ConnectorEvent]) -> Any:
        while not self.of(kind):
            self.arrived.clear()
            await self.arrived.wait()
        return self.of(kind)[0]


@pytest.fixture
def term() -> SimTerminal:
    return SimTerminal(seed=1, clock=SimClock.fixed(SIM_START))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def mt5(term: SimTerminal, recorder: Recorder) -> AsyncIterator[AsyncMT5Connector]:
    connector = AsyncMT5Connector(sim_settings(), backend=term, event_hooks=[recorder])
    await connector.connect()
    yield connector
    term.faults.release_all()
    await connector.close()


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("aiomt5-worker")]


async def wait_entered(hang: Any) -> None:
    assert await asyncio.to_thread(hang.entered.wait, 10)


# ---------------------------------------------------------------- lifecycle


async def test_connect_attaches_to_the_terminal(mt5: AsyncMT5Connector) -> None:
    assert mt5.state is ConnectionState.CONNECTED
    assert mt5.is_connected()
    account = await mt5.get_account_info()
    assert account.login == DEFAULT_LOGIN


async def test_async_with_connects_then_closes_for_good(term: SimTerminal) -> None:
    connector = AsyncMT5Connector(sim_settings(), backend=term)
    async with connector as mt5:
        assert mt5.is_connected()
    assert connector.state is ConnectionState.CLOSED
    assert not term.terminal_info()  # the session was shut down
    with pytest.raises(MT5ClosedError, match="create a new one"):
        await connector.connect()
    with pytest.raises(MT5ClosedError):
        await connector.call("terminal_info")


async def test_disconnect_joins_the_worker_and_connect_works_again(term: SimTerminal) -> None:
    connector = AsyncMT5Connector(sim_settings(), backend=term)
    await connector.connect()
    await connector.disconnect()
    assert connector.state is ConnectionState.DISCONNECTED
    assert worker_threads() == []
    with pytest.raises(MT5NotConnectedError, match="connect"):
        await connector.get_terminal_info()
    await connector.connect()
    assert (await connector.get_terminal_info()).connected
    assert connector.get_connection_stats().reconnects == 1
    await connector.close()
    assert worker_threads() == []


async def test_calls_before_connect_raise_not_connected(term: SimTerminal) -> None:
    connector = AsyncMT5Connector(sim_settings(), backend=term)
    with pytest.raises(MT5NotConnectedError):
        await connector.call("symbol_info_tick", "EURUSD")
    assert term.calls["symbol_info_tick"] == 0


async def test_state_changes_are_published(term: SimTerminal, recorder: Recorder) -> None:
    async with AsyncMT5Connector(sim_settings(), backend=term, event_hooks=[recorder]):
        pass
    changes = [(e.old, e.new) for e in recorder.of(StateChanged)]
    assert changes == [
        (ConnectionState.DISCONNECTED, ConnectionState.CONNECTING),
        (ConnectionState.CONNECTING, ConnectionState.CONNECTED),
        (ConnectionState.CONNECTED, ConnectionState.CLOSED),
    ]


async def test_connect_with_credentials_logs_in(term: SimTerminal) -> None:
    settings = sim_settings(
        attach_first=False,
        login=DEFAULT_LOGIN + 1,
        password=DEFAULT_PASSWORD,
        server=DEFAULT_SERVER,
    )
    async with AsyncMT5Connector(settings, backend=term) as mt5:
        assert (await mt5.get_account_info()).login == DEFAULT_LOGIN + 1


async def test_attach_first_keeps_the_attached_account_when_it_matches(term: SimTerminal) -> None:
    settings = sim_settings(login=DEFAULT_LOGIN, password=DEFAULT_PASSWORD)
    async with AsyncMT5Connector(settings, backend=term) as mt5:
        assert (await mt5.get_account_info()).login == DEFAULT_LOGIN
    assert term.calls["login"] == 0


async def test_attach_first_logs_in_when_the_attached_account_differs(term: SimTerminal) -> None:
    settings = sim_settings(login=DEFAULT_LOGIN + 1, password=DEFAULT_PASSWORD)
    async with AsyncMT5Connector(settings, backend=term) as mt5:
        assert (await mt5.get_account_info()).login == DEFAULT_LOGIN + 1
    assert term.calls["login"] == 1
    assert term.calls["initialize"] == 1


async def test_rejected_login_is_not_retried(term: SimTerminal) -> None:
    term.faults.reject_login()
    settings = sim_settings(
        attach_first=False, login=DEFAULT_LOGIN, password="wrong", max_retries=5
    )
    connector = AsyncMT5Connector(settings, backend=term)
    with pytest.raises(MT5LoginError) as info:
        await connector.connect()
    assert info.value.code == -6
    assert term.calls["initialize"] == 1
    assert connector.state is ConnectionState.DISCONNECTED
    assert worker_threads() == []


async def test_transient_connect_failures_are_retried(term: SimTerminal) -> None:
    term.faults.fail("initialize", -10003, times=2)
    connector = AsyncMT5Connector(sim_settings(max_retries=3), backend=term)
    await connector.connect()
    assert connector.is_connected()
    assert term.calls["initialize"] == 3
    await connector.close()


async def test_connect_gives_up_after_max_retries(term: SimTerminal) -> None:
    term.faults.fail("initialize", -10003, times=None)
    connector = AsyncMT5Connector(sim_settings(max_retries=2), backend=term)
    with pytest.raises(MT5ConnectionError) as info:
        await connector.connect()
    assert info.value.code == -10003
    assert "gave up after 2 connect attempt(s)" in "\n".join(info.value.__notes__)
    assert term.calls["initialize"] == 2
    assert connector.state is ConnectionState.DISCONNECTED
    assert worker_threads() == []


async def test_cancelled_connect_cleans_up_and_can_be_retried(term: SimTerminal) -> None:
    hang = term.faults.hang("initialize")
    connector = AsyncMT5Connector(sim_settings(), backend=term)
    task = asyncio.create_task(connector.connect())
    await wait_entered(hang)
    task.cancel()
    await asyncio.sleep(0)
    assert connector.state is ConnectionState.DISCONNECTED
    hang.release()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert worker_threads() == []
    await connector.connect()
    assert connector.is_connected()
    await connector.close()


class RetryScheduled(logging.Handler):
    """Sets an event when the connector starts waiting before its next connect attempt."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.__dict__.get("event") == "aiomt5.connector.connect_retry_scheduled":
            self.seen.set()


async def test_close_interrupts_a_connect_that_keeps_retrying(term: SimTerminal) -> None:
    term.faults.fail("initialize", -10003, times=None)
    settings = sim_settings(max_retries=None, testing=False, retry_delay=60, retry_max_delay=60)
    connector = AsyncMT5Connector(settings, backend=term)
    watcher = RetryScheduled()
    logger = logging.getLogger("aiomt5.connector")
    logger.addHandler(watcher)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        connecting = asyncio.create_task(connector.connect())
        await watcher.seen.wait()  # now sleeping 30-60 s before the next attempt
        await connector.close()
    finally:
        logger.removeHandler(watcher)
        logger.setLevel(level)
    assert connecting.cancelled()
    assert connector.state is ConnectionState.CLOSED
    assert worker_threads() == []


async def test_hung_initialize_times_out_as_an_ipc_timeout(
    term: SimTerminal, recorder: Recorder
) -> None:
    hang = term.faults.hang("initialize")
    connector = AsyncMT5Connector(
        sim_settings(connect_timeout=0.05, max_retries=1), backend=term, event_hooks=[recorder]
    )
    task = asyncio.create_task(connector.connect())
    await wait_entered(hang)
    while connector.state is not ConnectionState.DISCONNECTED:  # the timeout fired
        recorder.arrived.clear()
        await recorder.arrived.wait()
    hang.release()
    with pytest.raises(MT5IPCTimeoutError, match="connect_timeout"):
        await task
    late = await recorder.wait_for(LateResult)
    assert late.function == "initialize"


# ---------------------------------------------------------------- calls and threads


async def test_every_backend_call_runs_on_the_worker_thread(term: SimTerminal) -> None:
    async with AsyncMT5Connector(sim_settings(), backend=term) as mt5:
        await mt5.get_terminal_info()
        await mt5.get_rates("EURUSD", "H1", count=10)
        await mt5.find_symbol("EURUSD")
        await mt5.health_check()
        with pytest.raises(MT5SymbolNotFoundError):
            await mt5.get_symbol_info("NOPE")
    names = set(term.thread_names)
    assert names
    assert all(name.startswith("aiomt5-worker") for name in names), names
    assert threading.current_thread().name not in names


async def test_the_loop_keeps_running_while_a_call_is_stuck(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    hang = term.faults.hang("copy_rates_from_pos")
    call = asyncio.create_task(mt5.get_rates("EURUSD", "M1", count=5))
    await wait_entered(hang)
    ticks = 0
    for _ in range(100):  # the loop is free: other coroutines run while the call blocks
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 100
    assert not call.done()
    hang.release()
    assert len(await call) == 5


async def test_failed_call_becomes_the_matching_error(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5SymbolNotFoundError) as info:
        await mt5.get_symbol_info("NOPE")
    error = info.value
    assert (error.code, error.function) == (-4, "symbol_info")
    assert error.args_summary == "symbol_info('NOPE')"
    assert "symbol_info('NOPE')" in str(error)


async def test_last_error_is_read_in_the_same_job_as_the_failing_call(
    mt5: AsyncMT5Connector,
) -> None:
    # Successful calls interleaved with failing ones would reset last_error() to (1, "Success")
    # if it were read in a separate job.
    calls = []
    for i in range(60):
        if i % 2:
            calls.append(mt5.call("symbol_info", "NOPE"))
        else:
            calls.append(mt5.call("symbol_info_tick", "EURUSD"))
    results = await asyncio.gather(*calls, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 30
    assert all(isinstance(f, MT5SymbolNotFoundError) and f.code == -4 for f in failures)


async def test_ipc_failure_is_a_connection_error(mt5: AsyncMT5Connector, term: SimTerminal) -> None:
    term.faults.fail("symbol_info_tick", -10001)
    with pytest.raises(MT5ConnectionError) as info:
        await mt5.call("symbol_info_tick", "EURUSD")
    assert info.value.code == -10001
    assert (await mt5.call("symbol_info_tick", "EURUSD")).bid > 0


async def test_call_refuses_the_lifecycle_functions(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="connect"):
        await mt5.call("initialize")
    with pytest.raises(MT5InvalidArgumentError, match="disconnect"):
        await mt5.call("shutdown")


async def test_call_of_an_unknown_function_suggests_the_right_one(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="symbol_info_tick"):
        await mt5.call("symbol_info_tik", "EURUSD")


async def test_call_passes_keyword_arguments(mt5: AsyncMT5Connector) -> None:
    symbols = await mt5.call("symbols_get", group="EUR*")
    assert symbols
    assert all(s.name.startswith("EUR") for s in symbols)


# ---------------------------------------------------------------- timeouts and cancellation


async def test_after_a_timeout_the_connector_still_works(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    hang = term.faults.hang("symbol_info_tick")
    with pytest.raises(MT5TimeoutError, match="abandoned"):
        await mt5.call("symbol_info_tick", "EURUSD", timeout=0.2)
    hang.release()
    assert (await mt5.get_terminal_info()).connected
    stats = mt5.get_connection_stats()
    assert (stats.timeouts, stats.abandoned) == (1, 1)


async def test_after_a_cancellation_the_connector_still_works(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    hang = term.faults.hang("symbol_info_tick")
    task = asyncio.create_task(mt5.call("symbol_info_tick", "EURUSD"))
    await wait_entered(hang)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    hang.release()
    assert (await mt5.get_terminal_info()).connected


async def test_timeouts_and_cancellations_race_stress(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    outcomes = {"ok": 0, "timeout": 0, "cancelled": 0}
    for i in range(500):
        task = asyncio.create_task(
            mt5.call("symbol_info_tick", "EURUSD", timeout=1e-6 * (1 + i % 9))
        )
        if i % 4 == 0:
            await asyncio.sleep(0)
            task.cancel()
        try:
            await task
            outcomes["ok"] += 1
        except MT5TimeoutError:
            outcomes["timeout"] += 1
        except asyncio.CancelledError:
            outcomes["cancelled"] += 1
        assert (await mt5.call("symbol_info_tick", "EURUSD")).bid > 0
    assert outcomes["timeout"] + outcomes["cancelled"] > 0
    assert mt5.is_connected()
    assert term.calls["symbol_info_tick"] <= 1000


async def test_queued_then_cancelled_call_never_reaches_the_terminal(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    hang = term.faults.hang("terminal_info")
    blocker = asyncio.create_task(mt5.get_terminal_info())
    await wait_entered(hang)
    request = {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0}
    order = asyncio.create_task(mt5.call("order_send", request))
    timed_out = asyncio.create_task(mt5.call("order_send", request, timeout=0.01))
    await asyncio.sleep(0)
    order.cancel()
    with pytest.raises(asyncio.CancelledError):
        await order
    with pytest.raises(MT5TimeoutError, match="never ran"):
        await timed_out
    hang.release()
    await blocker
    await mt5.get_terminal_info()  # FIFO: everything queued before has been handled
    assert term.calls["order_send"] == 0
    assert mt5.get_connection_stats().outcome_unknown == 0


async def test_write_timing_out_mid_call_reports_outcome_unknown_then_the_late_result(
    mt5: AsyncMT5Connector, term: SimTerminal, recorder: Recorder
) -> None:
    hang = term.faults.hang("symbol_select")
    with pytest.raises(MT5OutcomeUnknownError, match="may have taken effect"):
        await mt5.call("symbol_select", "EURJPY", True, timeout=0.2)
    assert recorder.of(LateResult) == []
    hang.release()
    late = await recorder.wait_for(LateResult)
    assert late.function == "symbol_select"
    assert late.result is True
    assert "EURJPY" in late.args_summary
    assert mt5.get_connection_stats().late_results == 1


async def test_wedged_connector_fails_fast_until_the_stuck_call_returns(
    term: SimTerminal, recorder: Recorder
) -> None:
    settings = sim_settings(worker_wedged_after=0.0)
    async with AsyncMT5Connector(settings, backend=term, event_hooks=[recorder]) as mt5:
        hang = term.faults.hang("symbol_select")
        with pytest.raises(MT5OutcomeUnknownError):
            await mt5.call("symbol_select", "EURUSD", True, timeout=0.2)
        with pytest.raises(MT5WorkerBusyError, match="symbol_select"):
            await mt5.get_terminal_info()
        stats = mt5.get_connection_stats()
        assert (stats.worker_state, stats.in_flight, stats.rejected_busy) == (
            "wedged",
            "symbol_select",
            1,
        )
        assert len(recorder.of(WorkerWedged)) == 1
        hang.release()
        await recorder.wait_for(LateResult)
        assert (await mt5.get_terminal_info()).connected


async def test_timeout_none_waits_and_the_default_uses_settings(term: SimTerminal) -> None:
    async with AsyncMT5Connector(sim_settings(call_timeout=0.01), backend=term) as mt5:
        hang = term.faults.hang("symbol_info_tick")
        with pytest.raises(MT5TimeoutError):
            await mt5.call("symbol_info_tick", "EURUSD")  # USE_DEFAULT: 0.01 s
        hang.release()
        hang = term.faults.hang("symbol_info_tick")
        waiting = asyncio.create_task(mt5.call("symbol_info_tick", "EURUSD", timeout=None))
        await wait_entered(hang)
        with pytest.raises(MT5TimeoutError, match="never ran"):
            await mt5.get_terminal_info()  # the default timeout elapses behind the waiting call
        assert not waiting.done()
        hang.release()
        assert (await waiting).bid > 0


# ---------------------------------------------------------------- typed API


async def test_available_symbols_are_names_filtered_by_group(mt5: AsyncMT5Connector) -> None:
    everything = await mt5.get_available_symbols()
    assert "EURUSD" in everything
    euro = await mt5.get_available_symbols("EUR*")
    assert euro
    assert set(euro) < set(everything)
    assert all(name.startswith("EUR") for name in euro)


async def test_find_symbol_exact_name(mt5: AsyncMT5Connector) -> None:
    assert await mt5.find_symbol("EURUSD") == "EURUSD"


async def test_find_symbol_resolves_a_broker_suffix(term: SimTerminal) -> None:
    suffixed = SimTerminal(seed=1, clock=SimClock.fixed(SIM_START), symbol_suffix=".m")
    async with AsyncMT5Connector(sim_settings(), backend=suffixed) as mt5:
        assert await mt5.find_symbol("EURUSD") == "EURUSD.m"
        assert await mt5.find_symbol("eurusd") == "EURUSD.m"


async def test_find_symbol_is_cached_and_the_cache_clears_on_reconnect(
    term: SimTerminal,
) -> None:
    suffixed = SimTerminal(seed=1, clock=SimClock.fixed(SIM_START), symbol_suffix=".m")
    connector = AsyncMT5Connector(sim_settings(), backend=suffixed)
    await connector.connect()
    await connector.find_symbol("GBPUSD")
    await connector.find_symbol("GBPUSD")
    assert suffixed.calls["symbols_get"] == 1
    assert suffixed.calls["symbol_info"] == 1
    await connector.disconnect()
    await connector.connect()
    await connector.find_symbol("GBPUSD")
    assert suffixed.calls["symbol_info"] == 2
    await connector.close()


async def test_find_symbol_without_cache_asks_every_time(term: SimTerminal) -> None:
    async with AsyncMT5Connector(sim_settings(symbol_cache_ttl=0), backend=term) as mt5:
        await mt5.find_symbol("EURUSD")
        await mt5.find_symbol("EURUSD")
    assert term.calls["symbol_info"] == 2


async def test_find_symbol_not_found_suggests_close_names(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5SymbolNotFoundError, match="EURUSD") as info:
        await mt5.find_symbol("EURUSE")
    assert info.value.candidates == ()


def test_pick_symbol_lists_candidates_when_ambiguous() -> None:
    with pytest.raises(MT5SymbolNotFoundError, match="ambiguous") as info:
        pick_symbol("EURUSD", ["EURUSD.m", "EURUSDm", "GBPUSD"])
    assert info.value.candidates == ("EURUSD.m", "EURUSDm")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["EURUSD.m", "GBPUSD.m"], "EURUSD.m"),
        (["mEURUSD", "GBPUSD"], "mEURUSD"),
        (["#EURUSD", "EURUSDX"], "#EURUSD"),
        (["EURUSD_i"], "EURUSD_i"),
        (["eurusd", "EURUSD.m"], "eurusd"),
    ],
)
def test_pick_symbol_finds_the_unique_decorated_name(names: list[str], expected: str) -> None:
    assert pick_symbol("EURUSD", names) == expected


def test_pick_symbol_does_not_take_another_instrument_for_a_decoration() -> None:
    with pytest.raises(MT5SymbolNotFoundError):
        pick_symbol("USD", ["EURUSD"])


async def test_get_rates_accepts_enum_name_and_int_timeframes(mt5: AsyncMT5Connector) -> None:
    by_enum = await mt5.get_rates("EURUSD", Timeframe.H1, count=20)
    by_name = await mt5.get_rates("EURUSD", "h1", count=20)
    by_int = await mt5.get_rates("EURUSD", 16385, count=20)
    assert len(by_enum) == 20
    assert np.array_equal(by_enum, by_name)
    assert np.array_equal(by_enum, by_int)


async def test_get_rates_range_form(mt5: AsyncMT5Connector) -> None:
    start = NOW - timedelta(hours=6)
    rates = await mt5.get_rates("EURUSD", "H1", start, NOW)
    assert len(rates) > 0
    assert rates["time"][0] >= int(start.timestamp())
    assert rates["time"][-1] <= int(NOW.timestamp())


async def test_get_rates_from_date_with_count(mt5: AsyncMT5Connector) -> None:
    rates = await mt5.get_rates("EURUSD", "M5", NOW, count=7)
    assert len(rates) == 7
    assert rates["time"][-1] <= int(NOW.timestamp())


async def test_get_rates_from_position(mt5: AsyncMT5Connector) -> None:
    latest = await mt5.get_rates("EURUSD", "M1", count=10)
    older = await mt5.get_rates("EURUSD", "M1", start_pos=5, count=5)
    assert np.array_equal(latest[:5], older)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((datetime(2026, 3, 1),), {"count": 5}, "naive"),  # naive on purpose
        ((), {}, "say which bars"),
        ((NOW, NOW), {"count": 3}, "not both"),
        ((), {"start_pos": 3}, "needs count"),
        ((NOW,), {"start_pos": 3, "count": 2}, "do not combine"),
        ((), {"count": 0}, "count must be"),
        ((NOW, NOW - timedelta(hours=1)), {}, "before date_from"),
        (("2026-03-01",), {"count": 5}, "timezone-aware datetime"),
    ],
)
async def test_get_rates_rejects_bad_arguments_before_calling(
    mt5: AsyncMT5Connector,
    term: SimTerminal,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    message: str,
) -> None:
    before = sum(term.calls.values())
    with pytest.raises(MT5InvalidArgumentError, match=message):
        await mt5.get_rates("EURUSD", "H1", *args, **kwargs)
    assert sum(term.calls.values()) == before


async def test_get_rates_rejects_an_unknown_timeframe(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="H7"):
        await mt5.get_rates("EURUSD", "H7", count=3)


async def test_get_rates_pages_past_the_terminals_maxbars() -> None:
    term = SimTerminal(seed=4, clock=SimClock.fixed(NOW), maxbars=500)
    async with AsyncMT5Connector(sim_settings(), backend=term) as mt5:
        rates = await mt5.get_rates("EURUSD", "M1", count=1_234)
    assert len(rates) == 1_234
    assert (np.diff(rates["time"]) > 0).all()
    assert term.calls["copy_rates_from"] + term.calls["copy_rates_from_pos"] >= 3


# ---------------------------------------------------------------- health and stats


async def test_health_check_of_a_healthy_terminal(mt5: AsyncMT5Connector) -> None:
    report = await mt5.health_check()
    assert report.ok
    assert report.terminal_connected
    assert report.account_reachable
    assert report.login == DEFAULT_LOGIN
    assert report.error is None


async def test_health_check_reports_a_trade_server_outage(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    term.faults.drop_trade_server()
    report = await mt5.health_check()
    assert not report.ok
    assert not report.terminal_connected
    assert "trade server" in (report.error or "")


async def test_health_check_reports_a_broken_pipe(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    term.faults.break_pipe()
    report = await mt5.health_check()
    assert not report.ok
    assert "-10004" in (report.error or "")


async def test_health_check_when_not_connected_and_when_closed(term: SimTerminal) -> None:
    connector = AsyncMT5Connector(sim_settings(), backend=term)
    report = await connector.health_check()
    assert not report.ok
    assert "connect" in (report.error or "")
    await connector.close()
    with pytest.raises(MT5ClosedError):
        await connector.health_check()


async def test_connection_stats_count_calls_failures_and_latency(
    mt5: AsyncMT5Connector,
) -> None:
    before = mt5.get_connection_stats()
    for _ in range(5):
        await mt5.get_terminal_info()
    with pytest.raises(MT5SymbolNotFoundError):
        await mt5.get_symbol_info("NOPE")
    stats = mt5.get_connection_stats()
    assert stats.state is ConnectionState.CONNECTED
    assert (stats.calls - before.calls, stats.failures - before.failures) == (6, 1)
    assert stats.timeouts == 0
    assert stats.latency_p50_ms is not None
    assert stats.latency_p99_ms is not None
    assert stats.latency_p50_ms <= stats.latency_p99_ms
    assert stats.uptime_seconds > 0
    assert stats.connected_since is not None
    assert "NOPE" in (stats.last_error or "")
    assert stats.backend.startswith("custom(SimTerminal")


# ---------------------------------------------------------------- singleton and helpers


async def test_get_instance_is_one_per_process() -> None:
    AsyncMT5Connector.reset_instance()
    try:
        settings = sim_settings()
        first = AsyncMT5Connector.get_instance(settings)
        assert AsyncMT5Connector.get_instance() is first
        assert AsyncMT5Connector.get_instance(sim_settings()) is first  # equal settings
        with pytest.raises(MT5ConfigurationError, match="different settings"):
            AsyncMT5Connector.get_instance(sim_settings(call_timeout=9.0))
        await first.connect()
        await first.close()
        second = AsyncMT5Connector.get_instance(sim_settings(call_timeout=9.0))
        assert second is not first
    finally:
        AsyncMT5Connector.reset_instance()


async def test_reset_instance_closes_a_live_instance() -> None:
    AsyncMT5Connector.reset_instance()
    live = AsyncMT5Connector.get_instance(sim_settings())
    await live.connect()
    AsyncMT5Connector.reset_instance()
    assert live.state is ConnectionState.CLOSED
    assert worker_threads() == []
    assert AsyncMT5Connector.get_instance(sim_settings()) is not live
    AsyncMT5Connector.reset_instance()


async def test_mt5_connection_yields_a_connected_connector_and_closes_it() -> None:
    async with mt5_connection(backend="sim", testing=True, sim_start=SIM_START) as mt5:
        assert mt5.is_connected()
        assert mt5.settings.backend == "sim"
        assert (await mt5.get_account_info()).login == DEFAULT_LOGIN
    assert mt5.state is ConnectionState.CLOSED


async def test_mt5_connection_overrides_keep_the_base_settings() -> None:
    base = sim_settings(call_timeout=7.0)
    async with mt5_connection(base, sim_seed=3) as mt5:
        assert (mt5.settings.call_timeout, mt5.settings.sim_seed) == (7.0, 3)


async def test_unclosed_connector_warns(term: SimTerminal) -> None:
    connector = AsyncMT5Connector(sim_settings(), backend=term)
    await connector.connect()
    thread = connector.worker.thread if connector.worker else None
    with pytest.warns(ResourceWarning, match="unclosed"):
        del connector  # the last reference: collected at once
    assert thread is not None
    await asyncio.to_thread(thread.join, 10)  # the forgotten connector's worker stops
    assert not thread.is_alive()


# ---------------------------------------------------------------- backends


async def test_backend_sim_by_name_builds_a_simulator() -> None:
    async with AsyncMT5Connector(sim_settings(sim_seed=4, sim_start=SIM_START)) as mt5:
        assert isinstance(mt5.backend, SimTerminal)
        assert mt5.backend.seed == 4
        assert mt5.get_connection_stats().backend == "sim(seed=4)"


def test_backend_object_missing_functions_is_refused() -> None:
    class NotATerminal:
        def initialize(self) -> bool:
            return True

    with pytest.raises(MT5ConfigurationError, match="last_error"):
        AsyncMT5Connector(sim_settings(), backend=NotATerminal())


async def test_auto_backend_without_metatrader5_explains_the_alternatives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "MetaTrader5", None)  # import fails
    connector = AsyncMT5Connector(sim_settings(backend="auto"))
    with pytest.raises(MT5NotAvailableError, match="backend='sim'"):
        await connector.connect()
    assert connector.state is ConnectionState.DISCONNECTED


@pytest.mark.parametrize("url", ["aiomt5://127.0.0.1:9"])
async def test_remote_backend_urls_build_a_remote_terminal(url: str) -> None:
    connector = AsyncMT5Connector(sim_settings(backend=url, max_retries=1))
    with pytest.raises(MT5ConnectionError):  # nothing listens on the discard port
        await connector.connect()
    assert connector.get_connection_stats().backend == f"remote({url})"
    assert connector.state is ConnectionState.DISCONNECTED


async def test_mt5linux_backend_without_rpyc_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    modules = __import__("sys").modules
    monkeypatch.setitem(modules, "rpyc", None)  # as if the remote extra were missing
    monkeypatch.setitem(modules, "aiomt5._remote._mt5linux", None)  # even if imported before
    connector = AsyncMT5Connector(sim_settings(backend="mt5linux://127.0.0.1:9"))
    with pytest.raises(MT5NotAvailableError, match=r"aiomt5\[remote\]"):
        await connector.connect()


async def test_a_failing_event_hook_is_logged_and_ignored(
    term: SimTerminal, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: ConnectorEvent) -> None:
        raise RuntimeError("hook bug")

    with caplog.at_level(logging.ERROR, logger="aiomt5"):
        async with AsyncMT5Connector(sim_settings(), backend=term, event_hooks=[broken]) as mt5:
            assert mt5.is_connected()
    assert any("event_hook_failed" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- secrets


async def test_password_never_appears_in_reprs_errors_or_logs(
    term: SimTerminal, caplog: pytest.LogCaptureFixture
) -> None:
    secret = DEFAULT_PASSWORD  # the simulator checks it, so it must be the real one
    term.faults.reject_login()
    settings = sim_settings(
        attach_first=False, login=DEFAULT_LOGIN, password=secret, server=DEFAULT_SERVER
    )
    connector = AsyncMT5Connector(settings, backend=term)
    with caplog.at_level(logging.DEBUG, logger="aiomt5"):
        with pytest.raises(MT5LoginError) as info:
            await connector.connect()
        term.faults.clear()
        await connector.connect()
        await connector.call("login", DEFAULT_LOGIN, secret, DEFAULT_SERVER)
        term.faults.reject_login()
        with pytest.raises(MT5LoginError) as second:
            await connector.call("login", DEFAULT_LOGIN, secret, DEFAULT_SERVER)
        await connector.close()
    texts = [
        repr(connector),
        repr(settings),
        str(settings),
        str(info.value),
        repr(info.value),
        str(second.value),
        str(connector.get_connection_stats()),
        *(r.getMessage() for r in caplog.records),
        *(str(r.__dict__) for r in caplog.records),
    ]
    assert caplog.records
    assert "'***'" in str(second.value)
    assert not [t for t in texts if secret in t]


# ---------------------------------------------------------------- backoff and testing mode


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    import random

    rng = random.Random(0)
    delays = [backoff_delay(n, initial=1.0, maximum=8.0, rng=rng) for n in range(1, 8)]
    for attempt, delay in enumerate(delays, start=1):
        base = min(8.0, 2.0 ** (attempt - 1))
        assert base / 2 <= delay <= base
    assert backoff_delay(10_000, initial=1.0, maximum=8.0, rng=rng) <= 8.0


def test_testing_mode_zeroes_backoff() -> None:
    import random

    rng = random.Random(0)
    assert backoff_delay(3, initial=1.0, maximum=8.0, rng=rng, testing=True) == 0.0
    assert not is_testing()
    with set_testing(True):
        assert is_testing()
        assert backoff_delay(3, initial=1.0, maximum=8.0, rng=rng) == 0.0
    assert not is_testing()


# ---------------------------------------------------------------- timeframes


def test_timeframe_values_are_metatrader5_constants(term: SimTerminal) -> None:
    for member in Timeframe:
        assert getattr(term, f"TIMEFRAME_{member.name}") == member.value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("H1", Timeframe.H1),
        ("m15", Timeframe.M15),
        ("TIMEFRAME_D1", Timeframe.D1),
        (49153, Timeframe.MN1),
    ],
)
def test_timeframe_parse_accepts_names_and_values(value: str | int, expected: Timeframe) -> None:
    assert Timeframe.parse(value) is expected


@pytest.mark.parametrize("value", [True, 7, "H5", 1.5, None])
def test_timeframe_parse_rejects_everything_else_listing_the_valid_names(value: Any) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="M1, M2"):
        Timeframe.parse(value)


def test_timeframe_seconds() -> None:
    assert (Timeframe.M5.seconds, Timeframe.H4.seconds, Timeframe.D1.seconds) == (300, 14400, 86400)
    assert Timeframe.W1.seconds == 7 * 86400


async def test_process_isolation_runs_the_backend_in_a_child_process() -> None:
    settings = sim_settings(isolation="process", isolation_hard_limit=30.0)
    async with AsyncMT5Connector(settings) as mt5:
        account = await mt5.get_account_info()
        backend = mt5.backend
        assert type(backend).__name__ == "ChildTerminal"
        assert backend.pid is not None
        assert backend.pid != os.getpid()
    assert account.login == 5001234
