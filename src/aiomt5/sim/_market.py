"""The simulated market: deterministic, lazily generated M1 bars and ticks for one instrument.

Everything is a pure function of ``(seed, symbol name, time)``, so any range can be produced on
demand and the same minute always has the same bar and the same ticks, whichever range asked for
it. The pieces, from coarse to fine:

* **Day anchors.** The log price at each day boundary (00:00 UTC) comes from a random-midpoint
  tree over epoch days ``[0, 2**16)``: each node's midpoint is a Brownian-bridge draw between its
  ends, hashed from ``(seed, symbol, level, node)``. Variance follows *trading time* (a day counts
  by how active it is, weekends barely), so the anchors form a random walk at daily scales with
  small weekend gaps, while the per-level spread is capped so the price keeps returning to
  ``spec.base_price`` over the decades (mean reversion). Any day is reachable in 16 steps.
* **Minutes.** Within a day the latent price is a Brownian bridge between the two anchors, its
  per-minute variance shaped by an intraday activity profile (closed minutes move a little, so a
  gap opens over a weekend). A per-``(seed, symbol, day)`` Philox stream drives it. M1 open is the
  previous minute's close; high/low stretch beyond open/close by drawn excursions; the bar spread
  (the minimum spread of the bar's ticks) and tick volume are drawn around the spec's values.
  Only open minutes have bars.
* **Ticks** are drawn per day on demand, from a second stream, constrained by the day's bars:
  ``tick_volume`` ticks with strictly increasing ``time_msc`` inside the minute, the chart price
  (bid, or last for exchange instruments) starting at open, ending at close, touching high and
  low; the spread never below the bar's. Complete bars never need ticks; only the bar that is
  still forming at "now" is built from the ticks up to now.
* **Higher timeframes** aggregate M1 exactly (open first, high max, low min, close last, volumes
  summed, spread the minimum, as the M1 spread is the minimum of its ticks); a bar's time is its
  period start: epoch-aligned for M2..D1, Sunday 00:00 for W1, the 1st of the month for MN1.

The hot path (complete bars) is vectorised across minutes and days; Python loops run per day at
most. Like the real terminal, which keeps a symbol's loaded history in memory, recently used
complete M1 bars are kept in a ``HistoryCache``: an LRU of epoch-aligned chunks of days within a
byte budget, so overlapping requests share chunks and a repeated request only packs its rows.
Recently used days of ticks are kept in a small LRU, so polling "now" is cheap, and daily bars
are kept per block of days, so D1/W1/MN1 history is generated once. Caches only ever hold values
that are pure functions of ``(seed, symbol, time)``: what was asked before never changes a value.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from aiomt5._mt5 import constants as c
from aiomt5._mt5.structs import RATES_DTYPE, TICKS_DTYPE

from ._spec import MINUTES_PER_WEEK, SymbolSpec, minute_of_week

__all__ = [
    "HISTORY_CACHE_BYTES",
    "HISTORY_START_24_7",
    "HISTORY_START_DEFAULT",
    "HistoryCache",
    "MarketModel",
    "is_timeframe",
    "nominal_seconds",
    "period_start",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Bools = npt.NDArray[np.bool_]
Packed = npt.NDArray[np.void]

HISTORY_START_DEFAULT: Final = 946_857_600
"""2000-01-03 00:00 UTC (a Monday): where the history of instruments with sessions begins."""
HISTORY_START_24_7: Final = 1_483_228_800
"""2017-01-01 00:00 UTC: where the history of round-the-clock (crypto) instruments begins."""

_DAY_MIN: Final = 1440
_DAY_S: Final = 86_400
_DAY_MS: Final = 86_400_000
_MINUTE_MS: Final = 60_000
_WEEK_S: Final = 604_800
# Epoch day 0 (1970-01-01) was a Thursday; MT5 numbers weekdays from Sunday = 0.
_EPOCH_WEEKDAY: Final = c.DAY_OF_WEEK_THURSDAY
# The first Sunday 00:00 after the epoch, where W1 bars are aligned.
_FIRST_SUNDAY_S: Final = 3 * _DAY_S

# Anchors are defined on epoch days [0, 2**_TREE_LEVELS): 1970-01-01 .. 2149-06-06.
_TREE_LEVELS: Final = 16
_LAST_DAY: Final = (1 << _TREE_LEVELS) - 2  # a day needs the anchor of the next one too
# Caps each tree level's displacement (log units): the long-run range, i.e. mean reversion.
_LEVEL_SD_CAP: Final = 0.12
# Variance weight of a closed minute relative to an average open one: news moves the price
# a little while the market is shut, which is what makes a Monday open gap.
_CLOSED_WEIGHT: Final = 0.08
# High/low excursion beyond max/min(open, close), in minute standard deviations (times u**2).
_EXCURSION: Final = 1.2
# Days of bars generated per vectorised batch: bounds the working memory of huge ranges.
_BATCH_DAYS: Final = 512
# Complete M1 bars are cached per chunk of epoch days [k * 8, k * 8 + 8): aligned, so overlapping
# requests reuse the same chunks; small, so a short first request generates little beyond it.
_CACHE_CHUNK_DAYS: Final = 8
HISTORY_CACHE_BYTES: Final = 64 << 20
"""Default budget of a ``HistoryCache``: about a million M1 bars (64 bytes each as columns)."""
_TICK_CACHE_DAYS: Final = 4
# D1 bars are kept per block of days, for every block ever asked for (a few KB each): daily,
# weekly and monthly history over decades is then generated once.
_DAILY_BLOCK_DAYS: Final = 64
_DAILY_CACHE_BLOCKS: Final = (1 << _TREE_LEVELS) // _DAILY_BLOCK_DAYS
_DAILY_TIMEFRAMES: Final = frozenset({c.TIMEFRAME_D1, c.TIMEFRAME_W1, c.TIMEFRAME_MN1})
# Undocumented 0x80 bit of the per-tick flags, seen in the official examples (134 and 130); here
# on the first tick of a session and on about 1 in 64 bid changes.
_TICK_FLAG_X80: Final = 0x80
_INFO_FLAGS: Final = c.TICK_FLAG_BID | c.TICK_FLAG_ASK
_TRADE_FLAGS: Final = c.TICK_FLAG_LAST | c.TICK_FLAG_VOLUME
# Share of the ticks of exchange instruments that are trades at an unchanged last price.
_SAME_PRICE_TRADES: Final = 0.3

_MASK64: Final = (1 << 64) - 1
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)

_FIXED_SECONDS: Final[dict[int, int]] = {
    **{tf: tf * 60 for tf in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)},
    **{c.TIMEFRAME_H1 - 1 + h: h * 3600 for h in (1, 2, 3, 4, 6, 8, 12)},
    c.TIMEFRAME_D1: _DAY_S,
    c.TIMEFRAME_W1: _WEEK_S,
}
# Nominal length of MN1 for sizing look-backs (the longest month).
_MONTH_S: Final = 31 * _DAY_S


# =============================================================================== time frames
def is_timeframe(timeframe: int) -> bool:
    """True for the MetaTrader5 ``TIMEFRAME_*`` values (M1..M30, H1..H12, D1, W1, MN1)."""
    return timeframe in _FIXED_SECONDS or timeframe == c.TIMEFRAME_MN1


def _check_timeframe(timeframe: int) -> None:
    if not is_timeframe(timeframe):
        msg = (
            f"unknown timeframe {timeframe!r}: pass one of the MetaTrader5 TIMEFRAME_* values "
            "(M1..M30, H1..H12, D1, W1, MN1)"
        )
        raise ValueError(msg)


def period_start(timeframe: int, times: I64) -> I64:
    """Open time of the ``timeframe`` bar containing each epoch second in ``times``.

    Raises:
        ValueError: ``timeframe`` is not a MetaTrader5 ``TIMEFRAME_*`` value.
    """
    _check_timeframe(timeframe)
    if timeframe == c.TIMEFRAME_MN1:
        months = times.astype("datetime64[s]").astype("datetime64[M]")
        result: I64 = months.astype("datetime64[s]").astype(np.int64)
        return result
    if timeframe == c.TIMEFRAME_W1:
        return times - (times - _FIRST_SUNDAY_S) % _WEEK_S
    seconds = _FIXED_SECONDS[timeframe]
    return times - times % seconds


def _check_day(day: int) -> None:
    if day > _LAST_DAY:
        msg = f"dates after 2149-06 are outside the simulated history (day {day})"
        raise ValueError(msg)


def _floor(timeframe: int, t: int) -> int:
    return int(period_start(timeframe, np.array([t], dtype=np.int64))[0])


def _next(timeframe: int, start: int) -> int:
    """Start of the period after the one starting at ``start``."""
    if timeframe == c.TIMEFRAME_MN1:
        month = np.array([start], dtype="datetime64[s]").astype("datetime64[M]") + np.timedelta64(
            1, "M"
        )
        return int(month.astype("datetime64[s]").astype(np.int64)[0])
    return start + _FIXED_SECONDS[timeframe]


def nominal_seconds(timeframe: int) -> int:
    """Seconds of one bar, MN1 counted as the longest month (for sizing requests)."""
    return _MONTH_S if timeframe == c.TIMEFRAME_MN1 else _FIXED_SECONDS[timeframe]


# =============================================================================== hashing
def _key(seed: int, name: str, purpose: str) -> int:
    """A 128-bit key for one random stream; stable across processes (unlike ``hash()``)."""
    digest = hashlib.blake2b(f"{seed}\x00{name}\x00{purpose}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "little")


def _mix64(x: U64) -> U64:
    """SplitMix64's finaliser: a bijective avalanche of 64-bit words (wraps by design)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    result: U64 = x ^ (x >> np.uint64(31))
    return result


