"""Data verifier: what is wrong with a bar series, as a frozen report; and stored-vs-fresh diffs.

``verify_rates`` checks MT5 rates arrays for

* **gaps**: bar periods missing between two bars while the market was open. Openness comes
  from a ``TradingSessions`` calendar (weekly sessions in the server's clock). MetaTrader5's
  Python API does not expose a symbol's sessions, so the caller passes them when known (the
  simulator's are ``TradingSessions.from_hours(spec.hours)``); the default,
  ``TradingSessions.weekdays()``, is "Monday to Friday, all day": weekends are never gaps.
  Quiet instruments can lack a bar in an open period (no tick, no bar); ``gap_tolerance``
  ignores gaps of up to that many missing bars. Leading and trailing gaps are not judged.
  MN1 has no weekly calendar: a missing month counts when its month is absent.
* **duplicates** (an open time seen more than once), **non-monotonic** time (a bar older than
  the one before it), **misaligned** open times (not on a period boundary);
* **OHLC inconsistencies**: ``high < max(open, close)``, ``low > min(open, close)``,
  ``high < low``; **bad prices**: zero, negative or not finite;
* **spread outliers**: negative spreads, or spreads above ``spread_factor`` times the series'
  median spread (a robust yardstick; skipped when the median is 0).

Each check lists at most ``limit`` examples and counts them all. ``compare_rates`` diffs a stored
series with a fresh download over the span both cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from aiomt5._core._errors import MT5InvalidArgumentError

from ._timeframe import Timeframe, TimeframeLike

__all__ = [
    "BarIssue",
    "Check",
    "ComparisonReport",
    "Gap",
    "TradingSessions",
    "VerificationReport",
    "compare_rates",
    "verify_rates",
]

_WEEK_MINUTES: Final = 7 * 1440
_WEEK_SECONDS: Final = 7 * 86400
# 1970-01-04 00:00 UTC, a Sunday: MT5 weeks (and so W1 bars) start on Sunday.
_SUNDAY: Final = 3 * 86400
_PRICES: Final = ("open", "high", "low", "close")
_COMPARED: Final = ("open", "high", "low", "close", "tick_volume", "spread", "real_volume")


class _HasSessions(Protocol):
    @property
    def sessions(self) -> tuple[tuple[int, int, int], ...]: ...


@dataclass(frozen=True, slots=True)
class TradingSessions:
    """When a market is open each week, in the server's clock (the clock of the bar times).

    Attributes:
        sessions: ``(day_of_week, start_minute, end_minute)`` with MT5's day numbers
            (0 = Sunday), minutes from that day's midnight, end exclusive (up to 1440).
    """

    sessions: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        for session in self.sessions:
            day, start, end = session
            if not (0 <= day <= 6 and 0 <= start < end <= 1440):
                raise MT5InvalidArgumentError(
                    f"bad session {session!r}: want (day 0-6 with 0 = Sunday, start, end) "
                    "with 0 <= start < end <= 1440 minutes"
                )

    @classmethod
    def weekdays(cls) -> TradingSessions:
        """Monday to Friday, all day (the default: weekends closed)."""
        return cls(tuple((day, 0, 1440) for day in range(1, 6)))

    @classmethod
    def always(cls) -> TradingSessions:
        """Every minute of the week (crypto)."""
        return cls(tuple((day, 0, 1440) for day in range(7)))

    @classmethod
    def from_hours(cls, hours: _HasSessions) -> TradingSessions:
        """From anything with a ``sessions`` tuple, e.g. ``aiomt5.sim.SymbolSpec.hours``."""
        return cls(tuple((int(d), int(s), int(e)) for d, s, e in hours.sessions))

    def week_mask(self) -> npt.NDArray[np.bool_]:
        """Open or not, for each minute of the week (index 0 = Sunday 00:00)."""
        mask = np.zeros(_WEEK_MINUTES, dtype=np.bool_)
        for day, start, end in self.sessions:
            mask[day * 1440 + start : day * 1440 + end] = True
        return mask


@dataclass(frozen=True, slots=True)
class BarIssue:
    """One bad bar: its position in the array, its open time, and what is wrong."""

    index: int
    time: int
    detail: str


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check: how many bars failed it and the first few of them."""

    name: str
    count: int
    examples: tuple[BarIssue, ...] = ()


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars missing between two consecutive bars while the market was open.

    Attributes:
        after: Open time of the bar before the gap (epoch seconds).
        before: Open time of the bar after the gap.
        missing_bars: How many open periods have no bar.
    """

    after: int
    before: int
    missing_bars: int

    @property
    def start(self) -> datetime:
        """The gap starts after this bar (aware UTC)."""
        return datetime.fromtimestamp(self.after, UTC)

    @property
    def end(self) -> datetime:
        """The gap ends at this bar (aware UTC)."""
        return datetime.fromtimestamp(self.before, UTC)


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """What ``verify_rates`` found. ``ok`` when nothing at all."""

    timeframe: Timeframe
    bars: int
    first: int | None
    last: int | None
    gaps: tuple[Gap, ...]
    gap_count: int
    missing_bars: int
    duplicates: Check
    non_monotonic: Check
    misaligned: Check
    ohlc: Check
    prices: Check
    spreads: Check

    @property
    def checks(self) -> tuple[Check, ...]:
        """Every bar-level check, in report order."""
        return (
            self.duplicates,
            self.non_monotonic,
            self.misaligned,
            self.ohlc,
            self.prices,
            self.spreads,
        )

    @property
    def ok(self) -> bool:
        """True when no gap and no bad bar was found."""
        return self.gap_count == 0 and all(check.count == 0 for check in self.checks)

    def summary(self) -> str:
        """One line per finding, for logs and the CLI."""
        head = f"{self.bars} {self.timeframe.name} bars"
        if self.ok:
            return f"{head}: no problems found"
        lines = [f"{head}:"]
        if self.gap_count:
            lines.append(f"  gaps: {self.gap_count} ({self.missing_bars} missing bars)")
        lines.extend(f"  {c.name}: {c.count}" for c in self.checks if c.count)
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ComparisonReport:
    """How a stored series differs from a fresh download, over the span both cover.

    Attributes:
        overlap: (first, last) open times both series cover, or None if they do not overlap.
        matching: Bars equal in both.
        only_stored: Open times in the stored series only (the fresh one lacks them).
        only_fresh: Open times in the fresh series only (missing from the store).
        changed: Open times present in both with different values.
    """

    overlap: tuple[int, int] | None
    matching: int
    only_stored: tuple[int, ...]
    only_fresh: tuple[int, ...]
    changed: tuple[int, ...]

    @property
    def ok(self) -> bool:
        """True when the overlapping parts are identical."""
        return not (self.only_stored or self.only_fresh or self.changed)


# --------------------------------------------------------------------------- verify


def _rates(array: object, what: str) -> npt.NDArray[np.void]:
    names = getattr(getattr(array, "dtype", None), "names", None) or ()
    if not isinstance(array, np.ndarray) or not {"time", *_PRICES, "spread"} <= set(names):
        raise MT5InvalidArgumentError(
            f"{what} must be MetaTrader5's rates array (copy_rates_* / fetch_rates)"
        )
    return array


def _check(
    name: str, mask: npt.NDArray[np.bool_], times: npt.NDArray[Any], detail: Any, limit: int
) -> Check:
    where = np.flatnonzero(mask)
    examples = tuple(
        BarIssue(int(i), int(times[i]), detail(int(i)) if callable(detail) else detail)
        for i in where[:limit].tolist()
    )
    return Check(name, len(where), examples)


def _open_periods(timeframe: Timeframe, sessions: TradingSessions) -> npt.NDArray[np.bool_]:
    """Per period of the week (from Sunday 00:00): is any minute of it open."""
    minutes = timeframe.seconds // 60
    per_week = np.any(sessions.week_mask().reshape(-1, minutes), axis=1)
    return np.asarray(per_week, dtype=np.bool_)


def _missing_between(
    periods: npt.NDArray[np.int64], open_periods: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """Open periods strictly between consecutive period indexes."""
    size = len(open_periods)
    prefix = np.concatenate([[0], np.cumsum(open_periods, dtype=np.int64)])
    per_week = int(prefix[-1])

    def opened_before(k: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        result: npt.NDArray[np.int64] = (k // size) * per_week + prefix[k % size]
        return result

    missing: npt.NDArray[np.int64] = opened_before(periods[1:]) - opened_before(periods[:-1] + 1)
    return missing


def _month_index(times: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    months: npt.NDArray[np.int64] = (
        times.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    )
    return months


def _gaps(
    times: npt.NDArray[np.int64],
    timeframe: Timeframe,
    sessions: TradingSessions,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(missing bars after each bar, its sorted unique times) for the series."""
    unique = np.unique(times)
    if len(unique) < 2:
        return np.zeros(0, dtype=np.int64), unique
    if timeframe is Timeframe.MN1:
        months = _month_index(unique)
        missing: npt.NDArray[np.int64] = np.diff(months) - 1
        return missing, unique
    periods = (unique - _SUNDAY) // timeframe.seconds
    return _missing_between(periods, _open_periods(timeframe, sessions)), unique


