"""Tick and bar streams on the simulator, driven by its fixed clock (no real waiting)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from aiomt5._connector import AsyncMT5Connector
from aiomt5._core._errors import MT5CallError, MT5ClosedError, MT5InvalidArgumentError
from aiomt5._core._types import ConnectionState
from aiomt5._market._streams import StreamBar, StreamTick, stream_bars, stream_ticks
from aiomt5._mt5.dtypes import TICKS_DTYPE
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday: FX trades


def msc(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class SimSleep:
    """A stream's ``sleep``: moves the simulator's clock instead of waiting."""

    def __init__(self, term: SimTerminal) -> None:
        self.term = term
        self.slept: list[float] = []
        self.before: Callable[[float], Awaitable[None]] | None = None

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.before is not None:
            await self.before(seconds)
        self.term.clock.advance(seconds)
        await asyncio.sleep(0)  # a scheduling point, as a real sleep is


@pytest.fixture
def term() -> SimTerminal:
    return SimTerminal(seed=11, clock=SimClock.fixed(NOW), maxbars=5000)


@pytest.fixture
def oracle() -> SimTerminal:
    """The same market, later: every tick the stream will see already exists here."""
    later = SimTerminal(seed=11, clock=SimClock.fixed(NOW + timedelta(days=1)))
    later.initialize()
    return later


@pytest.fixture
def sleep(term: SimTerminal) -> SimSleep:
    return SimSleep(term)


@pytest.fixture
async def mt5(term: SimTerminal) -> AsyncIterator[AsyncMT5Connector]:
    settings = MT5Settings(_env_file=None, backend="sim", testing=True, call_timeout=10.0)
    async with AsyncMT5Connector(settings, backend=term) as connector:
        yield connector


def oracle_ticks(oracle: SimTerminal, symbol: str, after_msc: int, n: int) -> list[Any]:
    rows = oracle.copy_ticks_range(symbol, after_msc // 1000, after_msc // 1000 + 86400, -1)
    rows = rows[rows["time_msc"] > after_msc][:n]
    return [(symbol, *row) for row in rows.tolist()]


async def take(stream: AsyncIterator[Any], n: int) -> list[Any]:
    return [await anext(stream) for _ in range(n)]


def start_msc(oracle: SimTerminal, symbol: str) -> int:
    """time_msc of the latest tick at NOW: where a stream opened at NOW starts (exclusive)."""
    rows = oracle.copy_ticks_range(symbol, 0 + int(NOW.timestamp()) - 600, int(NOW.timestamp()), -1)
    return int(rows["time_msc"][rows["time_msc"] <= msc(NOW)][-1])


# --------------------------------------------------------------------------- ticks


async def test_tick_stream_yields_each_new_tick_once_in_order(
    mt5: AsyncMT5Connector, oracle: SimTerminal, sleep: SimSleep
) -> None:
    stream = stream_ticks(mt5, "EURUSD", poll_interval=1.0, sleep=sleep)
    got = await take(stream, 400)
    assert all(isinstance(t, StreamTick) for t in got)
    assert got == oracle_ticks(oracle, "EURUSD", start_msc(oracle, "EURUSD"), 400)
    assert set(sleep.slept) == {1.0}


async def test_tick_stream_merges_symbols_in_time_order(
    mt5: AsyncMT5Connector, oracle: SimTerminal, sleep: SimSleep
) -> None:
    stream = stream_ticks(mt5, "EURUSD", "GBPUSD", poll_interval=2.0, sleep=sleep)
    got = await take(stream, 600)
    times = [t.time_msc for t in got]
    assert times == sorted(times)
    for symbol in ("EURUSD", "GBPUSD"):
        mine = [t for t in got if t.symbol == symbol]
        assert len(mine) > 100
        assert mine == oracle_ticks(oracle, symbol, start_msc(oracle, symbol), len(mine))


# More symbols than one poll queues on the worker at once (_READS_IN_FLIGHT).
MANY = (
    "EURUSD",
    "GBPUSD",
    "USDJPY",
    "USDCHF",
    "AUDUSD",
    "USDCAD",
    "NZDUSD",
    "EURGBP",
    "EURJPY",
    "GBPJPY",
    "EURAUD",
    "EURCAD",
    "EURNZD",
    "GBPAUD",
    "GBPCAD",
    "AUDJPY",
    "AUDCAD",
    "AUDCHF",
    "AUDNZD",
    "NZDJPY",
)


def check_merged(got: list[StreamTick], oracle: SimTerminal, symbols: tuple[str, ...]) -> None:
    """In time order (ties: the order the symbols were given in), each symbol exactly once."""
    rank = {symbol: index for index, symbol in enumerate(symbols)}
    keys = [(t.time_msc, rank[t.symbol]) for t in got]
    assert keys == sorted(keys)
    for symbol in symbols:
        oracle.symbol_select(symbol, True)
        mine = [t for t in got if t.symbol == symbol]
        assert mine == oracle_ticks(oracle, symbol, start_msc(oracle, symbol), len(mine))


async def test_tick_stream_of_many_symbols_reads_in_batches_in_order(
    mt5: AsyncMT5Connector, oracle: SimTerminal, sleep: SimSleep
) -> None:
    stream = stream_ticks(mt5, *MANY, poll_interval=0.25, sleep=sleep)
    got = await take(stream, 1500)
    assert {t.symbol for t in got} == set(MANY)
    check_merged(got, oracle, MANY)


async def test_a_failed_read_in_a_batch_drops_the_others_and_resumes_exactly_once(
    mt5: AsyncMT5Connector, term: SimTerminal, oracle: SimTerminal, sleep: SimSleep
) -> None:
    unseen: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: unseen.append(context))
    stream = stream_ticks(mt5, *MANY, poll_interval=0.25, retry_interval=0.5, sleep=sleep)
    got = await take(stream, 300)
    term.faults.fail("copy_ticks_from", -10002, times=3)  # lost replies: it waits, resumes
    got += await take(stream, 900)
    assert stream.recoveries >= 1
    check_merged(got, oracle, MANY)
    for _ in range(5):
        await asyncio.sleep(0)
    gc.collect()
    assert unseen == []  # no dropped read left an exception nobody retrieved


async def test_cancelling_a_poll_of_many_symbols_leaves_no_read_running(
    mt5: AsyncMT5Connector, sleep: SimSleep
) -> None:
    stream = stream_ticks(mt5, *MANY, poll_interval=0.25, sleep=sleep)
    await take(stream, 10)

    async def consume() -> None:
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    for _ in range(3):  # inside a poll, reads queued on the worker
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(5):
        await asyncio.sleep(0)
    left = {task for task in asyncio.all_tasks() if not task.get_name().startswith("aiomt5-")}
    assert left == {asyncio.current_task()}


async def test_slow_consumer_stays_within_the_buffer_and_loses_nothing(
    mt5: AsyncMT5Connector, oracle: SimTerminal, sleep: SimSleep
) -> None:
    stream = stream_ticks(mt5, "EURUSD", "USDJPY", poll_interval=1800.0, buffer=30, sleep=sleep)
    got: list[StreamTick] = []
    most = 0
    for _ in range(1500):  # a consumer far slower than the market: 30 minutes per poll
        got.append(await anext(stream))
        most = max(most, stream.buffered)
    assert most <= 30
    times = [t.time_msc for t in got]
    assert times == sorted(times)
    for symbol in ("EURUSD", "USDJPY"):
        mine = [t for t in got if t.symbol == symbol]
        assert mine == oracle_ticks(oracle, symbol, start_msc(oracle, symbol), len(mine))


async def test_since_starts_at_that_time_inclusive(
    mt5: AsyncMT5Connector, oracle: SimTerminal, sleep: SimSleep
) -> None:
    since = NOW - timedelta(minutes=5)
    stream = stream_ticks(mt5, "EURUSD", since=since, sleep=sleep)
    got = await take(stream, 50)
    assert got == oracle_ticks(oracle, "EURUSD", msc(since) - 1, 50)


async def test_tick_stream_resumes_after_a_broken_pipe_without_gap_or_repeat(
    mt5: AsyncMT5Connector, term: SimTerminal, oracle: SimTerminal, sleep: SimSleep
) -> None:
    stream = stream_ticks(mt5, "EURUSD", poll_interval=1.0, retry_interval=0.5, sleep=sleep)
    got = await take(stream, 120)
    term.faults.break_pipe()

    async def reconnect(seconds: float) -> None:
        if seconds == 0.5:  # the retry sleep: the outside world reconnects meanwhile
            await mt5.disconnect()
            await mt5.connect()

    sleep.before = reconnect
    got += await take(stream, 300)
    assert stream.recoveries >= 1
    assert 0.5 in sleep.slept  # it did wait out the broken pipe
    assert got == oracle_ticks(oracle, "EURUSD", start_msc(oracle, "EURUSD"), 420)


async def test_tick_stream_waits_for_the_connector_to_reconnect(
    mt5: AsyncMT5Connector, term: SimTerminal, oracle: SimTerminal, sleep: SimSleep
) -> None:
    stream = stream_ticks(mt5, "EURUSD", poll_interval=1.0, sleep=sleep)
    got = await take(stream, 50)
    await mt5.disconnect()
    consumer = asyncio.create_task(take(stream, 200))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not consumer.done()  # waiting, not spinning or failing
    term.clock.advance(30)  # the market moves on while disconnected
    await mt5.connect()
    got += await consumer
    assert got == oracle_ticks(oracle, "EURUSD", start_msc(oracle, "EURUSD"), 250)


async def test_tick_stream_raises_when_the_connector_is_closed(
    mt5: AsyncMT5Connector, sleep: SimSleep
) -> None:
    stream = stream_ticks(mt5, "EURUSD", sleep=sleep)
    await take(stream, 5)
    await mt5.close()
    with pytest.raises(MT5ClosedError):
        await take(stream, 10_000)


async def test_cancelling_the_consumer_stops_polling(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    sleeping = asyncio.Event()

    async def blocking_sleep(seconds: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()  # never set: only cancellation ends it

    stream = stream_ticks(mt5, "EURUSD", sleep=blocking_sleep)

    async def consume() -> None:
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    await sleeping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    calls = sum(term.calls.values())
    for _ in range(20):
        await asyncio.sleep(0)
    assert sum(term.calls.values()) == calls
    # The connector's own supervisor tasks (aiomt5-*) run for as long as it is connected.
    left = {task for task in asyncio.all_tasks() if not task.get_name().startswith("aiomt5-")}
    assert left == {asyncio.current_task()}


async def test_closed_stream_ends_without_calling(
    mt5: AsyncMT5Connector, term: SimTerminal, sleep: SimSleep
) -> None:
    async with stream_ticks(mt5, "EURUSD", sleep=sleep) as stream:
        await take(stream, 3)
    calls = sum(term.calls.values())
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert sum(term.calls.values()) == calls


def test_bad_stream_arguments_are_refused(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="at least one symbol"):
        stream_ticks(mt5)
    with pytest.raises(MT5InvalidArgumentError, match="buffer"):
        stream_ticks(mt5, "EURUSD", "GBPUSD", buffer=1)
    with pytest.raises(MT5InvalidArgumentError, match="poll_interval"):
        stream_ticks(mt5, "EURUSD", poll_interval=0)
    with pytest.raises(MT5InvalidArgumentError, match="timeframe"):
        stream_bars(mt5, "EURUSD", "M7")


def test_stream_tick_datetime_is_utc_milliseconds() -> None:
    tick = StreamTick("EURUSD", 1772445599, 1.1, 1.2, 0.0, 0, 1772445599542, 6, 0.0)
    assert tick.datetime == datetime(2026, 3, 2, 9, 59, 59, 542000, tzinfo=UTC)


# --------------------------------------------------------------------------- bars


async def test_bar_stream_yields_each_closed_bar_once(
    mt5: AsyncMT5Connector, oracle: SimTerminal, sleep: SimSleep
) -> None:
    stream = stream_bars(mt5, "EURUSD", "M1", poll_interval=7.0, sleep=sleep)
    got = await take(stream, 12)
    # At NOW the 09:59 bar's last tick is the latest tick: nothing yet shows it is over, so it
    # is the first bar the stream sees close.
    first = int(NOW.timestamp()) - 60
    want = oracle.copy_rates_range("EURUSD", 1, first, first + 660)
    assert all(isinstance(b, StreamBar) for b in got)
    assert got == [("EURUSD", *row) for row in want.tolist()]
    # A bar is only yielded once its minute is over on the terminal's clock.
    assert len(sleep.slept) * 7.0 >= 11 * 60


async def test_bar_stream_fills_bars_missed_during_a_long_outage(
    mt5: AsyncMT5Connector, term: SimTerminal, oracle: SimTerminal, sleep: SimSleep
) -> None:
    stream = stream_bars(mt5, "EURUSD", "M1", poll_interval=30.0, retry_interval=1.0, sleep=sleep)
    got = await take(stream, 3)
    term.faults.break_pipe()

    async def outage(seconds: float) -> None:
        if seconds == 1.0:
            term.clock.advance(3 * 3600)  # more bars than one poll reads
            await mt5.disconnect()
            await mt5.connect()

    sleep.before = outage
    got += await take(stream, 300)
    times = [bar.time for bar in got]
    assert np.all(np.diff(times) == 60)
    want = oracle.copy_rates_range("EURUSD", 1, int(NOW.timestamp()) - 60, times[-1])
    assert got == [("EURUSD", *row) for row in want.tolist()]


async def test_bar_stream_of_hours_yields_the_hour_when_it_closes(
    mt5: AsyncMT5Connector, oracle: SimTerminal, sleep: SimSleep
) -> None:
    stream = stream_bars(mt5, "EURUSD", "H1", poll_interval=600.0, sleep=sleep)
    before = await anext(stream)  # 09:00, seen closing at the first tick after 10:00
    assert before.datetime == NOW - timedelta(hours=1)
    assert sleep.slept == [600.0]
    bar = await anext(stream)
    assert bar.datetime == NOW
    assert sleep.slept == [600.0] * 7
    want = oracle.copy_rates_range("EURUSD", 16385, int(NOW.timestamp()), int(NOW.timestamp()))
    assert bar == ("EURUSD", *want.tolist()[0])


async def test_tick_stream_waits_out_a_trade_server_outage(
    mt5: AsyncMT5Connector, term: SimTerminal, oracle: SimTerminal, sleep: SimSleep
) -> None:
    stream = stream_ticks(mt5, "EURUSD", poll_interval=1.0, retry_interval=5.0, sleep=sleep)
    got = await take(stream, 60)
    term.faults.drop_trade_server()
    outage: list[float] = []

    async def restore_later(seconds: float) -> None:
        if seconds == 5.0:
            outage.append(seconds)
            if len(outage) == 3:
                term.faults.restore_trade_server()

    sleep.before = restore_later
    got += await take(stream, 200)
    assert len(outage) == 3
    assert got == oracle_ticks(oracle, "EURUSD", start_msc(oracle, "EURUSD"), 260)


async def test_tick_stream_raises_other_call_errors(
    mt5: AsyncMT5Connector, term: SimTerminal, sleep: SimSleep
) -> None:
    stream = stream_ticks(mt5, "EURUSD", poll_interval=1.0, sleep=sleep)
    await take(stream, 5)
    term.faults.fail("copy_ticks_from", -2, times=None)
    with pytest.raises(MT5CallError):
        await take(stream, 10_000)


async def test_since_is_exact_to_the_millisecond(
    mt5: AsyncMT5Connector, oracle: SimTerminal, sleep: SimSleep
) -> None:
    earlier = oracle_ticks(oracle, "EURUSD", msc(NOW - timedelta(minutes=2)), 10)
    target = earlier[5][6]  # time_msc of the sixth tick
    since = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=target)
    stream = stream_ticks(mt5, "EURUSD", since=since, sleep=sleep)
    got = await take(stream, 4)
    assert got == earlier[5:9]


# --------------------------------------------------------------------------- shared milliseconds


class GrowingTicks:
    """A fake connector whose ticks share milliseconds and appear a few at a time.

    Each ``sleep`` reveals the next chunk; chunks end in the middle of same-``time_msc`` groups,
    so later polls find new ticks with the very millisecond of the stream's cursor.
    """

    backend = None  # knows no trading sessions, as the MetaTrader5 module

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        times: list[int] = []
        msc = 1_772_445_600_000
        while len(times) < 600:
            msc += int(rng.integers(0, 700))
            times.extend([msc] * int(rng.choice([1, 1, 2, 3, 7, 40])))  # 40: over the share
        self.ticks = np.zeros(len(times), dtype=TICKS_DTYPE)
        self.ticks["time_msc"] = times
        self.ticks["time"] = self.ticks["time_msc"] // 1000
        self.ticks["bid"] = np.arange(len(times))  # a unique id per tick
        self.visible = 1
        self.chunks = iter(rng.integers(1, 30, size=10_000).tolist())
        self.state = ConnectionState.CONNECTED
        self.backend = None  # no market sessions to tell about

    def is_connected(self) -> bool:
        return True

    async def find_symbol(self, name: str, **_: Any) -> str:
        return name

    async def call_many(self, function: str, arguments: list[Any], **_: Any) -> list[Any]:
        return [await self.call(function, *args) for args in arguments]

    async def call(self, function: str, *args: Any, **_: Any) -> Any:
        shown = self.ticks[: self.visible]
        if function == "symbol_select":
            return True
        if function == "symbol_info_tick":
            return SimpleNamespace(time_msc=int(shown["time_msc"][-1]))
        if function == "copy_ticks_range":
            low, high = args[1] * 1000, args[2] * 1000 + 999
            return shown[(shown["time_msc"] >= low) & (shown["time_msc"] <= high)]
        assert function == "copy_ticks_from"
        _, second, count, _ = args
        return shown[shown["time_msc"] >= second * 1000][:count]

    async def sleep(self, seconds: float) -> None:
        self.visible = min(self.visible + next(self.chunks), len(self.ticks))
        await asyncio.sleep(0)


@pytest.mark.parametrize("seed", range(5))
async def test_ticks_sharing_the_cursor_millisecond_are_neither_repeated_nor_skipped(
    seed: int,
) -> None:
    fake = GrowingTicks(seed)
    stream = stream_ticks(fake, "X", buffer=16, sleep=fake.sleep)  # type: ignore[arg-type]
    # The stream starts after every tick visible at its start (the first one).
    got = await take(stream, len(fake.ticks) - 1)
    assert [int(t.bid) for t in got] == list(range(1, len(fake.ticks)))
    assert stream.cursors["X"][0] == int(fake.ticks["time_msc"][-1])


async def test_a_stream_on_a_closed_market_says_so_once_and_when_it_reopens(
    term: SimTerminal, mt5: AsyncMT5Connector, caplog: pytest.LogCaptureFixture
) -> None:
    term.clock.set(datetime(2026, 3, 7, 23, 0, tzinfo=UTC))  # Saturday night: FX closed
    sleep = SimSleep(term)
    with caplog.at_level("INFO", logger="aiomt5.streams"):
        async with stream_ticks(mt5, "EURUSD", poll_interval=600.0, sleep=sleep) as ticks:
            tick = await anext(ticks)  # polls through the night, then Monday's first tick
    assert tick.datetime >= datetime(2026, 3, 9, tzinfo=UTC)
    events = [r.getMessage() for r in caplog.records if "market_" in r.getMessage()]
    assert len(events) == 2, events
    assert "aiomt5.streams.market_closed" in events[0]
    assert "symbol=EURUSD" in events[0]
    assert "2026-03-09T00:00:00+00:00" in events[0]
    assert "aiomt5.streams.market_reopened" in events[1]
