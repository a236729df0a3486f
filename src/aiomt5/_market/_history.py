"""Paged history: bars and ticks of any size, read page by page under the terminal's ``maxbars``.

MetaTrader5 refuses, as a whole, any request for ``maxbars`` bars or more ("Max. bars in chart",
``terminal_info().maxbars``). ``fetch_rates`` and ``fetch_ticks`` split a request into pages that
each stay below that limit and make **one** ``connector.call`` per page, so other calls queued on
the connector's worker run between pages instead of waiting behind one huge read.

Seams are exact by construction, not by de-duplication afterwards:

* date ranges are cut into disjoint, adjacent windows ``[a, b]``, ``[b + 1, c]``... of whole
  seconds; MT5 returns bars with ``a <= time <= b`` and ticks with ``a*1000 <= time_msc <=
  b*1000 + 999``, so every row lands in exactly one page (ticks sharing a ``time_msc`` are in the
  same second, hence the same page);
* counts walk back from the newest bar with ``copy_rates_from(oldest - 1, n)``: each page holds
  only bars strictly older than the previous one.

A bar window never holds more than ``page`` bars: it spans ``page`` periods of the timeframe
(MN1 counts 28-day months), whatever the trading hours. Tick windows adapt their length to the
tick rate seen so far.

Times in: aware datetimes only (MetaTrader5 reads naive ones in the machine's local zone).
Times out: the arrays keep MT5's epoch columns (``time`` seconds, ``time_msc`` milliseconds),
which are UTC (the broker's server clock, for real terminals).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from aiomt5._core._arguments import positive_int, utc_timestamp
from aiomt5._core._deadline import Deadline, operation, seconds
from aiomt5._core._errors import (
    MT5CallError,
    MT5CallFailedError,
    MT5InvalidArgumentError,
    MT5InvalidParamsError,
    MT5ReplyTooLargeError,
)
from aiomt5._core._types import USE_DEFAULT, TimeoutArg
from aiomt5._mt5.dtypes import RATES_DTYPE, TICKS_DTYPE

from ._timeframe import Timeframe, TimeframeLike

if TYPE_CHECKING:
    from aiomt5._connector import AsyncMT5Connector

__all__ = [
    "FetchProgress",
    "PageSink",
    "ProgressCallback",
    "TickFlagsLike",
    "fetch_rates",
    "fetch_ticks",
    "join_pages",
    "prepare_symbol",
    "rate_pages",
    "terminal_maxbars",
    "tick_flags",
    "tick_pages",
]

_INT32_MAX: Final = 2**31 - 1
_MONTH_MIN_SECONDS: Final = 28 * 86400
_TICK_WINDOW_START: Final = 3600
_TICK_WINDOW_MAX: Final = 31 * 86400
_TICK_FLAGS: Final = {"all": -1, "info": 1, "trade": 2}
_NO_RATES: Final = np.empty(0, RATES_DTYPE)
_NO_TICKS: Final = np.empty(0, TICKS_DTYPE)
_CALL_FAILED: Final = -1  # the code MetaTrader5 itself gives a request outside its data
# A tick window refused as too large: by the terminal (-2), or by `aiomt5 serve`'s reply limit.
_TOO_LARGE: Final = (MT5InvalidParamsError, MT5ReplyTooLargeError)

TickFlagsLike = Literal["all", "info", "trade"] | int
"""``"all"``/``"info"``/``"trade"`` or MetaTrader5's ``COPY_TICKS_*`` value (-1, 1, 2)."""


@dataclass(frozen=True, slots=True)
class FetchProgress:
    """How far a paged fetch has got; passed to the ``progress`` callback after every page.

    Attributes:
        symbol: The broker's symbol name.
        rows: Rows received so far.
        pages: Pages (terminal calls) made so far.
        fraction: Share of the request done, in [0, 1] (by time for ranges, by rows for counts),
            or None when the end is not known in advance.
    """

    symbol: str
    rows: int
    pages: int
    fraction: float | None


ProgressCallback = Callable[[FetchProgress], object]
"""Called on the event loop after each page; keep it quick (it runs between pages)."""


# --------------------------------------------------------------------------- argument checks


