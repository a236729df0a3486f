"""Chaos: seeded random faults under concurrent calls; the connector must stay honest.

Invariants, for every seed: no caller waits longer than its timeout plus a margin; every
failure is a typed aiomt5 error; once the faults stop the connector ends CONNECTED; every
backoff delay lies within its capped, jittered bounds; connect/disconnect cycles leak no
thread and no task. The default run is reduced (5k calls, 100 cycles); ``-m soak`` runs the
full sizes (100k calls, 1000 cycles).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from aiomt5 import AsyncMT5Connector
from aiomt5._core._errors import MT5Error
from aiomt5._core._events import ConnectorEvent, Reconnected, ReconnectScheduled, StateChanged
from aiomt5._core._types import ConnectionState
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal

SIM_START = "2026-03-02T10:00:00Z"
TIMEOUT = 0.05  # per call; a random hang lasts HANG s, past it
HANG = 0.08
MARGIN = 1.0  # scheduling slack on a loaded machine; waits are bounded, not timed
GUARD = 60.0
KINDS = ("ipc_send", "ipc_recv", "broken_pipe", "trade_server", "hang", "slow")
RETRY_DELAY = 0.001
RETRY_MAX_DELAY = 0.004
CALLERS = 4


@dataclass
class Tally:
    calls: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    untyped: list[BaseException] = field(default_factory=list)
    overdue: list[float] = field(default_factory=list)


def chaos_settings(**overrides: Any) -> MT5Settings:
    fields: dict[str, Any] = {
        "backend": "sim",
        "call_timeout": TIMEOUT,
        # Real (tiny) backoff so that its bounds are exercised; testing mode would zero it.
        "retry_delay": RETRY_DELAY,
        "retry_max_delay": RETRY_MAX_DELAY,
        "health_check_interval": 0.005,
        "health_check_timeout": TIMEOUT,
    }
    fields.update(overrides)
    return MT5Settings(_env_file=None, **fields)


async def one_call(mt5: AsyncMT5Connector, rng: random.Random) -> Any:
    pick = rng.random()
    if pick < 0.4:
        return await mt5.call("symbol_info_tick", "EURUSD")
    if pick < 0.6:
        return await mt5.get_account_info()
    if pick < 0.75:
        return await mt5.get_terminal_info()
    if pick < 0.9:
        return await mt5.call("copy_rates_from_pos", "EURUSD", 1, 0, 10)
    return await mt5.call("symbol_select", "GBPUSD", True)  # a write: may be outcome-unknown


async def caller(mt5: AsyncMT5Connector, calls: int, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    for _ in range(calls):
        started = time.perf_counter()
        try:
            await one_call(mt5, rng)
        except MT5Error as exc:
            name = type(exc).__name__
            tally.failures[name] = tally.failures.get(name, 0) + 1
        except Exception as exc:  # collected: the assertion names it
            tally.untyped.append(exc)
        elapsed = time.perf_counter() - started
        if elapsed > TIMEOUT + MARGIN:
            tally.overdue.append(elapsed)
        tally.calls += 1


def backoff_bounds(attempt: int) -> tuple[float, float]:
    base = min(RETRY_MAX_DELAY, RETRY_DELAY * 2.0 ** (attempt - 1))
    return base / 2, base


async def wait_connected(mt5: AsyncMT5Connector, seen: list[ConnectorEvent]) -> None:
    """After the faults stop: one successful call, then CONNECTED (a health check clears
    DEGRADED)."""
    changed = asyncio.Event()
    mt5.add_event_hook(lambda event: changed.set())
    async with asyncio.timeout(GUARD):
        while True:
            try:
                await mt5.get_terminal_info(timeout=GUARD)
                break
            except MT5Error:
                continue  # e.g. the pipe was still broken: this call told the supervisor
        while mt5.state is not ConnectionState.CONNECTED:
            changed.clear()
            await changed.wait()


async def run_chaos(total_calls: int, seed: int, *, hold_gil: bool = False) -> None:
    """With ``hold_gil`` the terminal holds the GIL like the real one, in its default child."""
    if hold_gil:
        # No replacement of the child mid-run (a loaded machine can stall it past the wedge
        # limit): its simulator holds the scripted faults and the record of what fired.
        settings = chaos_settings(
            sim_hold_gil=True, sim_seed=seed, sim_start=SIM_START, worker_wedged_after=GUARD
        )
        backend = None
    else:
        settings = chaos_settings()
        backend = SimTerminal(seed=seed, clock=SimClock.fixed(SIM_START))
    seen: list[ConnectorEvent] = []
    async with AsyncMT5Connector(settings, backend=backend, event_hooks=[seen.append]) as mt5:
        assert (mt5.backend.pid is not None) if hold_gil else isinstance(mt5.backend, SimTerminal)
        faults = mt5.backend.faults
        faults.random(0.05, seed=seed, kinds=KINDS, hang_seconds=HANG, slow_seconds=0.002)
        tally = Tally()
        per_caller = total_calls // CALLERS
        async with asyncio.TaskGroup() as group:
            for index in range(CALLERS):
                group.create_task(caller(mt5, per_caller, seed * 100 + index, tally))
        faults.clear()
        await wait_connected(mt5, seen)

        assert tally.calls == per_caller * CALLERS
        assert tally.untyped == []
        assert tally.overdue == []
        kinds = {record.kind for record in faults.fired}
        assert kinds >= {"broken_pipe", "trade_server", "hang", "ipc_send", "ipc_recv"}
        reconnected = [e for e in seen if isinstance(e, Reconnected)]
        assert reconnected, "broken pipes must have been recovered from"
        for event in seen:
            if isinstance(event, ReconnectScheduled):
                low, high = backoff_bounds(event.attempt)
                assert low <= event.delay <= high, event
        states = {e.new for e in seen if isinstance(e, StateChanged)}
        assert ConnectionState.RECONNECTING in states
        stats = mt5.get_connection_stats()
        assert stats.state is ConnectionState.CONNECTED
        assert stats.reconnects == len(reconnected)
        assert sum(tally.failures.values()) > 0


async def run_cycles(cycles: int) -> None:
    term = SimTerminal(seed=3, clock=SimClock.fixed(SIM_START))
    threads_before = threading.active_count()
    connector = AsyncMT5Connector(chaos_settings(health_check_interval=0.001), backend=term)
    for _ in range(cycles):
        await connector.connect()
        await connector.call("symbol_info_tick", "EURUSD")
        await connector.disconnect()
    await connector.close()
    assert threading.active_count() == threads_before
    assert {t.get_name() for t in asyncio.all_tasks()} == {asyncio.current_task().get_name()}  # type: ignore[union-attr]


async def test_chaos_reduced_run_keeps_every_invariant() -> None:
    await run_chaos(5_000, seed=11)


async def test_chaos_reduced_run_on_a_gil_holding_terminal_keeps_every_invariant() -> None:
    await run_chaos(2_000, seed=12, hold_gil=True)


async def test_connect_disconnect_cycles_leak_no_thread_or_task() -> None:
    await run_cycles(100)


@pytest.mark.soak
@pytest.mark.parametrize("seed", [1, 2])
async def test_chaos_soak_100k_calls(seed: int) -> None:
    await run_chaos(100_000, seed=seed)


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_chaos_soak_100k_calls_on_a_gil_holding_terminal() -> None:
    await run_chaos(100_000, seed=3, hold_gil=True)


@pytest.mark.soak
async def test_connect_disconnect_1000_cycles_leak_nothing() -> None:
    await run_cycles(1000)
