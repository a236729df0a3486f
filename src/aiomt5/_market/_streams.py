"""Live data as async iterators: ticks of several symbols, and closed bars, by polling the terminal.

MetaTrader5 has no push API, so streams poll through the connector: each poll reads every
symbol with ``connector.call_many``, in batches of ``_READS_IN_FLIGHT`` reads, each batch one
job on the worker like any other call, so streams share the terminal fairly with the rest of
the program: the worker makes a batch's reads back to back and the loop pays for the batch
once, not once per symbol, while other callers wait behind one batch at most.

**Exactly once, by cursor.** A tick stream remembers, per symbol, the ``time_msc`` of the last
tick it handed out and how many ticks with that same ``time_msc`` it handed out (several ticks
can share a millisecond). The next poll reads from that second on and skips what the cursor
covers, so nothing is repeated or skipped: not between polls, not when the consumer is slow,
not across a broken pipe or a reconnect. A bar stream's cursor is the open time of the last bar
it yielded.

**Slow consumers (buffer policy).** A stream holds at most ``buffer`` ticks: one poll reads at
most ``buffer // len(symbols)`` per symbol, and the stream does not poll again until the consumer
has taken them all. A slow consumer therefore never makes memory grow and never loses ticks: it
falls behind in time, and the ticks it has not seen yet stay in the terminal's history, from
where the next polls read them (without sleeping) until the stream has caught up. While catching
up across symbols, ticks are released only up to the oldest "last tick read" of the symbols that
filled their share, so the stream is in ``time_msc`` order across symbols. (A single second
holding more ticks than a symbol's share is read whole, so it can exceed ``buffer`` once.)

**Connection trouble.** A stream never ends because the link or the trade server is away, for
however long and however often. On a connection error, a timeout, or MT5's generic failure
(``MT5CallFailedError``: what MetaTrader5 answers while it has lost its trade server) it waits
for a usable session through the connector's ``Sessions``, the same wait calls and trading use:
while the state still says usable it retries every ``retry_interval`` seconds; while
reconnecting (or disconnected by the user) it waits for the next session. Then it re-selects
its symbols and resumes from its cursors. The failed call itself tells the supervisor, which
checks the terminal and makes the state ``DEGRADED`` during an outage whether or not a stream
polls. When the supervisor gives up, every open stream ends at once with the same error the
next call raises; a closed connector ends it with ``MT5ClosedError``. Other errors (an unknown
symbol, a refused argument) end the iteration by raising.

**Stopping.** A stream runs no background task: polling happens inside ``__anext__``. Breaking
out of ``async for``, cancelling the consuming task, or ``await stream.aclose()`` stops it with
nothing left running. Sleeps go through the ``sleep`` argument (default ``asyncio.sleep``), so
tests drive them with a simulated clock.

**Idle polls (bars).** A bar stream polls every ``poll_interval``. Where the backend knows its
own clock exactly and that clock moves as the stream's sleeps do (``server_time``: the simulator
in a fast replay), it sleeps through the polls that cannot find a closed bar: those ending
before the forming bar's period ends, or before a closed market opens again. The polls it does
make stay on the every-``poll_interval`` schedule, so it finds each bar at the same instant.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Self

import numpy as np
import numpy.typing as npt

from aiomt5._core._arguments import utc_timestamp
from aiomt5._core._errors import (
    MT5CallFailedError,
    MT5ConnectionError,
    MT5InvalidArgumentError,
    MT5OutcomeUnknownError,
    MT5TimeoutError,
)
from aiomt5._core._log import Outage, get_logger
from aiomt5._core._session import LIVE

from ._forming import drop_forming, period_end
from ._history import (
    TickFlagsLike,
    fetch_rates,
    prepare_symbol,
    terminal_maxbars,
    tick_flags,
)
from ._market_hours import market_opens_at, server_time
from ._timeframe import Timeframe, TimeframeLike

if TYPE_CHECKING:
    from aiomt5._connector import AsyncMT5Connector

__all__ = [
    "BarStream",
    "Sleep",
    "StreamBar",
    "StreamTick",
    "TickStream",
    "stream_bars",
    "stream_ticks",
]

log = get_logger("aiomt5.streams")

Sleep = Callable[[float], Awaitable[object]]
"""How a stream waits: ``asyncio.sleep`` or a test's simulated-clock sleep."""