def _hash_normals(key: int, nodes: I64) -> F64:
    """Standard normals, one per node index, each a pure function of ``(key, node)``."""
    words = _mix64(nodes.astype(np.uint64) * _GOLDEN + np.uint64(key & _MASK64))
    u1 = ((words >> np.uint64(32)).astype(np.float64) + 0.5) / 4294967296.0
    u2 = ((words & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) / 4294967296.0
    result: F64 = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return result


def _uniform12(raw: U64, field: int) -> F64:
    """The ``field``-th 12-bit slice of raw random words as a uniform in (0, 1)."""
    bits = (raw >> np.uint64(12 * field)) & np.uint64(0xFFF)
    result: F64 = (bits.astype(np.float64) + 0.5) / 4096.0
    return result


def _activity_profile(minute_of_day: I64) -> F64:
    """Relative market activity through the UTC day: Asia, London and New York sessions."""
    hour = minute_of_day / 60.0

    def bump(centre: float, width: float) -> F64:
        result: F64 = np.exp(-0.5 * ((hour - centre) / width) ** 2)
        return result

    return 0.35 + 0.25 * bump(2.0, 2.5) + 0.7 * bump(8.5, 2.0) + 0.9 * bump(14.5, 2.0)


# =============================================================================== containers
@dataclass(frozen=True, slots=True)
class _Bars:
    """Bars as columns (aligned arrays are much faster than the packed 60-byte rows)."""

    time: I64
    open: F64
    high: F64
    low: F64
    close: F64
    tick_volume: I64
    spread: I64
    real_volume: I64

    def __len__(self) -> int:
        return len(self.time)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in _BAR_FIELDS)

    @classmethod
    def empty(cls) -> _Bars:
        f, i = np.empty(0, np.float64), np.empty(0, np.int64)
        return cls(i, f, f, f, f, i, i, i)

    @classmethod
    def zero(cls) -> _Bars:
        """One all-zero bar (a placeholder before the first one)."""
        f, i = np.zeros(1), np.zeros(1, np.int64)
        return cls(i, f, f, f, f, i, i, i)

    @classmethod
    def concat(cls, parts: list[_Bars]) -> _Bars:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in _BAR_FIELDS))

    def slice(self, lo: int, hi: int) -> _Bars:
        return _Bars(*(getattr(self, name)[lo:hi] for name in _BAR_FIELDS))

    def between(self, first_s: int, last_s: int) -> _Bars:
        """The bars with ``first_s <= time <= last_s``."""
        lo = int(np.searchsorted(self.time, first_s, "left"))
        hi = int(np.searchsorted(self.time, last_s, "right"))
        return self if (lo, hi) == (0, len(self)) else self.slice(lo, hi)

    def aggregate(self, keys: I64) -> _Bars:
        """Merge runs of equal ``keys`` (period starts, non-decreasing) into one bar each."""
        if len(self) == 0:
            return self
        ends = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        if len(ends) == len(self) - 1:
            return _Bars(keys, *(getattr(self, name) for name in _BAR_FIELDS[1:]))
        starts = np.concatenate(([0], ends))
        lasts = np.concatenate((ends - 1, [len(self) - 1]))
        return _Bars(
            keys[starts],
            self.open[starts],
            np.maximum.reduceat(self.high, starts),
            np.minimum.reduceat(self.low, starts),
            self.close[lasts],
            np.add.reduceat(self.tick_volume, starts),
            np.minimum.reduceat(self.spread, starts),
            np.add.reduceat(self.real_volume, starts),
        )

    def copy(self) -> _Bars:
        return _Bars(*(getattr(self, name).copy() for name in _BAR_FIELDS))

    def pack_into(self, out: Packed) -> None:
        """Write the bars into MetaTrader5's packed ``copy_rates_*`` rows."""
        for name in _BAR_FIELDS:
            out[name] = getattr(self, name)

    def pack(self) -> Packed:
        """The bars as MetaTrader5's packed ``copy_rates_*`` rows."""
        out = np.empty(len(self), dtype=RATES_DTYPE)
        self.pack_into(out)
        return out


_BAR_FIELDS: Final = _Bars.__slots__
_BAR_BYTES: Final = 8 * len(_BAR_FIELDS)  # as columns: every field is 64-bit


@dataclass(frozen=True, slots=True)
class _DayTicks:
    """One day's ticks, packed as returned, plus aligned columns for searching and bar building."""

    ticks: Packed
    time_msc: I64
    price: F64  # the chart price: bid, or last for exchange instruments
    spread: I64  # points
    volume: I64

    def bar(self, lo: int, hi: int) -> _Bars:
        """The M1 bar made of ticks ``[lo, hi)`` (all in one minute)."""
        price = self.price[lo:hi]
        minute_s = int(self.time_msc[lo]) // _MINUTE_MS * 60
        return _Bars(
            np.array([minute_s], dtype=np.int64),
            price[:1].copy(),
            np.array([price.max()]),
            np.array([price.min()]),
            price[-1:].copy(),
            np.array([hi - lo], dtype=np.int64),
            np.array([self.spread[lo:hi].min()], dtype=np.int64),
            np.array([self.volume[lo:hi].sum()], dtype=np.int64),
        )