def _aligned(times: npt.NDArray[np.int64], timeframe: Timeframe) -> npt.NDArray[np.bool_]:
    if timeframe is Timeframe.MN1:
        starts = times.astype("datetime64[s]").astype("datetime64[M]").astype("datetime64[s]")
        same: npt.NDArray[np.bool_] = starts.astype(np.int64) == times
        return same
    result: npt.NDArray[np.bool_] = (times - _SUNDAY) % timeframe.seconds == 0
    return result


def _count_like(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


def verify_rates(
    rates: npt.NDArray[np.void],
    timeframe: TimeframeLike,
    *,
    sessions: TradingSessions | None = None,
    gap_tolerance: int = 0,
    spread_factor: float = 10.0,
    limit: int = 100,
) -> VerificationReport:
    """Check a bar series; see the module docstring for every check.

    Args:
        rates: MetaTrader5's rates array.
        timeframe: The series' timeframe.
        sessions: The symbol's weekly sessions (default: Monday to Friday, all day).
        gap_tolerance: Gaps of at most this many missing bars are not reported.
        spread_factor: Spreads above this many times the median spread are outliers.
        limit: Most examples kept per check (all are counted).

    Raises:
        MT5InvalidArgumentError: ``rates`` is not a rates array, or bad options.
    """
    bars = _rates(rates, "rates")
    frame = Timeframe.parse(timeframe)
    calendar_ = sessions if sessions is not None else TradingSessions.weekdays()
    if not _count_like(gap_tolerance):
        raise MT5InvalidArgumentError(f"gap_tolerance must be an int >= 0, got {gap_tolerance!r}")
    if not spread_factor > 1:
        raise MT5InvalidArgumentError(f"spread_factor must be > 1, got {spread_factor!r}")
    times = bars["time"].astype(np.int64)
    missing, unique = _gaps(times, frame, calendar_)
    flagged = np.flatnonzero(missing > gap_tolerance)
    gaps = tuple(
        Gap(int(unique[i]), int(unique[i + 1]), int(missing[i])) for i in flagged[:limit].tolist()
    )
    return VerificationReport(
        timeframe=frame,
        bars=len(bars),
        first=int(times.min()) if len(times) else None,
        last=int(times.max()) if len(times) else None,
        gaps=gaps,
        gap_count=len(flagged),
        missing_bars=int(missing[flagged].sum()),
        duplicates=_duplicates(times, limit),
        non_monotonic=_check(
            "non_monotonic",
            np.concatenate([[False], times[1:] < times[:-1]]),
            times,
            lambda i: f"opens at {times[i]}, before the previous bar's {times[i - 1]}",
            limit,
        ),
        misaligned=_check(
            "misaligned",
            ~_aligned(times, frame),
            times,
            f"open time is not on a {frame.name} period boundary",
            limit,
        ),
        ohlc=_ohlc(bars, times, limit),
        prices=_prices(bars, times, limit),
        spreads=_spreads(bars, times, spread_factor, limit),
    )


def _duplicates(times: npt.NDArray[np.int64], limit: int) -> Check:
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    repeat = np.zeros(len(times), dtype=np.bool_)
    repeat[order[1:]] = ordered[1:] == ordered[:-1]  # every copy after the first
    return _check("duplicates", repeat, times, "open time already seen earlier", limit)


def _ohlc(bars: npt.NDArray[np.void], times: npt.NDArray[np.int64], limit: int) -> Check:
    o, h, low, c = (bars[name].astype(np.float64) for name in _PRICES)
    bad = (h < np.maximum(o, c)) | (low > np.minimum(o, c)) | (h < low)

    def detail(i: int) -> str:
        return f"open {o[i]} high {h[i]} low {low[i]} close {c[i]}"

    return _check("ohlc", bad, times, detail, limit)


def _prices(bars: npt.NDArray[np.void], times: npt.NDArray[np.int64], limit: int) -> Check:
    prices = np.stack([bars[name].astype(np.float64) for name in _PRICES])
    bad = ~np.all(np.isfinite(prices) & (prices > 0), axis=0)
    return _check("prices", bad, times, "a price is zero, negative or not finite", limit)


def _spreads(
    bars: npt.NDArray[np.void], times: npt.NDArray[np.int64], factor: float, limit: int
) -> Check:
    spread = bars["spread"].astype(np.int64)
    median = float(np.median(spread[spread >= 0])) if np.any(spread >= 0) else 0.0
    bad = spread < 0
    if median > 0:
        bad = bad | (spread > factor * median)

    def detail(i: int) -> str:
        return f"spread {spread[i]} points (median {median:g})"

    return _check("spreads", bad, times, detail, limit)


# --------------------------------------------------------------------------- compare


def compare_rates(
    stored: npt.NDArray[np.void],
    fresh: npt.NDArray[np.void],
    *,
    price_tolerance: float = 0.0,
    columns: tuple[str, ...] = _COMPARED,
) -> ComparisonReport:
    """Diff a stored series with a fresh download over the span both cover.

    The newest stored bar may legitimately differ if it was still forming when stored.

    Args:
        stored: The series as kept (e.g. ``HistoryStore.read``).
        fresh: The same bars downloaded again.
        price_tolerance: Absolute difference allowed in prices.
        columns: The columns compared.
    """
    old, new = _rates(stored, "stored"), _rates(fresh, "fresh")
    unknown = set(columns) - set(old.dtype.names or ()) - set(new.dtype.names or ())
    if unknown:
        raise MT5InvalidArgumentError(f"unknown columns {sorted(unknown)}: use {_COMPARED}")
    if not len(old) or not len(new):
        return ComparisonReport(None, 0, (), (), ())
    low = max(int(old["time"].min()), int(new["time"].min()))
    high = min(int(old["time"].max()), int(new["time"].max()))
    if low > high:
        return ComparisonReport(None, 0, (), (), ())
    old = old[(old["time"] >= low) & (old["time"] <= high)]
    new = new[(new["time"] >= low) & (new["time"] <= high)]
    common, in_old, in_new = np.intersect1d(
        old["time"], new["time"], assume_unique=False, return_indices=True
    )
    differs = np.zeros(len(common), dtype=np.bool_)
    for name in columns:
        a, b = old[name][in_old], new[name][in_new]
        if name in _PRICES:
            differs |= np.abs(a.astype(np.float64) - b.astype(np.float64)) > price_tolerance
        else:
            differs |= a != b
    return ComparisonReport(
        overlap=(low, high),
        matching=int(np.count_nonzero(~differs)),
        only_stored=tuple(np.setdiff1d(old["time"], common).tolist()),
        only_fresh=tuple(np.setdiff1d(new["time"], common).tolist()),
        changed=tuple(common[differs].tolist()),
    )
