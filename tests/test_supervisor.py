"""The supervisor: states, health checks, reconnection with backoff, events and stats."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiomt5 import AsyncMT5Connector
from aiomt5._core._errors import MT5ConnectionError, MT5NotConnectedError, MT5TimeoutError
from aiomt5._core._events import (
    ConnectorEvent,
    HealthFailed,
    Reconnected,
    ReconnectFailed,
    ReconnectScheduled,
    StateChanged,
)
from aiomt5._core._supervisor import Supervisor, _Health
from aiomt5._core._types import ConnectionState
from aiomt5._market._history import terminal_maxbars
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal

SIM_START = "2026-03-02T10:00:00Z"
GUARD = 30.0  # a bound against a hung test, never a wait for time to pass
# A timeout the worker starts the call within even on a loaded machine: 1 ms did not (the call was
# then cancelled while still queued and never hung, so there was nothing to wedge).
STARTS_WITHIN = 0.2


def settings(**overrides: Any) -> MT5Settings:
    fields: dict[str, Any] = {
        "backend": "sim",
        "testing": True,
        "call_timeout": 5.0,
        "health_check": False,
    }
    fields.update(overrides)
    return MT5Settings(_env_file=None, **fields)


class Events:
    def __init__(self) -> None:
        self.seen: list[ConnectorEvent] = []
        self.arrived = asyncio.Event()

    def __call__(self, event: ConnectorEvent) -> None:
        self.seen.append(event)
        self.arrived.set()

    def of(self, kind: type[ConnectorEvent]) -> list[Any]:
        return [e for e in self.seen if isinstance(e, kind)]

    async def wait_for(self, kind: type[ConnectorEvent], count: int = 1) -> Any:
        async with asyncio.timeout(GUARD):
            while len(self.of(kind)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.of(kind)[count - 1]

    async def wait_state(self, state: ConnectionState, count: int = 1) -> None:
        async with asyncio.timeout(GUARD):
            while sum(1 for e in self.of(StateChanged) if e.new is state) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop (and the worker thread) until ``condition`` holds.

    For counters the supervisor keeps without publishing an event; sleep(0) only yields.
    """
    async with asyncio.timeout(GUARD):
        while not condition():  # noqa: ASYNC110  # no event to wait on; never sleeps
            await asyncio.sleep(0)


async def entered(event: threading.Event) -> None:
    await asyncio.to_thread(event.wait, GUARD)


@pytest.fixture
def term() -> SimTerminal:
    return SimTerminal(seed=1, clock=SimClock.fixed(SIM_START))


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
async def mt5(term: SimTerminal, events: Events) -> AsyncIterator[AsyncMT5Connector]:
    async with AsyncMT5Connector(settings(), backend=term, event_hooks=[events]) as connector:
        yield connector


def supervisor_of(connector: AsyncMT5Connector) -> Supervisor:
    supervisor = connector._supervisor
    assert supervisor is not None
    return supervisor


def aiomt5_tasks() -> set[str]:
    return {t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("aiomt5-")}


_EARLIER_THREADS: set[threading.Thread] = set()


@pytest.fixture(autouse=True)
def _threads_of_earlier_tests() -> None:
    # A worker stuck in a hung call is abandoned as a daemon until the call returns, by design:
    # one left by an earlier test may still be alive, and it is not this test's.
    _EARLIER_THREADS.clear()
    _EARLIER_THREADS.update(threading.enumerate())


def worker_threads() -> list[threading.Thread]:
    """This test's worker threads (see ``_threads_of_earlier_tests``)."""
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("aiomt5-worker") and t not in _EARLIER_THREADS
    ]


# ---------------------------------------------------------------- lifecycle


async def test_connect_starts_the_supervisor_and_close_stops_it(term: SimTerminal) -> None:
    connector = AsyncMT5Connector(settings(health_check=True), backend=term)
    await connector.connect()
    assert aiomt5_tasks() == {"aiomt5-supervisor", "aiomt5-health"}
    await connector.close()
    assert aiomt5_tasks() == set()
    assert worker_threads() == []


async def test_health_check_off_runs_no_health_task(mt5: AsyncMT5Connector) -> None:
    assert aiomt5_tasks() == {"aiomt5-supervisor"}


async def test_disconnect_stops_the_supervisor_and_connect_starts_a_new_one(
    mt5: AsyncMT5Connector,
) -> None:
    first = supervisor_of(mt5)
    await mt5.disconnect()
    assert aiomt5_tasks() == set()
    await mt5.connect()
    assert supervisor_of(mt5) is not first
    assert supervisor_of(mt5).running


