"""Streams and calls share one session: outages never end a stream, the state tells the truth.

The seeded flapping run drops and restores the simulator's trade server every 1-20 ms (real
time: that is what a flapping link looks like) under several streams and concurrent calls, and
checks that no stream dies and that every stream hands out exactly the ticks the market has, in
order, none repeated or missing. The default run is reduced (3 seeds); ``-m soak`` runs 15 seeds
of a longer run.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aiomt5 import AsyncMT5Connector, MT5CallFailedError, MT5ConnectionError, MT5Error
from aiomt5._core._events import ConnectorEvent, ReconnectFailed, StateChanged
from aiomt5._core._types import ConnectionState
from aiomt5._market._streams import StreamTick, TickStream
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday: FX trades
GUARD = 120.0
SYMBOLS = (("EURUSD",), ("GBPUSD", "USDJPY"), ("EURUSD", "AUDUSD"))


def settings(**overrides: Any) -> MT5Settings:
    fields: dict[str, Any] = {
        "backend": "sim",
        "testing": True,
        "call_timeout": 5.0,
        "health_check_interval": 0.005,
    }
    fields.update(overrides)
    return MT5Settings(_env_file=None, **fields)


class Events:
    def __init__(self) -> None:
        self.seen: list[ConnectorEvent] = []

    def __call__(self, event: ConnectorEvent) -> None:
        self.seen.append(event)

    def states(self) -> list[ConnectionState]:
        return [e.new for e in self.seen if isinstance(e, StateChanged)]


class ClockSleep:
    """A stream's ``sleep``: moves the simulator's clock, then yields (no real waiting)."""

    def __init__(self, term: SimTerminal) -> None:
        self.term = term

    async def __call__(self, seconds: float) -> None:
        self.term.clock.advance(seconds)
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(GUARD):
        while not condition():  # noqa: ASYNC110  # no event to wait on; never sleeps
            await asyncio.sleep(0)


def check_exactly_once(
    oracle: SimTerminal, received: list[StreamTick], after: dict[str, tuple[int, int]]
) -> None:
    """Per symbol: the stream handed out the market's ticks after its cursor, each once, in order.

    (Across symbols a caught-up stream is ordered poll by poll only: the market moves between
    the reads of two symbols, as it does on a real terminal.)
    """
    for symbol, (start, seen) in after.items():
        mine = [tick for tick in received if tick.symbol == symbol]
        ticks = oracle.copy_ticks_range(symbol, start // 1000, start // 1000 + 86400, -1)
        ticks = ticks[ticks["time_msc"] >= start]
        ticks = ticks[min(seen, int((ticks["time_msc"] == start).sum())) :]
        assert mine == [(symbol, *row) for row in ticks[: len(mine)].tolist()], symbol


async def consume(stream: TickStream, n: int) -> list[StreamTick]:
    return [await anext(stream) for _ in range(n)]


async def flap(term: SimTerminal, rng: random.Random, stop: asyncio.Event) -> int:
    """Drop and restore the trade server every 1-20 ms until ``stop``; returns the outages."""
    outages = 0
    while not stop.is_set():
        term.faults.drop_trade_server()
        outages += 1
        await asyncio.sleep(rng.uniform(0.001, 0.02))
        term.faults.restore_trade_server()
        await asyncio.sleep(rng.uniform(0.001, 0.02))
    return outages


async def call_while(mt5: AsyncMT5Connector, stop: asyncio.Event, tally: dict[str, int]) -> None:
    """Concurrent calls; each either answers or fails with a typed error."""
    while not stop.is_set():
        try:
            await mt5.call("symbol_info_tick", "EURUSD")
            await mt5.get_account_info()
            tally["answered"] += 1
        except MT5Error as exc:
            tally[type(exc).__name__] = tally.get(type(exc).__name__, 0) + 1
        await asyncio.sleep(0)


async def flapping_run(seed: int, ticks: int) -> None:
    term = SimTerminal(seed=seed, clock=SimClock.fixed(NOW))
    oracle = SimTerminal(seed=seed, clock=SimClock.fixed(NOW + timedelta(days=1)))
    oracle.initialize()
    rng = random.Random(seed)
    events = Events()
    sleep = ClockSleep(term)
    async with asyncio.timeout(GUARD):
        async with AsyncMT5Connector(settings(), backend=term, event_hooks=[events]) as mt5:
            streams = [
                mt5.stream_ticks(*symbols, poll_interval=1.0, retry_interval=0.5, sleep=sleep)
                for symbols in SYMBOLS
            ]
            for stream in streams:  # open at NOW: the start cursors are known
                await anext(stream)
            starts = [dict(stream.cursors) for stream in streams]
            stop = asyncio.Event()
            tally = {"answered": 0}
            flapper = asyncio.create_task(flap(term, rng, stop))
            caller = asyncio.create_task(call_while(mt5, stop, tally))
            try:
                got = await asyncio.gather(*(consume(stream, ticks) for stream in streams))
            finally:
                stop.set()
                outages = await flapper
                await caller
            term.faults.restore_trade_server()
            for stream, start, received in zip(streams, starts, got, strict=True):
                await stream.aclose()
                assert len(received) == ticks
                check_exactly_once(oracle, received, start)
            await until(lambda: mt5.state is ConnectionState.CONNECTED)
    assert outages > 0
    recoveries = sum(stream.recoveries for stream in streams)
    failed_calls = sum(n for name, n in tally.items() if name != "answered")
    assert recoveries + failed_calls > 0  # the outages did hit the streams or the calls
    assert ConnectionState.DEGRADED in events.states()  # and the state said so


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_streams_survive_a_flapping_trade_server_without_gap_or_repeat(seed: int) -> None:
    await flapping_run(seed, ticks=300)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(1, 16))
async def test_streams_survive_a_flapping_trade_server_soak(seed: int) -> None:
    await flapping_run(seed, ticks=5000)


async def test_state_is_degraded_during_an_outage_while_a_stream_polls() -> None:
    term = SimTerminal(seed=5, clock=SimClock.fixed(NOW))
    events = Events()
    # Health checks far apart: only the stream's failed reads can tell the supervisor.
    quiet = settings(health_check_interval=3600.0)
    async with AsyncMT5Connector(quiet, backend=term, event_hooks=[events]) as mt5:
        stream = mt5.stream_ticks("EURUSD", poll_interval=1.0, sleep=ClockSleep(term))
        await consume(stream, 5)
        term.faults.drop_trade_server()
        consumer = asyncio.create_task(consume(stream, 50))
        await until(lambda: mt5.state is ConnectionState.DEGRADED)
        assert not consumer.done()  # waiting the outage out, not failing
        term.faults.restore_trade_server()
        await mt5.reconnect()  # a check passing (here: a fresh session) ends DEGRADED
        assert len(await consumer) == 50
        assert mt5.state is ConnectionState.CONNECTED


async def test_a_failed_read_makes_the_supervisor_check_at_once() -> None:
    term = SimTerminal(seed=5, clock=SimClock.fixed(NOW))
    quiet = settings(health_check_interval=3600.0)
    async with AsyncMT5Connector(quiet, backend=term) as mt5:
        term.faults.drop_trade_server()
        with pytest.raises(MT5CallFailedError):
            await mt5.call("copy_ticks_from", "EURUSD", int(NOW.timestamp()), 10, -1)
        await until(lambda: mt5.state is ConnectionState.DEGRADED)
        assert mt5.get_connection_stats().health_checks >= 1


async def test_giving_up_ends_every_open_stream_with_the_error_of_the_next_call() -> None:
    term = SimTerminal(seed=5, clock=SimClock.fixed(NOW))
    events = Events()
    limited = settings(reconnect_max_retries=2, health_check=False)
    async with AsyncMT5Connector(limited, backend=term, event_hooks=[events]) as mt5:
        sleep = ClockSleep(term)
        streams = [
            mt5.stream_ticks(s, poll_interval=1.0, sleep=sleep) for s in ("EURUSD", "GBPUSD")
        ]
        for stream in streams:
            await consume(stream, 3)
        term.faults.fail("initialize", -10003, times=None)
        term.faults.break_pipe()
        consumers = [asyncio.create_task(consume(stream, 10_000)) for stream in streams]
        async with asyncio.timeout(GUARD):
            outcomes = await asyncio.gather(*consumers, return_exceptions=True)
        (failed,) = [e for e in events.seen if isinstance(e, ReconnectFailed)]
        assert all(outcome is failed.error for outcome in outcomes)
        assert isinstance(failed.error, MT5ConnectionError)
        with pytest.raises(MT5ConnectionError) as next_call:
            await mt5.get_account_info()
        assert next_call.value is failed.error
        assert mt5.state is ConnectionState.DISCONNECTED