_T = TypeVar("_T", bound=np.generic)
_K = TypeVar("_K")
_V = TypeVar("_V")


class _LRU(Generic[_K, _V]):
    """A tiny thread-safe LRU map (the terminal may be driven from a worker thread)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)


class HistoryCache:
    """Complete M1 bars kept in memory, as the real terminal keeps loaded history.

    An LRU of chunks of days within a byte budget, meant to be shared by the markets of one
    terminal (``SimTerminal(history_cache_bytes=...)``), so the budget holds however many
    symbols are used. It only stores and hands back bars; each market decides what to keep.
    Thread-safe.

    Args:
        max_bytes: The budget, in bytes of bar columns (64 per M1 bar). 0 keeps nothing.

    Raises:
        ValueError: ``max_bytes`` is negative.
    """

    def __init__(self, max_bytes: int = HISTORY_CACHE_BYTES) -> None:
        if max_bytes < 0:
            msg = f"the history cache budget must be >= 0 bytes, got {max_bytes}"
            raise ValueError(msg)
        self.max_bytes: Final = max_bytes
        self._items: OrderedDict[tuple[int, int], _Bars] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self._owners = itertools.count()

    @property
    def nbytes(self) -> int:
        """Bytes held now (never above ``max_bytes``)."""
        return self._nbytes

    def new_owner(self) -> int:
        """A key space of its own, for one market."""
        with self._lock:
            return next(self._owners)

    def get(self, key: tuple[int, int]) -> _Bars | None:
        with self._lock:
            bars = self._items.get(key)
            if bars is not None:
                self._items.move_to_end(key)
            return bars

    def put(self, key: tuple[int, int], bars: _Bars) -> None:
        """Keep ``bars`` (arrays of their own), evicting the least recently used.

        The arrays become read-only: a slip that would write into the cache fails loudly.
        """
        size = bars.nbytes
        if size > self.max_bytes:
            return
        for name in _BAR_FIELDS:
            getattr(bars, name).flags.writeable = False
        with self._lock:
            replaced = self._items.pop(key, None)
            if replaced is not None:
                self._nbytes -= replaced.nbytes
            self._items[key] = bars
            self._nbytes += size
            while self._nbytes > self.max_bytes:
                self._nbytes -= self._items.popitem(last=False)[1].nbytes


class _Selection:
    """Picks the open minutes out of ``(days, 1440)`` arrays, flattened."""

    def __init__(self, is_open: Bools) -> None:
        # FX and crypto days are open all day (closed days are skipped): a reshape, no copy.
        self._mask = None if is_open.all() else is_open
        self.counts: I64 = is_open.sum(axis=1)

    def __call__(self, values: npt.NDArray[_T]) -> npt.NDArray[_T]:
        return values.reshape(-1) if self._mask is None else values[self._mask]


# =============================================================================== tick recipe
@dataclass(frozen=True, slots=True)
class _TickLayout:
    """Where each minute's ticks sit in a day's flat tick arrays."""

    counts: I64  # ticks per minute (>= 4)
    starts: I64  # index of each minute's first tick
    owner: I64  # minute (row in the day's bars) of each tick
    index: I64  # position of each tick inside its minute
    is_last: Bools

    @property
    def total(self) -> int:
        return len(self.owner)

    @classmethod
    def of(cls, counts: I64) -> _TickLayout:
        starts = np.cumsum(counts) - counts
        owner = np.repeat(np.arange(len(counts)), counts)
        index = np.arange(len(owner)) - starts[owner]
        return cls(counts, starts, owner, index, index == counts[owner] - 1)

    def shift(self, values: npt.NDArray[_T], before_first: npt.NDArray[_T]) -> npt.NDArray[_T]:
        """Each tick's predecessor's value; a minute's first tick gets ``before_first``."""
        shifted = np.empty_like(values)
        shifted[1:] = values[:-1]
        shifted[self.starts] = before_first
        return shifted


@dataclass(frozen=True, slots=True)
class _MinuteContext:
    """What each minute's first tick follows: the previous minute's close tick, if it traded."""

    session_start: Bools  # the minute before was closed (or before the history)
    prev_close: F64
    prev_spread: I64  # the previous bar's spread (its close tick quotes it + 1 point)

    @classmethod
    def of(cls, bars: _Bars, previous: _Bars) -> _MinuteContext:
        """``previous`` is the bar of the minute before the first one (empty if closed)."""
        minutes = bars.time // 60
        session_start = np.ones(len(bars), dtype=np.bool_)
        session_start[1:] = minutes[1:] != minutes[:-1] + 1
        session_start[0] = len(previous) == 0
        before = previous if len(previous) else _Bars.zero()
        return cls(
            session_start,
            np.concatenate((before.close, bars.close[:-1])),
            np.concatenate((before.spread, bars.spread[:-1])),
        )


def _tick_times(layout: _TickLayout, minutes: I64, gaps: F64) -> I64:
    """Strictly increasing ``time_msc`` inside each minute, from ``n + 1`` gaps per minute."""
    gaps += 1e-9  # a zero gap would let two ticks share a share of the minute
    cum = np.cumsum(gaps)
    n, owner = layout.counts, layout.owner
    first_gap = layout.starts + np.arange(len(n))
    before = np.where(first_gap > 0, cum[first_gap - 1], 0.0)
    share = (cum[np.arange(layout.total) + owner] - before[owner]) / (cum[first_gap + n] - before)[
        owner
    ]
    # share < 1 strictly increases; adding the index keeps the milliseconds distinct.
    offset = np.floor(share * (_MINUTE_MS - n[owner])).astype(np.int64) + layout.index
    result: I64 = minutes[owner] * _MINUTE_MS + offset
    return result


def _tick_prices(layout: _TickLayout, bars: _Bars, per_bar: U64, per_tick: U64, digits: int) -> F64:
    """Chart prices: open -> first extreme -> second extreme -> close, with noise.

    Piecewise linear through the four key ticks (the first, one at the high, one at the low, the
    last), jittered, clipped to [low, high], with the key ticks set exactly.
    """
    n, owner, index = layout.counts, layout.owner, layout.index
    u_high = (per_bar >> np.uint64(32)).astype(np.float64) / 4294967296.0
    u_low = (per_bar & np.uint64(0xFFFFFFFF)).astype(np.float64) / 4294967296.0
    at_high = 1 + (u_high * (n - 2)).astype(np.int64)  # in 1..n-2
    at_low = 1 + (u_low * (n - 3)).astype(np.int64)
    at_low += at_low >= at_high  # in 1..n-2, distinct from at_high
    high_first = at_high < at_low
    v1 = np.where(high_first, bars.high, bars.low)[owner]
    v2 = np.where(high_first, bars.low, bars.high)[owner]
    k1 = np.minimum(at_high, at_low)[owner]
    k2 = np.maximum(at_high, at_low)[owner]
    leg1, leg3 = index <= k1, index > k2
    frac = np.where(
        leg1,
        index / k1,
        np.where(leg3, (index - k2) / (n[owner] - 1 - k2), (index - k1) / (k2 - k1)),
    )
    v_from = np.where(leg1, bars.open[owner], np.where(leg3, v2, v1))
    v_to = np.where(leg1, v1, np.where(leg3, bars.close[owner], v2))
    noise = (_uniform12(per_tick, 0) - 0.5) * 0.5 * (bars.high - bars.low)[owner]
    price: F64 = np.round(v_from + frac * (v_to - v_from) + noise, digits)
    np.clip(price, bars.low[owner], bars.high[owner], out=price)
    starts = layout.starts
    price[starts] = bars.open
    price[starts + at_high] = bars.high
    price[starts + at_low] = bars.low
    price[starts + n - 1] = bars.close
    return price