# ---------------------------------------------------------------- reconnection


async def test_a_call_hitting_a_broken_pipe_triggers_a_reconnect(
    mt5: AsyncMT5Connector, term: SimTerminal, events: Events
) -> None:
    term.faults.break_pipe()
    with pytest.raises(MT5NotConnectedError):
        await mt5.call("symbol_info_tick", "EURUSD")
    reconnected = await events.wait_for(Reconnected)
    assert reconnected.attempts == 1
    assert isinstance(reconnected.cause, MT5NotConnectedError)
    assert mt5.state is ConnectionState.CONNECTED
    assert (await mt5.call("symbol_info_tick", "EURUSD")).bid > 0
    changes = [(e.old, e.new) for e in events.of(StateChanged)][-2:]
    assert changes == [
        (ConnectionState.CONNECTED, ConnectionState.RECONNECTING),
        (ConnectionState.RECONNECTING, ConnectionState.CONNECTED),
    ]
    assert events.of(HealthFailed)[0].action == "reconnect"


async def test_a_reconnect_uses_a_new_worker_and_clears_the_symbol_cache(
    mt5: AsyncMT5Connector, term: SimTerminal, events: Events
) -> None:
    await mt5.find_symbol("GBPUSD")
    old_worker = mt5.worker
    term.faults.break_pipe()
    with pytest.raises(MT5ConnectionError):
        await mt5.get_terminal_info()
    await events.wait_for(Reconnected)
    assert mt5.worker is not old_worker
    assert old_worker is not None
    assert old_worker.thread is not None
    assert not old_worker.thread.is_alive()
    await mt5.find_symbol("GBPUSD")
    assert term.calls["symbol_info"] == 2


async def test_a_single_ipc_failure_is_checked_before_reconnecting(
    mt5: AsyncMT5Connector, term: SimTerminal, events: Events
) -> None:
    term.faults.fail("symbol_info_tick", -10001)
    with pytest.raises(MT5ConnectionError):
        await mt5.call("symbol_info_tick", "EURUSD")
    probes = term.calls["terminal_info"]
    await until(lambda: supervisor_of(mt5).health_checks == 1)
    await until(lambda: term.calls["terminal_info"] > probes)
    for _ in range(10):
        await asyncio.sleep(0)
    assert events.of(Reconnected) == []
    assert mt5.state is ConnectionState.CONNECTED


async def test_reconnect_backoff_is_capped_and_jittered_and_reconnect_skips_it(
    term: SimTerminal, events: Events
) -> None:
    slow = settings(testing=False, retry_delay=40.0, retry_max_delay=60.0)
    async with AsyncMT5Connector(slow, backend=term, event_hooks=[events]) as mt5:
        term.faults.fail("initialize", -10003, times=2)
        term.faults.break_pipe()
        with pytest.raises(MT5NotConnectedError):
            await mt5.get_account_info()
        first = await events.wait_for(ReconnectScheduled)
        assert (first.attempt, 20.0 <= first.delay <= 40.0) == (1, True)
        waking = asyncio.create_task(mt5.reconnect())  # skips the 20-40 s wait
        second = await events.wait_for(ReconnectScheduled, 2)
        assert 30.0 <= second.delay <= 60.0  # 80 s capped at 60, jittered in the upper half
        await mt5.reconnect()  # skips that one too
        await waking
        assert mt5.state is ConnectionState.CONNECTED
        assert mt5.get_connection_stats().reconnect_attempts == 3


async def test_reconnect_replaces_a_live_session(mt5: AsyncMT5Connector, events: Events) -> None:
    before = mt5.get_connection_stats().connects
    await mt5.reconnect()
    assert mt5.get_connection_stats().connects == before + 1
    assert (await events.wait_for(Reconnected)).cause is None


async def test_giving_up_reaches_every_later_call_until_connect_starts_over(
    term: SimTerminal, events: Events
) -> None:
    limited = settings(reconnect_max_retries=2)
    async with AsyncMT5Connector(limited, backend=term, event_hooks=[events]) as mt5:
        term.faults.fail("initialize", -10003, times=None)
        term.faults.break_pipe()
        with pytest.raises(MT5NotConnectedError):
            await mt5.get_account_info()
        failed = await events.wait_for(ReconnectFailed)
        assert failed.attempts == 2
        assert mt5.state is ConnectionState.DISCONNECTED
        with pytest.raises(MT5ConnectionError) as info:
            await mt5.get_account_info()
        assert info.value is failed.error
        assert "gave up after 2 connect attempt(s)" in "\n".join(info.value.__notes__)
        with pytest.raises(MT5ConnectionError) as again:  # every call, until connect()
            await mt5.get_account_info()
        assert again.value is failed.error
        await until(lambda: not aiomt5_tasks())  # the supervisor ended
        term.faults.clear()
        await mt5.connect()
        assert (await mt5.get_account_info()).login > 0


