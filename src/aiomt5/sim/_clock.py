"""The simulated terminal's notion of "now".

The terminal reads the time from a ``SimClock``: by default it follows wall time, so a demo sees
live ticks; it can also start at a chosen instant and run (faster than wall time if asked), which
is how a user gets an open market at a weekend; tests freeze it and move it explicitly, so "live"
data appears exactly when they say.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["SimClock", "TimeLike", "to_epoch_seconds"]

TimeLike = datetime | float | int | str
"""An aware datetime, epoch seconds, or an ISO 8601 string with a zone (``"2026-03-02T10:00Z"``)."""


def to_epoch_seconds(when: TimeLike) -> float:
    """Convert a ``TimeLike`` to epoch seconds; naive datetimes are rejected."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            msg = f"naive datetime {when!r}: give the clock an aware datetime (e.g. tzinfo=UTC)"
            raise ValueError(msg)
        return when.timestamp()
    if isinstance(when, bool) or not isinstance(when, int | float):
        msg = f"expected a datetime, epoch seconds or ISO string, got {type(when).__name__}"
        raise TypeError(msg)
    return float(when)


class SimClock:
    """A thread-safe clock in one of three modes.

    * **wall** (``SimClock.wall()``): follows ``time.time()`` (plus what ``advance`` added).
    * **running** (``SimClock.running(start, speed=60)``): starts at ``start`` and runs at
      ``speed`` simulated seconds per wall second, measured on the monotonic clock, so the
      machine's clock being set (or faked) does not move it.
    * **fixed** (``SimClock.fixed(start)``): frozen; it moves only by ``advance``/``set`` (and
      ``step`` per read). Tests use it.

    Args:
        start: When a frozen clock starts (``None``: follow wall time).
        step: Seconds a frozen clock advances by itself on every read (0: stays put), for code that
            polls and must see time pass without a test driving the clock.
    """

    def __init__(self, start: TimeLike | None = None, *, step: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._frozen = start is not None
        self._now = to_epoch_seconds(start) if start is not None else 0.0
        self._offset = 0.0
        if step < 0:
            msg = f"step must be >= 0, got {step}"
            raise ValueError(msg)
        self._step = step
        # Running mode: now = _now + (_source() - _anchor) * _speed.
        self._speed = 1.0
        self._anchor: float | None = None
        self._source: Callable[[], float] = time.monotonic
        self._follows = False  # made by ``following``: moves exactly as its source moves

    @classmethod
    def wall(cls) -> SimClock:
        """A clock that follows ``time.time()``."""
        return cls()

    @classmethod
    def fixed(cls, start: TimeLike, *, step: float = 0.0) -> SimClock:
        """A frozen clock at ``start``; it moves only by ``advance``/``set`` (and ``step``)."""
        return cls(start, step=step)

    @classmethod
    def running(cls, start: TimeLike | None = None, *, speed: float = 1.0) -> SimClock:
        """A clock that starts at ``start`` (default: now) and runs ``speed`` times wall speed.

        Raises:
            ValueError: ``speed`` is not a positive finite number.
        """
        if not (math.isfinite(speed) and speed > 0):
            msg = f"speed must be a positive number of simulated seconds per second, got {speed!r}"
            raise ValueError(msg)
        clock = cls(start if start is not None else time.time())
        clock._frozen = False
        clock._speed = float(speed)
        clock._anchor = time.monotonic()
        return clock

    @classmethod
    def following(cls, source: Callable[[], float], start: TimeLike) -> SimClock:
        """A clock that starts at ``start`` and moves as ``source()`` (seconds) moves.

        A replay passes its virtual event loop's ``time``: simulated time then advances exactly
        when, and as far as, the loop's clock jumps.
        """
        clock = cls(start)
        clock._frozen = False
        clock._source = source
        clock._anchor = source()
        clock._follows = True
        return clock

    @property
    def follows_source(self) -> bool:
        """True for a ``following`` clock (not set to a fixed time since): it moves one to one
        with its source, so waiting ``x`` seconds of the source moves it ``x`` seconds."""
        return self._follows

    @property
    def frozen(self) -> bool:
        """True when the clock only moves when told to."""
        return self._frozen

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second (0 for a frozen clock)."""
        return 0.0 if self._frozen else self._speed

    def now(self) -> float:
        """Current simulated time in epoch seconds."""
        with self._lock:
            if self._frozen:
                now = self._now
                self._now += self._step
                return now
            if self._anchor is not None:
                return self._now + (self._source() - self._anchor) * self._speed
            return time.time() + self._offset

    def now_msc(self) -> int:
        """Current simulated time in epoch milliseconds."""
        return int(self.now() * 1000)

    def datetime(self) -> datetime:
        """Current simulated time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now(), UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock forward (a running or wall clock jumps ahead and keeps running)."""
        if seconds < 0:
            msg = f"a clock only moves forward; got advance({seconds})"
            raise ValueError(msg)
        with self._lock:
            if self._frozen or self._anchor is not None:
                self._now += seconds
            else:
                self._offset += seconds

    def set(self, when: TimeLike) -> None:
        """Freeze the clock at ``when``."""
        value = to_epoch_seconds(when)
        with self._lock:
            self._frozen = True
            self._anchor = None
            self._follows = False
            self._now = value

    def __repr__(self) -> str:
        if self._frozen:
            mode = "fixed"
        elif self._anchor is not None:
            mode = f"running x{self._speed:g}"
        else:
            mode = "wall"
        return f"SimClock({mode}, now={self.datetime().isoformat()})"