def tick_flags(flags: TickFlagsLike) -> int:
    """MetaTrader5's ``COPY_TICKS_*`` value for ``"all"``, ``"info"``, ``"trade"`` or an int.

    Raises:
        MT5InvalidArgumentError: Anything else.
    """
    if isinstance(flags, str) and flags.lower() in _TICK_FLAGS:
        return _TICK_FLAGS[flags.lower()]
    if not isinstance(flags, bool) and isinstance(flags, int) and flags in _TICK_FLAGS.values():
        return flags
    raise MT5InvalidArgumentError(
        f"unknown tick flags {flags!r}: use 'all', 'info' (bid/ask changes), 'trade' "
        "(last/volume changes), or COPY_TICKS_ALL (-1), COPY_TICKS_INFO (1), COPY_TICKS_TRADE (2)"
    )


def _page_size(maxbars: int, page_size: int | None) -> int:
    # A request for maxbars rows or more fails as a whole: the largest safe page is maxbars - 1.
    limit = max(maxbars - 1, 1)
    if page_size is None:
        return limit
    return min(positive_int("page_size", page_size), limit)


# --------------------------------------------------------------------------- per-connection facts


async def terminal_maxbars(
    connector: AsyncMT5Connector, *, timeout: TimeoutArg = USE_DEFAULT
) -> int:
    """The terminal's ``maxbars``, read once per session (a terminal setting)."""
    session = connector.session
    if session is not None and session.maxbars is not None:
        return session.maxbars
    info = await connector.call("terminal_info", timeout=timeout)
    maxbars = int(info.maxbars)
    session = connector.session
    if session is not None:
        session.maxbars = maxbars
    return maxbars


async def prepare_symbol(
    connector: AsyncMT5Connector, symbol: str, *, timeout: TimeoutArg = USE_DEFAULT
) -> str:
    """Resolve ``symbol`` to the broker's name and make sure it is in the Market Watch.

    MetaTrader5 fails bar and tick reads (-1) on symbols not selected in the Market Watch.

    Raises:
        MT5SymbolNotFoundError: No such symbol (or an ambiguous broker-decorated name).
    """
    name = await connector.find_symbol(symbol, timeout=timeout)
    await connector.call("symbol_select", name, True, timeout=timeout)
    return name


class _Calls:
    """The calls of one download, and its deadline (the paging rule).

    ``timeout`` bounds the preparation (symbol resolution and selection, ``maxbars``) and the
    first page together, as one operation; each page that answers starts a fresh ``timeout``
    for the next one. So a download of one page is bounded by ``timeout`` as a whole, and a long
    download by ``timeout`` per page.
    """

    def __init__(self, connector: AsyncMT5Connector, timeout: TimeoutArg) -> None:
        self.connector = connector
        self.timeout = timeout
        self._scope = operation(seconds(timeout, connector.settings.call_timeout))
        self._deadline: Deadline | None = None

    def __enter__(self) -> _Calls:
        self._deadline = self._scope.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._scope.__exit__(*exc_info)

    async def __call__(self, function: str, *args: Any) -> Any:
        result = await self.connector.call(function, *args, timeout=self.timeout)
        if function.startswith("copy_") and self._deadline is not None:
            self._deadline.renew()  # a page answered: the next one has a timeout of its own
        return result