def _spread_extras(
    layout: _TickLayout, context: _MinuteContext, bar_spread: I64, repeated: Bools, raw: U64
) -> I64:
    """Points each tick's spread exceeds its bar's (floating spreads).

    The minimum (the bar spread) must occur, and a tick whose chart price repeats its
    predecessor's must change its spread, else bid and ask would both repeat (a tick that changes
    nothing). So: the close tick of every minute is +1; the first tick is +0 (the minimum) unless
    that would repeat the previous close tick's spread, then +1 and the second tick is +0; the
    ticks in between walk 0..2, stepping on within runs of a repeated price.
    """
    owner, index = layout.owner, layout.index
    first_extra = (~context.session_start & (bar_spread == context.prev_spread + 1)).astype(
        np.int64
    )[owner]
    is_first = index == 0
    fixed = is_first | layout.is_last | ((index == 1) & (first_extra == 1))
    fixed_value = np.where(is_first, first_extra, layout.is_last.astype(np.int64))
    run_start = fixed | ~repeated
    fresh = (((raw >> np.uint64(48)) & np.uint64(0xFF)) % np.uint64(3)).astype(np.int64)
    step = 1 + ((raw >> np.uint64(56)) & np.uint64(1)).astype(np.int64)
    walked = np.cumsum(np.where(run_start, 0, step))
    heads = np.flatnonzero(run_start)
    run = np.cumsum(run_start) - 1
    head_value = np.where(fixed, fixed_value, fresh)[heads]
    extra: I64 = (head_value[run] + walked - walked[heads][run]) % 3
    # The tick before a close tick must not repeat its +1 when the price repeats too.
    penultimate = layout.starts + layout.counts - 2
    clash = repeated[penultimate + 1] & (extra[penultimate] == 1)
    avoid_zero = repeated[penultimate] & (extra[penultimate - 1] == 0)
    extra[penultimate[clash]] = np.where(avoid_zero, 2, 0)[clash]
    return extra


def _trade_flags(layout: _TickLayout, price: F64, prev_price: F64, opening: Bools, raw: U64) -> I64:
    """LAST/VOLUME/BUY/SELL bits of exchange ticks (0 for quote-only ticks).

    A change of the last price is a trade; so is every close tick and session opening, and a
    share of the ticks at an unchanged price. Up-ticks buy, down-ticks sell, the rest either.
    """
    moved = price != prev_price
    trade = moved | layout.is_last | opening | (_uniform12(raw, 1) < _SAME_PRICE_TRADES)
    buy = (price > prev_price) | (~moved & (_uniform12(raw, 2) < 0.5)) | opening
    side = np.where(buy, c.TICK_FLAG_BUY, c.TICK_FLAG_SELL)
    result: I64 = trade * (c.TICK_FLAG_VOLUME + c.TICK_FLAG_LAST * moved + side)
    return result


def _finish_flags(flags: I64, opening: Bools, raw: U64, *, has_last: bool) -> I64:
    """Session openings carry every bit of a first quote plus 0x80; some bid ticks 0x80 too."""
    # Only a fixed spread leaves repeated prices unchanged; such ticks re-quote both sides.
    flags[flags == 0] = _INFO_FLAGS
    marked = ((flags & c.TICK_FLAG_BID) != 0) & ((raw >> np.uint64(58)) == 0)
    opening_flags = _INFO_FLAGS | _TICK_FLAG_X80
    if has_last:
        opening_flags |= _TRADE_FLAGS | c.TICK_FLAG_BUY
    result: I64 = np.where(opening, opening_flags, flags | marked * _TICK_FLAG_X80)
    return result


def _split_volume(layout: _TickLayout, trade: Bools, bar_volume: I64, raw: U64) -> I64:
    """Share each bar's real volume among its trade ticks: >= 1 each, summing exactly."""
    volume = np.zeros(layout.total, dtype=np.int64)
    where = np.flatnonzero(trade)
    bar = layout.owner[where]
    cum = np.cumsum(_uniform12(raw[where], 3) + 0.05)
    is_head = np.concatenate(([True], bar[1:] != bar[:-1]))
    heads = np.flatnonzero(is_head)
    tails = np.concatenate((heads[1:], [len(where)])) - 1
    run = np.cumsum(is_head) - 1
    before = np.where(heads > 0, cum[heads - 1], 0.0)
    # The tail's share is exactly 1.0 (same numerator and denominator), so the sum is exact.
    share = (cum - before[run]) / (cum[tails] - before)[run]
    spare = bar_volume[bar] - (tails - heads + 1)[run]
    upto = (share * spare).astype(np.int64)
    prior = np.empty_like(upto)
    prior[1:] = upto[:-1]
    prior[heads] = 0
    volume[where] = upto - prior + 1
    return volume


def _aggregate(parts: list[_Bars], timeframe: int) -> _Bars:
    """``timeframe`` bars of M1 parts: each part aggregated, then periods across parts merged."""
    merged = _Bars.concat([part.aggregate(period_start(timeframe, part.time)) for part in parts])
    return merged.aggregate(merged.time)


def _rows(parts: list[_Bars], lo: int, hi: int) -> list[_Bars]:
    """Rows ``[lo, hi)`` of a bar series given in parts, as views."""
    rows, offset = [], 0
    for part in parts:
        first, end = max(lo - offset, 0), min(hi - offset, len(part))
        if first < end:
            rows.append(part if end - first == len(part) else part.slice(first, end))
        offset += len(part)
    return rows


def _pack(parts: list[_Bars]) -> Packed:
    """Parts of a bar series packed into one new ``RATES_DTYPE`` array without concatenating:
    what ``rates_*`` return, an array the caller owns (never a view of a cache)."""
    out = np.empty(sum(len(p) for p in parts), dtype=RATES_DTYPE)
    position = 0
    for part in parts:
        part.pack_into(out[position : position + len(part)])
        position += len(part)
    return out