# ---------------------------------------------------------------- calls while reconnecting


async def reconnecting_on_a_hung_initialize(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> threading.Event:
    hang = term.faults.hang("initialize")
    term.faults.break_pipe()
    with pytest.raises(MT5NotConnectedError):
        await mt5.get_account_info()
    await entered(hang.entered)
    assert mt5.state is ConnectionState.RECONNECTING
    return hang._released


async def test_calls_wait_for_the_reconnect_within_their_timeout(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    release = await reconnecting_on_a_hung_initialize(mt5, term)
    call = asyncio.create_task(mt5.get_account_info(timeout=GUARD))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not call.done()
    release.set()
    assert (await call).login > 0


async def test_a_call_that_outwaits_its_timeout_while_reconnecting_is_not_sent(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    release = await reconnecting_on_a_hung_initialize(mt5, term)
    sent = term.calls["account_info"]
    with pytest.raises(MT5NotConnectedError, match="still reconnecting"):
        await mt5.get_account_info(timeout=0.01)
    assert term.calls["account_info"] == sent
    release.set()


async def test_fail_fast_setting_refuses_calls_while_reconnecting(term: SimTerminal) -> None:
    fast = settings(wait_for_reconnect=False)
    async with AsyncMT5Connector(fast, backend=term) as mt5:
        release = await reconnecting_on_a_hung_initialize(mt5, term)
        with pytest.raises(MT5NotConnectedError, match="reconnecting"):
            await mt5.get_account_info(timeout=GUARD)
        release.set()


# ---------------------------------------------------------------- health


async def test_health_checks_find_a_broken_pipe_and_reconnect(
    term: SimTerminal, events: Events
) -> None:
    watched = settings(health_check=True, health_check_interval=0.001)
    async with AsyncMT5Connector(watched, backend=term, event_hooks=[events]):
        term.faults.break_pipe()
        await events.wait_for(Reconnected)
        assert events.of(HealthFailed)[0].action == "reconnect"


async def test_a_trade_server_outage_degrades_then_recovers_without_reconnecting(
    term: SimTerminal, events: Events
) -> None:
    watched = settings(health_check=True, health_check_interval=0.001)
    async with AsyncMT5Connector(watched, backend=term, event_hooks=[events]) as mt5:
        term.faults.drop_trade_server()
        await events.wait_state(ConnectionState.DEGRADED)
        failure = events.of(HealthFailed)[0]
        assert (failure.action, "trade server" in failure.reason) == ("degraded", True)
        assert mt5.is_connected()  # calls still go through while degraded
        term.faults.restore_trade_server()
        await events.wait_state(ConnectionState.CONNECTED, count=2)
        assert events.of(Reconnected) == []
        assert mt5.get_connection_stats().reconnect_attempts == 0


async def test_a_successful_call_is_proof_of_life(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    supervisor = supervisor_of(mt5)
    await mt5.call("symbol_info_tick", "EURUSD")
    pings = term.calls["terminal_info"]
    assert (await supervisor._tick()).health is _Health.SKIPPED
    assert term.calls["terminal_info"] == pings
    assert (await supervisor._tick()).health is _Health.OK  # nothing since: a real ping
    assert term.calls["terminal_info"] == pings + 1
    assert mt5.get_connection_stats().ping_ms == term.terminal_info().ping_last / 1000


async def test_no_ping_queues_behind_a_long_call(mt5: AsyncMT5Connector, term: SimTerminal) -> None:
    hang = term.faults.hang("copy_rates_from_pos")
    call = asyncio.create_task(mt5.call("copy_rates_from_pos", "EURUSD", 1, 0, 5))
    await entered(hang.entered)
    pings = term.calls["terminal_info"]
    verdict = await supervisor_of(mt5)._probe()
    assert (verdict.health, term.calls["terminal_info"]) == (_Health.SKIPPED, pings)
    hang.release()
    assert len(await call) == 5


async def test_a_wedged_worker_degrades_until_its_call_returns(
    term: SimTerminal, events: Events
) -> None:
    watched = settings(worker_wedged_after=0.0, health_check=True, health_check_interval=0.001)
    async with AsyncMT5Connector(watched, backend=term, event_hooks=[events]) as mt5:
        hang = term.faults.hang("symbol_info_tick")
        with pytest.raises(MT5TimeoutError):  # a read, abandoned
            await mt5.call("symbol_info_tick", "EURUSD", timeout=STARTS_WITHIN)
        assert hang.entered.is_set()  # it ran: not cancelled while still queued
        await events.wait_state(ConnectionState.DEGRADED)
        assert "stuck in symbol_info_tick" in events.of(HealthFailed)[0].reason
        assert events.of(Reconnected) == []
        hang.release()
        await events.wait_state(ConnectionState.CONNECTED, count=2)


# ---------------------------------------------------------------- events and stats


async def test_events_iterator_yields_events_and_ends_when_the_connector_closes(
    term: SimTerminal,
) -> None:
    connector = AsyncMT5Connector(settings(), backend=term)
    stream = connector.events()
    await connector.connect()
    await connector.close()
    kinds = [(e.kind, getattr(e, "new", None)) async for e in stream]
    assert kinds == [
        ("state_changed", ConnectionState.CONNECTING),
        ("state_changed", ConnectionState.CONNECTED),
        ("state_changed", ConnectionState.CLOSED),
    ]


async def test_a_full_event_stream_drops_the_oldest(term: SimTerminal) -> None:
    connector = AsyncMT5Connector(settings(), backend=term)
    async with connector.events(maxsize=1) as stream:
        await connector.connect()
        assert stream.dropped == 1  # CONNECTING made way for CONNECTED
        event = await anext(stream)
        assert isinstance(event, StateChanged)
        assert event.new is ConnectionState.CONNECTED
    await connector.close()
    assert len(connector._hooks) == 0


async def test_stats_report_time_in_each_state_and_reconnects(
    mt5: AsyncMT5Connector, term: SimTerminal, events: Events
) -> None:
    term.faults.break_pipe()
    with pytest.raises(MT5NotConnectedError):
        await mt5.get_terminal_info()
    await events.wait_for(Reconnected)
    stats = mt5.get_connection_stats()
    assert stats.reconnects == 1
    assert stats.reconnect_attempts == 1
    assert stats.health_failures == 1
    assert stats.time_in_state is not None
    assert set(stats.time_in_state) >= {"disconnected", "connecting", "connected", "reconnecting"}
    assert all(seconds >= 0 for seconds in stats.time_in_state.values())
    assert "No IPC connection" in (stats.last_error or "")


async def test_the_terminals_maxbars_is_read_again_after_a_reconnect(
    mt5: AsyncMT5Connector, term: SimTerminal, events: Events
) -> None:
    await terminal_maxbars(mt5, timeout=GUARD)
    await terminal_maxbars(mt5, timeout=GUARD)
    reads = term.calls["terminal_info"]
    await mt5.reconnect()
    await terminal_maxbars(mt5, timeout=GUARD)
    assert term.calls["terminal_info"] == reads + 1


async def test_the_events_iterator_sees_a_reconnect(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    async with mt5.events() as stream:
        term.faults.break_pipe()
        with pytest.raises(MT5NotConnectedError):
            await mt5.get_terminal_info()
        kinds = []
        async with asyncio.timeout(GUARD):
            async for event in stream:
                kinds.append(event.kind)
                if event.kind == "reconnected":
                    break
    assert kinds == [
        "health_failed",
        "state_changed",  # RECONNECTING
        "state_changed",  # CONNECTED
        "reconnected",
    ]


async def test_a_reconnect_waits_for_a_stuck_call_instead_of_starting_a_second_thread(
    term: SimTerminal, events: Events
) -> None:
    wedging = settings(worker_wedged_after=0.0)
    async with AsyncMT5Connector(wedging, backend=term, event_hooks=[events]) as mt5:
        hang = term.faults.hang("symbol_info_tick")
        with pytest.raises(MT5TimeoutError):
            await mt5.call("symbol_info_tick", "EURUSD", timeout=STARTS_WITHIN)
        assert hang.entered.is_set()
        stuck = worker_threads()
        reconnecting = asyncio.create_task(mt5.reconnect())
        await events.wait_state(ConnectionState.RECONNECTING)
        for _ in range(20):
            await asyncio.sleep(0)
        assert worker_threads() == stuck  # no second thread while one is inside MT5
        assert not reconnecting.done()
        hang.release()
        await reconnecting
        assert mt5.state is ConnectionState.CONNECTED
        assert not stuck[0].is_alive()
        assert len(worker_threads()) == 1