class _Outside:
    """Pages the terminal refuses because they lie entirely outside the server's data.

    MetaTrader5 fails such a request (-1, "Terminal: Call failed") instead of returning no
    rows: a page before the symbol's history starts is one. Those pages count as empty while
    another page of the request is answered; if none is, the request fails with a message that
    says so.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.first: MT5CallError | None = None
        self.answered = False

    def refused(self, error: MT5CallError) -> bool:
        """Whether ``error`` is such a refusal: then the page is empty (others are raised)."""
        if not isinstance(error, MT5CallFailedError):
            return False
        if self.first is None:
            self.first = error
        return True

    def check(self) -> None:
        """Raise when every page was refused: nothing of the request lies in the data."""
        first = self.first
        if first is None or self.answered:
            return
        raise MT5CallError(
            f"the terminal refused every page of {self.what} ({first.message}): the request "
            "lies entirely outside the server's history for it (before its first bar, or in "
            "the future), or the symbol has no history there",
            function=first.function,
            args_summary=first.args_summary,
            code=first.code,
        ) from first


def _clamp_to_latest(
    what: str, function: str, start: int, end: int, latest_msc: int | None, *, open_ended: bool
) -> int | None:
    """``end`` clamped to the newest data; None when nothing of an open-ended request is new yet.

    A range that starts after the newest data lies entirely outside the server's data: the
    terminal fails it (-1), and so does this, with a message that says why.
    """
    if latest_msc is None:
        return end
    end = min(end, latest_msc // 1000)
    if start <= end:
        return end
    if open_ended:
        return None
    latest = datetime.fromtimestamp(latest_msc / 1000, UTC).isoformat()
    raise MT5CallFailedError(
        f"{what}: the range starts after the newest data ({latest}): it lies entirely in the "
        "future, and MetaTrader5 fails such a request (-1); ask up to now",
        function=function,
        code=_CALL_FAILED,
    )


async def _latest_tick_msc(call: _Calls, symbol: str) -> int | None:
    """``time_msc`` of the symbol's latest tick: the terminal's "now" for that symbol."""
    try:
        tick = await call("symbol_info_tick", symbol)
    except MT5CallError:
        return None  # no quote yet: ranges are then not clamped, which only costs empty pages
    return int(tick.time_msc)


def join_pages(parts: list[npt.NDArray[np.void]], dtype: np.dtype[Any]) -> npt.NDArray[np.void]:
    """One array of the pages (no copy for a single page)."""
    if not parts:
        return np.empty(0, dtype=dtype)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


class PageSink(Protocol):
    """Receives pages as they arrive (frames copy them into their columns meanwhile)."""

    def reserve(self, rows: int) -> None:
        """At most ``rows`` rows will follow (called before the first page, when known)."""

    def add(self, page: npt.NDArray[np.void]) -> None:
        """The next page, in order (only date ranges feed a sink: count-form pages arrive
        newest first, and are only returned)."""


class _Pager:
    """Counts pages and rows, feeds the sink and reports progress."""

    def __init__(
        self, symbol: str, progress: ProgressCallback | None, sink: PageSink | None
    ) -> None:
        self.symbol = symbol
        self.progress = progress
        self.sink = sink
        self.pages = 0
        self.rows = 0

    def reserve(self, rows: int) -> None:
        if self.sink is not None:
            self.sink.reserve(rows)

    def add(self, page: npt.NDArray[np.void], fraction: float | None) -> None:
        self.pages += 1
        self.rows += len(page)
        if self.sink is not None and len(page):
            self.sink.add(page)
        if self.progress is not None:
            done = None if fraction is None else min(max(fraction, 0.0), 1.0)
            self.progress(FetchProgress(self.symbol, self.rows, self.pages, done))


# --------------------------------------------------------------------------- bars


async def fetch_rates(
    connector: AsyncMT5Connector,
    symbol: str,
    timeframe: TimeframeLike,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    *,
    count: int | None = None,
    start_pos: int | None = None,
    progress: ProgressCallback | None = None,
    page_size: int | None = None,
    timeout: TimeoutArg = USE_DEFAULT,
) -> npt.NDArray[np.void]:
    """Bars of any size of request, paged under the terminal's ``maxbars``, oldest first.

    One of these forms:

    * ``date_from`` and ``date_to``: bars opened in ``[date_from, date_to]``;
    * ``date_from`` alone: bars opened from ``date_from`` up to now;
    * ``date_from`` and ``count``: the ``count`` bars ending at ``date_from`` (inclusive);
    * ``count`` (and optionally ``start_pos``; 0 = the current bar): the latest bars.

    Args:
        connector: A connected ``AsyncMT5Connector``.
        symbol: A symbol name; broker decorations are resolved (``EURUSD`` → ``EURUSD.m``).
        timeframe: ``Timeframe.H1``, ``"H1"`` or MT5's integer.
        date_from: Aware datetime.
        date_to: Aware datetime.
        count: Number of bars (may exceed ``maxbars``).
        start_pos: Bars back from the current one; must lie within the terminal's chart buffer.
        progress: Called with a ``FetchProgress`` after every page.
        page_size: Bars per request (default and maximum: ``maxbars - 1``).
        timeout: Seconds per page (``None``: no limit; default: the connector's).

    Returns:
        MetaTrader5's packed structured array (``time`` in epoch seconds, UTC), no duplicate
        or missing rows at page seams. Fewer than ``count`` rows when the history ends first.

    Raises:
        MT5InvalidArgumentError: An impossible combination, a naive datetime, a bad count.
        MT5SymbolNotFoundError: No such symbol.
        MT5Error: A page failed (the whole fetch fails; nothing partial is returned).
    """
    pages = await rate_pages(
        connector,
        symbol,
        timeframe,
        date_from,
        date_to,
        count=count,
        start_pos=start_pos,
        progress=progress,
        page_size=page_size,
        timeout=timeout,
    )
    return join_pages(pages, RATES_DTYPE)


async def rate_pages(
    connector: AsyncMT5Connector,
    symbol: str,
    timeframe: TimeframeLike,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    *,
    count: int | None = None,
    start_pos: int | None = None,
    progress: ProgressCallback | None = None,
    page_size: int | None = None,
    sink: PageSink | None = None,
    timeout: TimeoutArg = USE_DEFAULT,
) -> list[npt.NDArray[np.void]]:
    """``fetch_rates``, but the non-empty pages, oldest first, not joined.

    Frames are built from the pages directly, saving the copy a joined array would cost;
    ``sink`` receives range pages as they arrive, so that copy overlaps the next download.
    """
    frame = int(Timeframe.parse(timeframe))
    plan = _rates_plan(date_from, date_to, count, start_pos)
    with _Calls(connector, timeout) as call:
        name = await prepare_symbol(connector, symbol, timeout=timeout)
        maxbars = await terminal_maxbars(connector, timeout=timeout)
        page = _page_size(maxbars, page_size)
        pager = _Pager(name, progress, sink)
        if plan[0] == "range":
            _, start, end = plan
            latest = await _latest_tick_msc(call, name)
            what = f"{name} {Timeframe(frame).name} bars"
            clamped = _clamp_to_latest(
                what, "copy_rates_range", start, end, latest, open_ended=date_to is None
            )
            if clamped is None:
                return []
            return await _rates_range(call, name, frame, start, clamped, page, pager)
        _, anchor, total, position = plan
        return await _rates_back(
            call, name, frame, (anchor, total, position), (page, maxbars), pager
        )


def _rates_plan(
    date_from: datetime | None,
    date_to: datetime | None,
    count: int | None,
    start_pos: int | None,
) -> tuple[Literal["range"], int, int] | tuple[Literal["back"], int | None, int, int]:
    """Check the arguments; ("range", start, end) or ("back", anchor_time, count, start_pos)."""
    if start_pos is not None:
        if date_from is not None or date_to is not None:
            raise MT5InvalidArgumentError(
                "start_pos counts bars back from now: do not combine it with dates"
            )
        if count is None:
            raise MT5InvalidArgumentError("start_pos needs count= (how many bars)")
        back = positive_int("start_pos", start_pos, allow_zero=True)
        return "back", None, positive_int("count", count), back
    if date_from is not None:
        start = utc_timestamp("date_from", date_from)
        if count is not None:
            if date_to is not None:
                raise MT5InvalidArgumentError("give date_to or count, not both")
            return "back", start, positive_int("count", count), 0
        end = utc_timestamp("date_to", date_to) if date_to is not None else _INT32_MAX
        if end < start:
            raise MT5InvalidArgumentError(
                f"date_to ({date_to!r}) is before date_from ({date_from.isoformat()})"
            )
        return "range", start, end
    if date_to is not None:
        raise MT5InvalidArgumentError("date_to needs date_from")
    if count is None:
        raise MT5InvalidArgumentError(
            "say which bars: count=N (latest), date_from (+ date_to), date_from + count, "
            "or start_pos + count"
        )
    return "back", None, positive_int("count", count), 0


def _window_seconds(frame: int, page: int) -> int:
    """Length of a window that can hold at most ``page`` bars of ``frame``."""
    timeframe = Timeframe(frame)
    period = _MONTH_MIN_SECONDS if timeframe is Timeframe.MN1 else timeframe.seconds
    return page * period


async def _rates_range(
    call: _Calls,
    symbol: str,
    frame: int,
    start: int,
    end: int,
    page: int,
    pager: _Pager,
) -> list[npt.NDArray[np.void]]:
    span = _window_seconds(frame, page)
    windows = [(low, min(low + span - 1, end)) for low in range(start, end + 1, span)]
    pager.reserve(len(windows) * page)
    parts: list[npt.NDArray[np.void]] = []
    outside = _Outside(f"{symbol} {Timeframe(frame).name} bars")
    upcoming: asyncio.Task[Any] | None = None
    try:
        for index, (low, high) in enumerate(windows):
            if upcoming is None:
                upcoming = asyncio.ensure_future(call("copy_rates_range", symbol, frame, low, high))
            try:
                bars = await upcoming
                outside.answered = True
            except MT5CallError as exc:
                if not outside.refused(exc):
                    raise
                bars = _NO_RATES
            upcoming = None
            if index + 1 < len(windows):
                # Queue the next page before handling this one: the terminal works on it while
                # the loop copies this page (only one page waits ahead of other callers).
                after_low, after_high = windows[index + 1]
                upcoming = asyncio.ensure_future(
                    call("copy_rates_range", symbol, frame, after_low, after_high)
                )
            if len(bars):
                parts.append(bars)
            pager.add(bars, (high - start + 1) / (end - start + 1))
    finally:
        if upcoming is not None:
            _abandon(upcoming)
    outside.check()
    return parts


def _abandon(task: asyncio.Task[Any]) -> None:
    """Cancel a prefetched page nobody will read (a queued read never runs)."""
    task.cancel()
    # Retrieve its outcome so a failure is not reported as "never retrieved".
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


async def _rates_back(
    call: _Calls,
    symbol: str,
    frame: int,
    request: tuple[int | None, int, int],
    limits: tuple[int, int],
    pager: _Pager,
) -> list[npt.NDArray[np.void]]:
    """``total`` bars ending at ``anchor`` (a time) or at ``position`` bars back from now.

    ``request`` is (anchor, total, position); ``limits`` is (page, maxbars).
    """
    anchor, total, position = request
    page, maxbars = limits
    parts: list[npt.NDArray[np.void]] = []
    outside = _Outside(f"{symbol} {Timeframe(frame).name} bars")
    remaining = total
    if anchor is None:
        # copy_rates_from_pos only reaches maxbars deep (the chart buffer); older pages go by time.
        first = min(remaining, page, maxbars - position)
        if first < 1:
            raise MT5InvalidArgumentError(
                f"start_pos={position} lies beyond the terminal's chart buffer (maxbars): "
                "ask by date instead (date_from + count)"
            )
        bars = await call("copy_rates_from_pos", symbol, frame, position, first)
    else:
        first = min(remaining, page)
        try:
            bars = await call("copy_rates_from", symbol, frame, anchor, first)
        except MT5CallError as exc:
            if outside.refused(exc):
                outside.check()  # the anchor lies before the history: say so
            raise
    pager.sink = None  # pages arrive newest first: the caller gets them from the list
    while True:
        if len(bars):
            parts.append(bars)
        remaining -= len(bars)
        pager.add(bars, (total - remaining) / total)
        if remaining <= 0 or len(bars) < first:
            break  # done, or the history starts here
        older = int(bars["time"][0]) - 1
        first = min(remaining, page)
        try:
            bars = await call("copy_rates_from", symbol, frame, older, first)
        except MT5CallError as exc:
            if not outside.refused(exc):
                raise
            break  # nothing before the last page: the history starts there
    parts.reverse()
    return parts


# --------------------------------------------------------------------------- ticks


async def fetch_ticks(
    connector: AsyncMT5Connector,
    symbol: str,
    date_from: datetime,
    date_to: datetime | None = None,
    *,
    count: int | None = None,
    flags: TickFlagsLike = "all",
    progress: ProgressCallback | None = None,
    page_size: int | None = None,
    timeout: TimeoutArg = USE_DEFAULT,
) -> npt.NDArray[np.void]:
    """Ticks from ``date_from``, paged by time, in ``time_msc`` order, no duplicates at seams.

    ``date_to`` bounds the range (inclusive, to the second); ``count`` takes the first ``count``
    ticks from ``date_from`` instead; with neither, ticks run up to now.

    Pages are time windows of whole seconds whose length adapts so that each page holds about
    ``page_size`` ticks; a window the terminal refuses as too large (-2), or ``aiomt5 serve`` as
    over its reply limit, is halved and retried.

    Args:
        connector: A connected ``AsyncMT5Connector``.
        symbol: A symbol name; broker decorations are resolved.
        date_from: Aware datetime (second precision, as MetaTrader5).
        date_to: Aware datetime.
        count: At most this many ticks.
        flags: ``"all"``, ``"info"`` (bid/ask changes) or ``"trade"`` (last/volume changes).
        progress: Called with a ``FetchProgress`` after every page.
        page_size: Target ticks per request (default: ``maxbars - 1``).
        timeout: Seconds per page (``None``: no limit; default: the connector's).

    Raises:
        MT5InvalidArgumentError: Naive datetimes, both ``date_to`` and ``count``, bad flags.
        MT5SymbolNotFoundError: No such symbol.
    """
    pages = await tick_pages(
        connector,
        symbol,
        date_from,
        date_to,
        count=count,
        flags=flags,
        progress=progress,
        page_size=page_size,
        timeout=timeout,
    )
    return join_pages(pages, TICKS_DTYPE)


async def tick_pages(
    connector: AsyncMT5Connector,
    symbol: str,
    date_from: datetime,
    date_to: datetime | None = None,
    *,
    count: int | None = None,
    flags: TickFlagsLike = "all",
    progress: ProgressCallback | None = None,
    page_size: int | None = None,
    sink: PageSink | None = None,
    timeout: TimeoutArg = USE_DEFAULT,
) -> list[npt.NDArray[np.void]]:
    """``fetch_ticks``, but the non-empty pages, oldest first, not joined (``sink``: as in
    ``rate_pages``)."""
    start = utc_timestamp("date_from", date_from)
    copy_flags = tick_flags(flags)
    if date_to is not None and count is not None:
        raise MT5InvalidArgumentError("give date_to or count, not both")
    end = utc_timestamp("date_to", date_to) if date_to is not None else _INT32_MAX
    if end < start:
        raise MT5InvalidArgumentError(
            f"date_to ({date_to!r}) is before date_from ({date_from.isoformat()})"
        )
    total = positive_int("count", count) if count is not None else None
    with _Calls(connector, timeout) as call:
        name = await prepare_symbol(connector, symbol, timeout=timeout)
        target = _page_size(await terminal_maxbars(connector, timeout=timeout), page_size)
        latest = await _latest_tick_msc(call, name)
        clamped = _clamp_to_latest(
            f"{name} ticks", "copy_ticks_range", start, end, latest, open_ended=date_to is None
        )
        if clamped is None:
            return []
        end = clamped
        pager = _Pager(name, progress, sink)
        if total is not None:
            pager.reserve(total)  # pages are cut at count: a sink can copy them as they come
        parts: list[npt.NDArray[np.void]] = []
        rows = 0
        window = _TICK_WINDOW_START
        outside = _Outside(f"{name} ticks")
        low = start
        while low <= end and (total is None or rows < total):
            high = min(low + window - 1, end)
            try:
                ticks = await call("copy_ticks_range", name, low, high, copy_flags)
                outside.answered = True
            except MT5CallError as exc:
                if outside.refused(exc):
                    ticks = _NO_TICKS
                elif not isinstance(exc, _TOO_LARGE) or high == low:
                    raise
                else:
                    window = max((high - low + 1) // 2, 1)
                    continue
            if total is not None and rows + len(ticks) > total:
                ticks = ticks[: total - rows]
            if len(ticks):
                parts.append(ticks)
                rows += len(ticks)
            if total is not None:
                fraction: float | None = rows / total
            else:
                fraction = (high - start + 1) / (end - start + 1) if end < _INT32_MAX else None
            pager.add(ticks, fraction)
            window = _next_window(high - low + 1, len(ticks), target)
            low = high + 1
        outside.check()
        return parts


def _next_window(seconds: int, ticks: int, target: int) -> int:
    """A window length expected to hold about ``target`` ticks (grows at most 4x per page)."""
    if ticks == 0:
        return min(seconds * 4, _TICK_WINDOW_MAX)
    # Aim below the target: tick rates vary within a day.
    estimate = int(seconds * target * 0.8 / ticks)
    return max(1, min(estimate, seconds * 4, _TICK_WINDOW_MAX))