# =============================================================================== the model
class MarketModel:
    """The deterministic market of one instrument.

    Args:
        spec: The instrument (digits, spread, trading hours, price-process parameters).
        seed: The simulation seed; with ``spec.name`` it fixes every price.
        history_start: Epoch seconds before which there is no data (``None``: 2000-01-03 for
            instruments with sessions, 2017-01-01 for 24/7 ones). The first bar is the first
            open minute at or after it.
        history_cache: Where recently used complete M1 bars are kept (``None``: a cache of its
            own with the default budget, ``HISTORY_CACHE_BYTES``). A terminal passes one cache
            to all its markets. It changes speed only, never a value.

    Bars and ticks are returned as new arrays the caller owns, never views of a cache.

    Raises:
        ValueError: The spec never trades, or has a non-positive base price or volatility, or
            ``history_start`` lies outside 1970..2149.
    """

    def __init__(
        self,
        spec: SymbolSpec,
        seed: int,
        *,
        history_start: int | None = None,
        history_cache: HistoryCache | None = None,
    ) -> None:
        week_open = spec.hours.week_mask
        if not week_open.any():
            msg = f"{spec.name}: its trading hours have no session; give it at least one"
            raise ValueError(msg)
        if not (spec.base_price > 0 and spec.volatility > 0 and spec.ticks_per_minute > 0):
            msg = (
                f"{spec.name}: base_price, volatility and ticks_per_minute must be > 0, got "
                f"{spec.base_price}, {spec.volatility}, {spec.ticks_per_minute}"
            )
            raise ValueError(msg)
        self.spec: Final = spec
        self.seed: Final = seed
        self._digits = spec.digits
        self._point = spec.point
        self._bar_key = _key(seed, spec.name, "bars")
        self._tick_key = _key(seed, spec.name, "ticks")
        self._anchor_key = _key(seed, spec.name, "anchors")

        # Per-minute variance weights over the week (Sunday 00:00 first): open minutes follow
        # the activity profile, normalised to mean 1 over the open minutes; closed ones are low.
        profile = _activity_profile(np.arange(MINUTES_PER_WEEK, dtype=np.int64) % _DAY_MIN)
        profile /= profile[week_open].mean()
        weights = np.where(week_open, profile, _CLOSED_WEIGHT)
        self._open7: Bools = week_open.reshape(7, _DAY_MIN)
        self._day_open: Bools = self._open7.sum(axis=1) > 0
        activity7 = profile.reshape(7, _DAY_MIN)
        weights7 = weights.reshape(7, _DAY_MIN)
        day_weight = weights7.mean(axis=1)
        # Trading time: each weekday advances it by its weight; a year holds `units_per_year`.
        self._week_weight = float(day_weight.sum())
        self._day_prefix: F64 = np.concatenate(([0.0], np.cumsum(day_weight)))
        units_per_year = self._week_weight * 365.2425 / 7
        self._var_per_unit = spec.volatility**2 / units_per_year
        minute_var = self._var_per_unit * weights7 / _DAY_MIN
        self._minute_sd7: F64 = np.sqrt(minute_var)
        # Per weekday and minute: excursion scale, mean ticks, mean spread (wider when quiet).
        self._reach7: F64 = self._minute_sd7 * _EXCURSION
        self._ticks7: F64 = spec.ticks_per_minute * activity7
        self._spread7: F64 = spec.spread * activity7**-0.25
        cumulative = np.cumsum(minute_var, axis=1)
        self._bridge7: F64 = cumulative / cumulative[:, -1:]
        self._log_base = math.log(spec.base_price)
        self._open_fraction = float(week_open.mean())

        if history_start is None:
            history_start = HISTORY_START_24_7 if week_open.all() else HISTORY_START_DEFAULT
        if not 0 <= history_start < _LAST_DAY * _DAY_S:
            msg = f"history_start must be epoch seconds in 1970..2149, got {history_start}"
            raise ValueError(msg)
        first = -(-history_start // 60)
        shift = int(minute_of_week(np.array([first], dtype=np.int64))[0])
        self._start_min = first + int(np.flatnonzero(np.roll(week_open, -shift))[0])
        self.history_start: Final = self._start_min * 60
        """Epoch seconds of the first M1 bar."""

        self._history = history_cache if history_cache is not None else HistoryCache()
        self._history_owner = self._history.new_owner()
        # Bytes of a chunk of complete M1 bars (on average over the week), to size requests.
        self._chunk_bytes = _CACHE_CHUNK_DAYS * _DAY_MIN * self._open_fraction * _BAR_BYTES
        self._tick_cache: _LRU[int, _DayTicks] = _LRU(_TICK_CACHE_DAYS)
        self._daily_cache: _LRU[int, _Bars] = _LRU(_DAILY_CACHE_BLOCKS)

    # ------------------------------------------------------------------ trading hours
    def is_open(self, epoch_s: int) -> bool:
        """Whether the instrument trades during the minute containing ``epoch_s``."""
        return self._minute_open(epoch_s // 60)

    def opens_at(self, epoch: float) -> float | None:
        """The first instant at or after ``epoch`` when the market is open (None: never)."""
        return self.spec.hours.opens_at(epoch)

    # Where the market comes from (a subclass serving a recording overrides these three and
    # ``_m1_parts``): which minutes and days trade, and how many ticks make each M1 bar.
    def _minute_open(self, minute: int) -> bool:
        return bool(self._open7.flat[self._week_minute(minute)])

    def _day_trades(self, day: int) -> bool:
        return bool(self._day_open[(day + _EPOCH_WEEKDAY) % 7])

    def _tick_counts(self, bars: _Bars) -> I64:
        return bars.tick_volume

    @staticmethod
    def _week_minute(minute: int) -> int:
        return (minute + _EPOCH_WEEKDAY * _DAY_MIN) % MINUTES_PER_WEEK

    def _weekdays(self, days: I64) -> I64:
        result: I64 = (days + _EPOCH_WEEKDAY) % 7
        return result

    def _trading_days(self, first: int, last: int) -> I64:
        """Epoch days in ``[first, last]`` (clipped to the history) with open minutes."""
        first = max(first, self._start_min // _DAY_MIN)
        _check_day(last)
        days = np.arange(first, last + 1, dtype=np.int64)
        result: I64 = days[self._day_open[self._weekdays(days)]]
        return result

    # ------------------------------------------------------------------ day anchors
    def _trading_time(self, days: I64) -> F64:
        """Trading time elapsed from epoch day 0 to the start of each day."""
        weeks, weekday = np.divmod(days + _EPOCH_WEEKDAY, 7)
        result: F64 = (
            weeks * self._week_weight + self._day_prefix[weekday] - self._day_prefix[_EPOCH_WEEKDAY]
        )
        return result

    def _anchors(self, days: I64) -> F64:
        """Log price at 00:00 of each day: a capped random-midpoint Brownian tree."""
        lo = np.zeros_like(days)
        hi = np.full_like(days, 1 << _TREE_LEVELS)
        v_lo = np.full(days.shape, self._log_base)
        v_hi = v_lo.copy()
        t_lo, t_hi = self._trading_time(lo), self._trading_time(hi)
        for level in range(_TREE_LEVELS):
            mid = (lo + hi) >> 1
            t_mid = self._trading_time(mid)
            share = (t_mid - t_lo) / (t_hi - t_lo)
            sd = np.sqrt(self._var_per_unit * (t_mid - t_lo) * (t_hi - t_mid) / (t_hi - t_lo))
            noise = _hash_normals(self._anchor_key + level * 0x632BE59BD9B4E019, mid)
            v_mid = v_lo + share * (v_hi - v_lo) + np.minimum(sd, _LEVEL_SD_CAP) * noise
            right = days >= mid
            lo, hi = np.where(right, mid, lo), np.where(right, hi, mid)
            t_lo, t_hi = np.where(right, t_mid, t_lo), np.where(right, t_hi, t_mid)
            v_lo, v_hi = np.where(right, v_mid, v_lo), np.where(right, v_hi, v_mid)
        return v_lo

    # ------------------------------------------------------------------ complete M1 bars
    def _draws(self, days: I64) -> tuple[F64, U64]:
        """Each day's random numbers: 1440 normals (column 0 left free) and raw words.

        One Philox stream per day, addressed by its counter: random access, no shared state.
        """
        normals = np.empty((len(days), _DAY_MIN + 1))
        words = 2 if self.spec.has_last else 1  # 4 16-bit uniforms a word; 5 with trades
        raw = np.empty((len(days), _DAY_MIN, words), dtype=np.uint64)
        for row, day in enumerate(days.tolist()):
            bits = np.random.Philox(key=self._bar_key, counter=day << 64)
            np.random.Generator(bits).standard_normal(out=normals[row, 1:])
            raw[row] = bits.random_raw((_DAY_MIN, words))
        return normals, raw

    def _boundary_prices(self, days: I64, weekday: I64, normals: F64) -> F64:
        """Rounded prices at the 1441 minute boundaries of each day (in place of ``normals``).

        A Brownian bridge in variance time between the day's two anchors.
        """
        # One pass down the tree for both ends (its cost is mostly per call, not per day).
        a0, a1 = np.split(self._anchors(np.concatenate((days, days + 1))), 2)
        steps = normals[:, 1:]
        steps *= self._minute_sd7[weekday]
        np.cumsum(steps, axis=1, out=steps)
        steps += self._bridge7[weekday] * ((a1 - a0) - steps[:, -1])[:, None]
        steps += a0[:, None]
        normals[:, 0] = a0
        np.exp(normals, out=normals)
        prices = np.round(normals, self._digits)
        np.maximum(prices, self._point, out=prices)
        return prices

    def _generate_days(self, days: I64) -> tuple[_Bars, I64]:
        """Bars of all open minutes of ``days`` (sorted trading days) and the count per day."""
        weekday = self._weekdays(days)
        normals, raw = self._draws(days)
        prices = self._boundary_prices(days, weekday, normals)
        pick = _Selection(self._open7[weekday])
        opens, closes = pick(prices[:, :-1]), pick(prices[:, 1:])
        # 16-bit uniforms: high and low excursions, tick count, spread, trade size.
        uniforms = raw.view(np.uint16).reshape(len(days), _DAY_MIN, -1)

        def uniform(field: int) -> F64:
            result = pick(uniforms[..., field]).astype(np.float64)
            result += 0.5
            result *= 1.0 / 65536.0
            return result

        # Excursions beyond the body scale with the minute's price volatility.
        reach = opens * pick(self._reach7[weekday])
        body_high, body_low = np.maximum(opens, closes), np.minimum(opens, closes)
        u = uniform(0)
        high = np.maximum(np.round(body_high + u * u * reach, self._digits), body_high)
        u = uniform(1)
        low = np.minimum(np.round(body_low - u * u * reach, self._digits), body_low)
        np.maximum(low, self._point, out=low)

        spec = self.spec
        # At least 4 ticks, so that open, high, low and close can each be a tick.
        tick_volume = np.rint(pick(self._ticks7[weekday]) * (0.55 + 0.9 * uniform(2)))
        tick_volume = np.maximum(tick_volume, 4).astype(np.int64)
        if spec.spread_float:
            spread = np.rint(pick(self._spread7[weekday]) * (0.8 + 0.4 * uniform(3)))
            spread = np.maximum(spread, min(spec.spread, 1)).astype(np.int64)
        else:
            spread = np.full(len(opens), spec.spread, dtype=np.int64)
        if spec.has_last:
            lot = 1 + (60.0 * uniform(4) ** 2).astype(np.int64)
            real_volume = tick_volume * lot  # >= ticks, so every trade tick gets at least 1
        else:
            real_volume = np.zeros(len(opens), dtype=np.int64)
        seconds = pick(days[:, None] * _DAY_S + np.arange(0, _DAY_S, 60))
        bars = _Bars(seconds, opens, high, low, closes, tick_volume, spread, real_volume)
        return bars, pick.counts

    def _m1_parts(
        self, first_minute: int, last_minute: int, *, keep: bool = True
    ) -> Iterator[_Bars]:
        """Complete M1 bars of the open minutes in ``[first_minute, last_minute]``, in parts.

        Chunks of days come from the history cache where it has them. The missing ones are
        generated in batches of days (bounding the working memory of long ranges) and, with
        ``keep``, whole and into the cache, unless the range could not fit in it at all: an LRU
        cannot hold such a range, and keeping it would only evict everything else.
        """
        first_minute = max(first_minute, self._start_min)
        if last_minute < first_minute:
            return
        first_day, last_day = first_minute // _DAY_MIN, last_minute // _DAY_MIN
        _check_day(last_day)
        chunks = range(first_day // _CACHE_CHUNK_DAYS, last_day // _CACHE_CHUNK_DAYS + 1)
        keep = keep and len(chunks) * self._chunk_bytes <= self._history.max_bytes
        first_s, last_s = first_minute * 60, last_minute * 60
        missing: list[int] = []  # a run of chunks not in the cache, generated together
        for chunk in chunks:
            cached = self._history.get((self._history_owner, chunk))
            if cached is None:
                missing.append(chunk)
                if len(missing) * _CACHE_CHUNK_DAYS < _BATCH_DAYS:
                    continue
            for bars in self._generate_chunks(missing, first_day, last_day, keep=keep):
                yield bars.between(first_s, last_s)
            missing = []
            if cached is not None:
                yield cached.between(first_s, last_s)
        for bars in self._generate_chunks(missing, first_day, last_day, keep=keep):
            yield bars.between(first_s, last_s)

    def _generate_chunks(
        self, chunks: list[int], first_day: int, last_day: int, *, keep: bool
    ) -> Iterator[_Bars]:
        """Bars of consecutive ``chunks``: whole and cached with ``keep``, else only the days of
        ``[first_day, last_day]``, in one part."""
        if not chunks:
            return
        lo_day, hi_day = chunks[0] * _CACHE_CHUNK_DAYS, (chunks[-1] + 1) * _CACHE_CHUNK_DAYS - 1
        if not keep:
            lo_day, hi_day = max(lo_day, first_day), min(hi_day, last_day)
        days = self._trading_days(lo_day, min(hi_day, _LAST_DAY))
        if not len(days):
            return
        bars = self._generate_days(days)[0]
        if not keep:
            yield bars
            return
        starts = np.array([chunk * _CACHE_CHUNK_DAYS * _DAY_S for chunk in chunks])
        bounds = np.append(np.searchsorted(bars.time, starts), len(bars)).tolist()
        for chunk, lo, hi in zip(chunks, bounds[:-1], bounds[1:], strict=True):
            # Copies, so a cached chunk holds its own bytes, not a view pinning the whole batch.
            part = bars.slice(lo, hi).copy()
            if len(part):
                self._history.put((self._history_owner, chunk), part)
                yield part

    def _m1(self, first_minute: int, last_minute: int) -> _Bars:
        """Complete M1 bars of the open minutes in ``[first_minute, last_minute]``."""
        return _Bars.concat(list(self._m1_parts(first_minute, last_minute)))

    def m1(self, first_minute: int, last_minute: int) -> Packed:
        """Complete M1 bars (``RATES_DTYPE``) of the open minutes in ``[first, last]``.

        Minutes are epoch minutes; closed minutes have no bar; oldest first. The result does not
        depend on the clock: callers ask only for minutes that are over.
        """
        return _pack(list(self._m1_parts(first_minute, last_minute)))

    # ------------------------------------------------------------------ ticks
    def _day_ticks(self, day: int) -> _DayTicks:
        cached = self._tick_cache.get(day)
        if cached is None:
            cached = self._generate_ticks(day)
            self._tick_cache.put(day, cached)
        return cached

    def _generate_ticks(self, day: int) -> _DayTicks:
        """All ticks of one day, drawn to fit the day's M1 bars exactly."""
        bars = self._m1(day * _DAY_MIN, day * _DAY_MIN + _DAY_MIN - 1)
        if not len(bars):
            none = np.empty(0, dtype=np.int64)
            return _DayTicks(np.empty(0, dtype=TICKS_DTYPE), none, np.empty(0), none, none)
        layout = _TickLayout.of(self._tick_counts(bars))
        previous = self._m1(int(bars.time[0]) // 60 - 1, int(bars.time[0]) // 60 - 1)
        context = _MinuteContext.of(bars, previous)

        bits = np.random.Philox(key=self._tick_key, counter=day << 64)
        gaps = np.random.Generator(bits).standard_exponential(layout.total + len(bars))
        per_bar = bits.random_raw(len(bars))
        per_tick = bits.random_raw(layout.total)

        time_msc = _tick_times(layout, bars.time // 60, gaps)
        price = _tick_prices(layout, bars, per_bar, per_tick, self._digits)
        prev_price = layout.shift(price, context.prev_close)
        repeated = price == prev_price
        if self.spec.spread_float:
            extra = _spread_extras(layout, context, bars.spread, repeated, per_tick)
            close_extra = 1
        else:
            extra, close_extra = np.zeros(layout.total, dtype=np.int64), 0
        spread = bars.spread[layout.owner] + extra
        prev_spread = layout.shift(spread, context.prev_spread + close_extra)
        bid, ask, last = self._quotes(price, spread)
        prev_bid, prev_ask, _ = self._quotes(prev_price, prev_spread)

        flags = c.TICK_FLAG_BID * (bid != prev_bid) + c.TICK_FLAG_ASK * (ask != prev_ask)
        opening = np.zeros(layout.total, dtype=np.bool_)
        opening[layout.starts[context.session_start]] = True
        if self.spec.has_last:
            trade_flags = _trade_flags(layout, price, prev_price, opening, per_tick)
            flags += trade_flags
            volume = _split_volume(layout, trade_flags != 0, bars.real_volume, per_tick)
        else:
            volume = np.zeros(layout.total, dtype=np.int64)
        flags = _finish_flags(flags, opening, per_tick, has_last=self.spec.has_last)

        ticks = np.empty(layout.total, dtype=TICKS_DTYPE)
        for name, values in (
            ("time", time_msc // 1000), ("bid", bid), ("ask", ask), ("last", last),
            ("volume", volume), ("time_msc", time_msc), ("flags", flags), ("volume_real", volume),
        ):  # fmt: skip
            ticks[name] = values
        return _DayTicks(ticks, time_msc, price, spread, volume)

    def _quotes(self, price: F64, spread: I64) -> tuple[F64, F64, F64]:
        """(bid, ask, last) for chart prices: bid-based, or last-based with bid below last."""
        if self.spec.has_last:
            half: F64 = np.multiply(spread // 2, self._point, dtype=np.float64)
            bid: F64 = np.round(price - half, self._digits)
            last = price
        else:
            bid, last = price, np.zeros(len(price))
        width: F64 = np.multiply(spread, self._point, dtype=np.float64)
        ask: F64 = np.round(bid + width, self._digits)
        return bid, ask, last

    def _ticks_between(self, from_msc: int, to_msc: int, limit: int | None, flags: int) -> Packed:
        """Ticks with ``from_msc <= time_msc <= to_msc`` passing ``flags``, at most ``limit``."""
        mask = _copy_mask(flags)
        from_msc = max(from_msc, self.history_start * 1000)
        if to_msc < from_msc:
            return np.empty(0, dtype=TICKS_DTYPE)
        parts: list[Packed] = []
        wanted = limit
        for day in self._trading_days(from_msc // _DAY_MS, to_msc // _DAY_MS).tolist():
            day_ticks = self._day_ticks(day)
            lo = int(np.searchsorted(day_ticks.time_msc, from_msc, "left"))
            hi = int(np.searchsorted(day_ticks.time_msc, to_msc, "right"))
            chunk = day_ticks.ticks[lo:hi]
            if mask is not None:
                chunk = chunk[(chunk["flags"] & mask) != 0]
            if wanted is not None:
                chunk = chunk[:wanted]
                wanted -= len(chunk)
            parts.append(chunk)
            if wanted == 0:
                break
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0, dtype=TICKS_DTYPE)

    def ticks_range(self, from_msc: int, to_msc: int, now_msc: int, flags: int) -> Packed:
        """Ticks (``TICKS_DTYPE``) with ``from_msc <= time_msc <= min(to_msc, now_msc)``.

        Args:
            from_msc: Start, epoch milliseconds.
            to_msc: End (inclusive), epoch milliseconds.
            now_msc: The terminal's "now"; later ticks do not exist yet.
            flags: ``COPY_TICKS_ALL``, ``COPY_TICKS_INFO`` (bid/ask changes) or
                ``COPY_TICKS_TRADE`` (last/volume changes; none for instruments without
                trades).

        Raises:
            ValueError: ``flags`` is not one of the three ``COPY_TICKS_*`` values.
        """
        return self._ticks_between(from_msc, min(to_msc, now_msc), None, flags)

    def ticks_from(self, from_msc: int, count: int, now_msc: int, flags: int) -> Packed:
        """Up to ``count`` ticks with ``from_msc <= time_msc <= now_msc``, oldest first.

        Raises:
            ValueError: ``count`` is negative, or ``flags`` is not a ``COPY_TICKS_*`` value.
        """
        if count < 0:
            msg = f"count must be >= 0, got {count}"
            raise ValueError(msg)
        if count == 0:
            _copy_mask(flags)
            return np.empty(0, dtype=TICKS_DTYPE)
        return self._ticks_between(from_msc, now_msc, count, flags)

    def last_tick(
        self, now_msc: int
    ) -> tuple[int, float, float, float, int, int, int, float] | None:
        """The latest tick at or before ``now_msc`` as a plain tuple in ``Tick`` field order.

        Closed periods (a weekend) are searched back over; None before the first tick of the
        history.
        """
        day = now_msc // _DAY_MS
        oldest = self.history_start // _DAY_S
        while day >= oldest:
            if self._day_trades(day):
                day_ticks = self._day_ticks(day)
                k = int(np.searchsorted(day_ticks.time_msc, now_msc, "right"))
                if k:
                    row = day_ticks.ticks[k - 1].item()
                    return (
                        int(row[0]), float(row[1]), float(row[2]), float(row[3]),
                        int(row[4]), int(row[5]), int(row[6]), float(row[7]),
                    )  # fmt: skip
            day -= 1
        return None

    # ------------------------------------------------------------------ bars up to "now"
    def _forming_m1(self, now_msc: int) -> _Bars:
        """The M1 bar of the minute containing ``now_msc``, from its ticks so far (maybe none)."""
        minute = now_msc // _MINUTE_MS
        if minute < self._start_min or not self._minute_open(minute):
            return _Bars.empty()
        day_ticks = self._day_ticks(minute // _DAY_MIN)
        lo = int(np.searchsorted(day_ticks.time_msc, minute * _MINUTE_MS, "left"))
        hi = int(np.searchsorted(day_ticks.time_msc, now_msc, "right"))
        return day_ticks.bar(lo, hi) if hi > lo else _Bars.empty()

    def _bars(self, timeframe: int, first_s: int, end_s: int, now_msc: int) -> list[_Bars]:
        """Bars of the periods starting in ``[first_s, end_s)`` (period bounds) as of now, in
        parts that may be views of cached bars (pack them, never hand them out).

        Complete M1 bars, then the forming one if the current minute is in range and has ticks;
        higher timeframes aggregate each part, then merge the periods that straddle parts
        (aggregation is associative). D1, W1 and MN1 start from cached daily bars.
        """
        if timeframe in _DAILY_TIMEFRAMES:
            daily = self._daily_bars(first_s // _DAY_S, end_s // _DAY_S, now_msc)
            return [daily.aggregate(period_start(timeframe, daily.time))]
        parts = self._live_m1(first_s // 60, end_s // 60, now_msc)
        if timeframe == c.TIMEFRAME_M1:
            return parts
        return [_aggregate(parts, timeframe)]

    def _live_m1(self, first_minute: int, end_minute: int, now_msc: int) -> list[_Bars]:
        """M1 bars of minutes ``[first, end)`` as of now, in parts: the complete ones, then the
        forming one if the current minute is in range and has ticks."""
        now_minute = now_msc // _MINUTE_MS
        parts = list(self._m1_parts(first_minute, min(end_minute, now_minute) - 1))
        if first_minute <= now_minute < end_minute:
            parts.append(self._forming_m1(now_msc))
        return parts

    def _daily_bars(self, first_day: int, end_day: int, now_msc: int) -> _Bars:
        """D1 bars of days ``[first, end)`` as of now: cached for days that are over."""
        today = now_msc // _DAY_MS
        last_day = min(end_day, today) - 1  # the last day that is over
        blocks = range(first_day // _DAILY_BLOCK_DAYS, last_day // _DAILY_BLOCK_DAYS + 1)
        past = _Bars.concat([self._daily_block(block) for block in blocks])
        past = past.between(first_day * _DAY_S, last_day * _DAY_S)
        if not first_day <= today < end_day:
            return past
        live = _aggregate(
            self._live_m1(today * _DAY_MIN, (today + 1) * _DAY_MIN, now_msc), c.TIMEFRAME_D1
        )
        return _Bars.concat([past, live])

    def _daily_block(self, block: int) -> _Bars:
        bars = self._daily_cache.get(block)
        if bars is None:
            first = block * _DAILY_BLOCK_DAYS * _DAY_MIN
            last = first + _DAILY_BLOCK_DAYS * _DAY_MIN - 1
            # Once aggregated, these M1 bars are rarely needed again: keep them out of the
            # history cache (it is still read), so decades of daily bars do not flush it.
            bars = _aggregate(list(self._m1_parts(first, last, keep=False)), c.TIMEFRAME_D1)
            self._daily_cache.put(block, bars)
        return bars

    def rates_range(self, timeframe: int, date_from: int, date_to: int, now_msc: int) -> Packed:
        """Bars with ``date_from <= open time <= date_to`` (epoch seconds) that exist at now.

        The bar containing "now" is built from the ticks so far (its close is the current
        price); later bars do not exist yet.

        Raises:
            ValueError: ``timeframe`` is not a MetaTrader5 ``TIMEFRAME_*`` value.
        """
        _check_timeframe(timeframe)
        upto = min(date_to, now_msc // 1000)
        if upto < date_from:
            return _pack([])
        first = _floor(timeframe, date_from)
        if first < date_from:
            first = _next(timeframe, first)
        last = _floor(timeframe, upto)
        if last < first:
            return _pack([])
        return _pack(self._bars(timeframe, first, _next(timeframe, last), now_msc))

    def _latest(self, timeframe: int, until_s: int, count: int, now_msc: int) -> list[_Bars]:
        """The ``count`` latest bars with open time <= ``until_s`` (fewer at the history start),
        in parts as ``_bars`` gives them."""
        _check_timeframe(timeframe)
        if count < 0:
            msg = f"count must be >= 0, got {count}"
            raise ValueError(msg)
        until_s = min(until_s, now_msc // 1000)
        if count == 0 or until_s < self.history_start:
            return []
        end = _next(timeframe, _floor(timeframe, until_s))
        oldest = _floor(timeframe, self.history_start)
        # Guess the span holding `count` bars from the open share of the week, then widen.
        span = int(count * nominal_seconds(timeframe) / self._open_fraction * 1.1) + 4 * _DAY_S
        while True:
            start = max(_floor(timeframe, end - span), oldest)
            parts = self._bars(timeframe, start, end, now_msc)
            total = sum(len(part) for part in parts)
            if total >= count or start == oldest:
                return _rows(parts, max(0, total - count), total)
            span *= 2

    def rates_from(self, timeframe: int, date_from: int, count: int, now_msc: int) -> Packed:
        """The ``count`` most recent bars with open time <= ``date_from``, oldest first.

        Raises:
            ValueError: ``timeframe`` is not a ``TIMEFRAME_*`` value or ``count`` < 0.
        """
        return _pack(self._latest(timeframe, date_from, count, now_msc))

    def rates_from_pos(self, timeframe: int, start_pos: int, count: int, now_msc: int) -> Packed:
        """``count`` bars from position ``start_pos`` into the past, oldest first.

        Position 0 is the latest bar at now: the forming bar while the market trades, the
        last complete one while it is closed.

        Raises:
            ValueError: ``timeframe`` is not a ``TIMEFRAME_*`` value, or ``start_pos`` or
                ``count`` is negative.
        """
        if start_pos < 0 or count < 0:
            msg = f"start_pos and count must be >= 0, got {start_pos} and {count}"
            raise ValueError(msg)
        parts = self._latest(timeframe, now_msc // 1000, start_pos + count, now_msc)
        return _pack(_rows(parts, 0, sum(len(part) for part in parts) - start_pos))


def _copy_mask(flags: int) -> int | None:
    """The per-tick flag bits a ``COPY_TICKS_*`` value selects (None: every tick)."""
    if flags == c.COPY_TICKS_ALL:
        return None
    if flags == c.COPY_TICKS_INFO:
        return _INFO_FLAGS
    if flags == c.COPY_TICKS_TRADE:
        return _TRADE_FLAGS
    msg = (
        f"unknown tick copy flags {flags!r}: pass COPY_TICKS_ALL (-1), COPY_TICKS_INFO (1) "
        "or COPY_TICKS_TRADE (2)"
    )
    raise ValueError(msg)