# A stream's calls are all idempotent (reads, symbol_select), so an unknown outcome is retried;
# MT5's generic failure is what a read gets while the trade server is away.
_RETRYABLE: Final = (
    MT5ConnectionError,
    MT5TimeoutError,
    MT5OutcomeUnknownError,
    MT5CallFailedError,
)
_BAR_DEPTH: Final = 64
# Tick reads of one poll queued on the worker at once (see TickStream._read_all).
_READS_IN_FLIGHT: Final = 32
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class StreamTick(NamedTuple):
    """One tick of a ``TickStream``: MetaTrader5's tick fields plus the symbol.

    ``symbol`` is the name the stream was asked for (``"EURUSD"`` even when the broker calls it
    ``"EURUSD.m"``). ``time`` is epoch seconds, ``time_msc`` epoch milliseconds, both UTC.
    """

    symbol: str
    time: int
    bid: float
    ask: float
    last: float
    volume: int
    time_msc: int
    flags: int
    volume_real: float

    @property
    def datetime(self) -> datetime:
        """``time_msc`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time_msc / 1000, UTC)


class StreamBar(NamedTuple):
    """One closed bar of a ``BarStream``: MetaTrader5's rate fields plus the symbol."""

    symbol: str
    time: int
    open: float
    high: float
    low: float
    close: float
    tick_volume: int
    spread: int
    real_volume: int

    @property
    def datetime(self) -> datetime:
        """The bar's open time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time, UTC)


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise MT5InvalidArgumentError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def _symbol_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MT5InvalidArgumentError(f"a symbol must be a non-empty str, got {value!r}")
    return value


def _at_least(value: object, least: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= least


def _epoch_msc(since: datetime) -> int:
    utc_timestamp("since", since)  # the same checks as every date argument
    # Exact integer arithmetic: float timestamps can land a millisecond early.
    return (since - _EPOCH) // timedelta(milliseconds=1)


class _Polling(abc.ABC):
    """What tick and bar streams share: retries across connection trouble, closing, iteration."""

    def __init__(
        self,
        connector: AsyncMT5Connector,
        *,
        poll_interval: float,
        retry_interval: float | None,
        sleep: Sleep,
    ) -> None:
        self._connector = connector
        self._poll_interval = _positive("poll_interval", poll_interval)
        self._retry_interval = (
            _positive("retry_interval", retry_interval)
            if retry_interval is not None
            else self._poll_interval
        )
        self._sleep = sleep
        self._closed = False
        self._ready = False  # symbols resolved and selected on the current connection
        self._outage = Outage(log)  # one warning per outage, one line when it ends
        self.recoveries = 0
        """How many times the stream waited out connection trouble and resumed."""

    async def _resilient(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        while True:
            try:
                if not self._ready:
                    await self._prepare()
                    self._ready = True
                result = await operation()
            except _RETRYABLE as exc:
                # MT5's generic failure is what reads get while the trade server is away.
                down = isinstance(exc, MT5CallFailedError)
                event = "trade_server_down" if down else "connection_lost"
                self._outage.warning(
                    f"aiomt5.streams.{event}", error=type(exc).__name__, detail=str(exc)
                )
                self._ready = False
            else:
                self._outage.ended("aiomt5.streams.resumed")
                return result
            await self._wait_usable()
            self.recoveries += 1

    async def _wait_usable(self) -> None:
        """Wait until a retry may work; raise when it never will (closed, or given up)."""
        sessions = self._connector.sessions
        if sessions.state in LIVE:
            # The trouble is not (or not yet) the state's: retry after retry_interval. (A plain
            # sleep, not cut short: the test's sleep may itself reconnect the connector.)
            await self._sleep(self._retry_interval)
        await sessions.wait_usable("stream", None, always_wait=True)

    @abc.abstractmethod
    async def _prepare(self) -> None:
        """Resolve and select the symbols on the current connection (and set the start)."""

    def __aiter__(self) -> Self:
        return self

    async def aclose(self) -> None:
        """Stop the stream; later iterations end at once (no call is made)."""
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class TickStream(_Polling):
    """Ticks of one or more symbols, in ``time_msc`` order, each exactly once.

    Made by ``stream_ticks``; see the module docstring for the cursor, buffer and reconnect
    rules.
    """

    def __init__(
        self,
        connector: AsyncMT5Connector,
        symbols: tuple[str, ...],
        *,
        poll_interval: float,
        buffer: int,
        flags: TickFlagsLike,
        since: datetime | None,
        retry_interval: float | None,
        sleep: Sleep,
    ) -> None:
        super().__init__(
            connector, poll_interval=poll_interval, retry_interval=retry_interval, sleep=sleep
        )
        if not symbols:
            raise MT5InvalidArgumentError("stream_ticks needs at least one symbol")
        for symbol in symbols:
            _symbol_name(symbol)
        if not _at_least(buffer, len(symbols)):
            raise MT5InvalidArgumentError(
                f"buffer must be an int >= the number of symbols ({len(symbols)}), got {buffer!r}"
            )
        self._requested = tuple(dict.fromkeys(symbols))
        self._flags = tick_flags(flags)
        self._since_msc = _epoch_msc(since) if since is not None else None
        self._share = buffer // len(self._requested)
        self._broker: dict[str, str] = {}
        self._cursors: dict[str, tuple[int, int]] = {}
        self._pending: collections.deque[StreamTick] = collections.deque()
        self._caught_up = False
        self._market_closed: dict[str, datetime] = {}  # symbol -> when it opens again

    @property
    def cursors(self) -> dict[str, tuple[int, int]]:
        """Per symbol: (``time_msc`` of the last tick handed out, ticks with that time_msc)."""
        return dict(self._cursors)

    @property
    def buffered(self) -> int:
        """Ticks read from the terminal and not handed out yet (at most ``buffer``)."""
        return len(self._pending)

    async def _prepare(self) -> None:
        for symbol in self._requested:
            self._broker[symbol] = await prepare_symbol(self._connector, symbol)
            if symbol not in self._cursors:
                self._cursors[symbol] = await self._start_cursor(self._broker[symbol])

    async def _start_cursor(self, broker: str) -> tuple[int, int]:
        if self._since_msc is not None:
            return self._since_msc, 0
        tick = await self._connector.call("symbol_info_tick", broker)
        now = int(tick.time_msc)
        second = now // 1000
        same = await self._connector.call("copy_ticks_range", broker, second, second, self._flags)
        # Start after every tick already at the latest millisecond.
        return now, int(np.count_nonzero(same["time_msc"] == now))

    async def __anext__(self) -> StreamTick:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            if self._caught_up:
                await self._sleep(self._poll_interval)
                if self._closed:
                    raise StopAsyncIteration
            await self._resilient(self._poll)
        tick = self._pending.popleft()
        last, seen = self._cursors[tick.symbol]
        self._cursors[tick.symbol] = (tick.time_msc, seen + 1 if tick.time_msc == last else 1)
        return tick

    async def _poll(self) -> None:
        fresh = await self._read_all()
        horizons = [int(rows["time_msc"][-1]) for _, rows, full in fresh if full]
        horizon = min(horizons) if horizons else None
        self._caught_up = horizon is None
        self._note_sessions(fresh)
        self._queue(fresh, horizon)

    async def _read_all(self) -> list[tuple[str, npt.NDArray[np.void], bool]]:
        """Every symbol's first page, ``_READS_IN_FLIGHT`` reads per ``call_many`` batch.

        A batch is one worker job: the loop pays for it once instead of once per symbol (and a
        child process or ``aiomt5://`` server answers it in one round trip), while other
        callers wait behind one batch at most. A symbol whose page is all already-seen ticks
        of one second reads a larger page of it (``_read``).
        """
        symbols = self._requested
        fresh: list[tuple[str, npt.NDArray[np.void], bool]] = []
        for start in range(0, len(symbols), _READS_IN_FLIGHT):
            batch = symbols[start : start + _READS_IN_FLIGHT]
            pages = await self._connector.call_many(
                "copy_ticks_from",
                [self._request(symbol, self._share) for symbol in batch],
            )
            for symbol, rows in zip(batch, pages, strict=True):
                page = self._new_ticks(symbol, rows, self._share)
                if page is None:
                    page = await self._read(symbol, 2 * self._share)
                fresh.append((symbol, *page))
        return fresh

    def _note_sessions(self, fresh: list[tuple[str, npt.NDArray[np.void], bool]]) -> None:
        """Say once when a quiet symbol's market is closed, and once when it trades again.

        A stream on a closed market otherwise just waits; where the backend knows the sessions
        (the simulator), the log says why and until when.
        """
        for symbol, rows, _ in fresh:
            if len(rows):
                if self._market_closed.pop(symbol, None) is not None:
                    log.info("aiomt5.streams.market_reopened", symbol=symbol)
                continue
            if symbol in self._market_closed:
                continue
            opens_at = market_opens_at(self._connector.backend, self._broker[symbol])
            if opens_at is not None:
                self._market_closed[symbol] = opens_at
                log.warning(
                    "aiomt5.streams.market_closed", symbol=symbol, opens_at=opens_at.isoformat()
                )

    def _request(self, symbol: str, limit: int) -> tuple[Any, ...]:
        """The ``copy_ticks_from`` arguments reading ``symbol`` from its cursor's second."""
        return (self._broker[symbol], self._cursors[symbol][0] // 1000, limit, self._flags)

    async def _read(self, symbol: str, limit: int) -> tuple[npt.NDArray[np.void], bool]:
        """Ticks of ``symbol`` after its cursor (pages of ``limit`` or larger), and whether more
        may wait."""
        while True:
            rows = await self._connector.call("copy_ticks_from", *self._request(symbol, limit))
            page = self._new_ticks(symbol, rows, limit)
            if page is not None:
                return page
            # One second holds more ticks than the share: read a larger page of it.
            limit *= 2

    def _new_ticks(
        self, symbol: str, rows: npt.NDArray[np.void], limit: int
    ) -> tuple[npt.NDArray[np.void], bool] | None:
        """Of a page read with ``limit``: the ticks past the cursor, and whether more may wait.

        None: the page holds only ticks the cursor covers, all in one second; read a larger one.
        """
        last, seen = self._cursors[symbol]
        full = len(rows) >= limit
        if not len(rows):
            return rows, full
        times = rows["time_msc"]
        before = int(times.searchsorted(last, "left"))
        through = int(times.searchsorted(last, "right"))
        new = rows[min(before + seen, through) :]
        if len(new) or not full:
            return new, full
        return None

    def _queue(
        self, fresh: list[tuple[str, npt.NDArray[np.void], bool]], horizon: int | None
    ) -> None:
        batches: list[tuple[str, npt.NDArray[np.void]]] = []
        for symbol, batch, _ in fresh:
            if horizon is not None and len(batch) and batch["time_msc"][-1] > horizon:
                batch = batch[batch["time_msc"] <= horizon]
            if len(batch):
                batches.append((symbol, batch))
        if not batches:
            return
        if len(batches) == 1:
            symbol, batch = batches[0]
            self._pending.extend(StreamTick(symbol, *row) for row in batch.tolist())
            return
        rows: list[tuple[Any, ...]] = []
        names: list[str] = []
        for symbol, batch in batches:
            rows.extend(batch.tolist())
            names.extend([symbol] * len(batch))
        times = np.concatenate([batch["time_msc"] for _, batch in batches])
        # Stable: time_msc first, then the order the symbols were given in (the batches are in
        # that order, so a stable sort on time alone keeps it).
        order = np.argsort(times, kind="stable")
        self._pending.extend(StreamTick(names[i], *rows[i]) for i in order.tolist())


class BarStream(_Polling):
    """Closed bars of one symbol and timeframe, each exactly once. Made by ``stream_bars``.

    A bar counts as closed once a later bar exists or the symbol's latest tick is at or past the
    bar's end (see ``_forming``). So the last bar before a market closure (a weekend) is yielded
    when the terminal's clock shows it ended, which for quiet symbols may be the next session's
    first tick. With ``since``, every bar opened after it is yielded (once closed), so a stream
    continues a ``get_rates(..., closed_only=True)`` download with no bar twice or missing.
    """

    def __init__(
        self,
        connector: AsyncMT5Connector,
        symbol: str,
        timeframe: TimeframeLike,
        *,
        poll_interval: float,
        retry_interval: float | None,
        sleep: Sleep,
        since: datetime | None = None,
    ) -> None:
        super().__init__(
            connector, poll_interval=poll_interval, retry_interval=retry_interval, sleep=sleep
        )
        self._symbol = _symbol_name(symbol)
        self._timeframe = Timeframe.parse(timeframe)
        self._broker = symbol
        self._cursor: int | None = None if since is None else utc_timestamp("since", since)
        self._started = since is not None
        self._pending: collections.deque[StreamBar] = collections.deque()
        # Where the backend knows its clock exactly (a replay): the earliest server time at
        # which a poll could find a closed bar, and how long the last poll took (see _wait).
        self._wake_at: float | None = None
        self._poll_cost: float | None = None

    @property
    def cursor(self) -> int | None:
        """Open time (epoch seconds) of the last bar handed out (or the start point)."""
        return self._cursor

    async def _prepare(self) -> None:
        self._broker = await prepare_symbol(self._connector, self._symbol)
        if not self._started:
            rows = await self._latest()
            closed = await self._closed_bars(rows)
            if len(closed):
                self._cursor = int(closed["time"][-1])
            elif len(rows):
                self._cursor = int(rows["time"][0]) - 1
            self._started = True

    async def _latest(self, depth: int = 2) -> npt.NDArray[np.void]:
        # A request of maxbars bars or more fails as a whole.
        depth = min(depth, max(await terminal_maxbars(self._connector) - 1, 1))
        frame = int(self._timeframe)
        rows: npt.NDArray[np.void] = await self._connector.call(
            "copy_rates_from_pos", self._broker, frame, 0, depth
        )
        return rows

    async def _closed_bars(self, rows: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
        return await drop_forming(self._connector, self._broker, self._timeframe, rows)

    async def __anext__(self) -> StreamBar:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            if self._started:
                await self._sleep(self._wait())
                if self._closed:
                    raise StopAsyncIteration
            began = server_time(self._connector.backend)
            recoveries = self.recoveries
            await self._resilient(self._poll)
            ended = server_time(self._connector.backend)
            self._poll_cost = None
            if began is not None and ended is not None and self.recoveries == recoveries:
                # To the microsecond: epoch floats near 1.8e9 are only that exact, and the
                # error of one poll's length must not add up over the skipped ones.
                self._poll_cost = max(round(ended - began, 6), 0.0)
        bar = self._pending.popleft()
        self._cursor = bar.time
        return bar

    def _wait(self) -> float:
        """The next sleep: ``poll_interval``, or longer where the backend's clock says the
        polls in between cannot find a closed bar.

        Only with a backend that knows its clock exactly (``server_time``: the simulator in a
        replay, where a stream's sleep moves that clock as far). The stream then skips each
        poll that would end before ``_wake_at``, keeping the rest on the schedule polling
        every ``poll_interval`` would follow (each poll lasting as long as the last one took),
        so it polls at the same instants and finds each bar when it would have. With the
        MetaTrader5 module (no such clock) every sleep is ``poll_interval``.
        """
        interval = self._poll_interval
        wake, cost = self._wake_at, self._poll_cost
        if wake is None or cost is None:
            return interval
        now = server_time(self._connector.backend)
        if now is None:
            return interval
        step = interval + cost
        # Poll j >= 1 would start at now + interval + (j - 1) * step and end at now + j * step.
        skip = math.ceil((wake - now) / step) - 1  # the polls ending before wake
        return interval + skip * step if skip > 0 else interval

    def _next_possible(self, rows: npt.NDArray[np.void], closed: int) -> float | None:
        """The earliest server time a later poll could find a closed bar (None: any time).

        A forming bar closes at its period's end at the earliest (a tick at or after it must
        exist); while the market is closed, not before it opens again.
        """
        if server_time(self._connector.backend) is None:
            return None
        opens_at = market_opens_at(self._connector.backend, self._broker)
        reopens = None if opens_at is None else opens_at.timestamp()
        if closed < len(rows):
            end = float(period_end(self._timeframe, int(rows["time"][-1])))
            return end if reopens is None else max(end, reopens)
        return reopens

    async def _poll(self) -> None:
        rows = await self._latest(_BAR_DEPTH)
        cursor = self._cursor
        if cursor is not None:
            newer = rows[rows["time"] > cursor]
            if len(newer) and len(newer) == len(rows):
                # Everything returned is new: bars between the cursor and them were missed
                # (a long outage); read them by date.
                gap = await fetch_rates(
                    self._connector,
                    self._broker,
                    self._timeframe,
                    datetime.fromtimestamp(cursor + 1, UTC),
                    datetime.fromtimestamp(int(newer["time"][0]) - 1, UTC),
                )
                newer = np.concatenate([gap, newer])
            rows = newer
        closed = await self._closed_bars(rows)
        self._wake_at = self._next_possible(rows, len(closed))
        self._pending.extend(StreamBar(self._symbol, *row) for row in closed.tolist())


def stream_ticks(
    connector: AsyncMT5Connector,
    *symbols: str,
    poll_interval: float = 0.25,
    buffer: int = 10_000,
    flags: TickFlagsLike = "all",
    since: datetime | None = None,
    retry_interval: float | None = None,
    sleep: Sleep = asyncio.sleep,
) -> TickStream:
    """Ticks of ``symbols`` as they arrive: ``async for tick in stream_ticks(mt5, "EURUSD")``.

    Args:
        connector: A connected ``AsyncMT5Connector``.
        *symbols: One or more symbol names (broker decorations are resolved).
        poll_interval: Seconds between polls once the stream has caught up.
        buffer: Most ticks held at once; a slow consumer falls behind instead (nothing is
            dropped; see the module docstring).
        flags: ``"all"``, ``"info"`` (bid/ask changes) or ``"trade"``.
        since: Start at this aware datetime (inclusive) instead of after the latest tick.
        retry_interval: Seconds between attempts while the terminal is unreachable (default:
            ``poll_interval``).
        sleep: The coroutine function used to wait (for tests: a simulated clock).

    Returns:
        A ``TickStream`` of ``StreamTick`` records (also an async context manager).
    """
    return TickStream(
        connector,
        symbols,
        poll_interval=poll_interval,
        buffer=buffer,
        flags=flags,
        since=since,
        retry_interval=retry_interval,
        sleep=sleep,
    )


def stream_bars(
    connector: AsyncMT5Connector,
    symbol: str,
    timeframe: TimeframeLike,
    *,
    poll_interval: float = 1.0,
    retry_interval: float | None = None,
    sleep: Sleep = asyncio.sleep,
    since: datetime | None = None,
) -> BarStream:
    """Each bar of ``symbol`` that closes from now on (or opened after ``since``), exactly once.

    Args:
        connector: A connected ``AsyncMT5Connector``.
        symbol: A symbol name (broker decorations are resolved).
        timeframe: ``Timeframe.M1``, ``"M1"`` or MT5's integer.
        poll_interval: Seconds between polls.
        retry_interval: Seconds between attempts while the terminal is unreachable (default:
            ``poll_interval``).
        sleep: The coroutine function used to wait (for tests: a simulated clock).
        since: An aware datetime: yield every bar opened after it, once closed — pass the last
            bar of a ``get_rates(..., closed_only=True)`` download to continue it exactly.

    Returns:
        A ``BarStream`` of ``StreamBar`` records (also an async context manager).
    """
    return BarStream(
        connector,
        symbol,
        timeframe,
        poll_interval=poll_interval,
        retry_interval=retry_interval,
        sleep=sleep,
        since=since,
    )
