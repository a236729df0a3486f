"""The simulated terminal's notion of "now".

The terminal reads the time from a ``SimClock``: by default it follows wall time, so a demo sees
live ticks; tests freeze it and move it explicitly, so "live" data appears exactly when they say.
"""

from __future__ import annotations

import threading
import time
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
    """A thread-safe clock: wall time plus an offset, or frozen and moved by hand.

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

    @classmethod
    def wall(cls) -> SimClock:
        """A clock that follows ``time.time()``."""
        return cls()

    @classmethod
    def fixed(cls, start: TimeLike, *, step: float = 0.0) -> SimClock:
        """A frozen clock at ``start``; it moves only by ``advance``/``set`` (and ``step``)."""
        return cls(start, step=step)

    @property
    def frozen(self) -> bool:
        """True when the clock only moves when told to."""
        return self._frozen

    def now(self) -> float:
        """Current simulated time in epoch seconds."""
        with self._lock:
            if not self._frozen:
                return time.time() + self._offset
            now = self._now
            self._now += self._step
            return now

    def now_msc(self) -> int:
        """Current simulated time in epoch milliseconds."""
        return int(self.now() * 1000)

    def datetime(self) -> datetime:
        """Current simulated time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now(), UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock forward (a wall clock gains an offset)."""
        if seconds < 0:
            msg = f"a clock only moves forward; got advance({seconds})"
            raise ValueError(msg)
        with self._lock:
            if self._frozen:
                self._now += seconds
            else:
                self._offset += seconds

    def set(self, when: TimeLike) -> None:
        """Freeze the clock at ``when``."""
        value = to_epoch_seconds(when)
        with self._lock:
            self._frozen = True
            self._now = value

    def __repr__(self) -> str:
        mode = "fixed" if self._frozen else "wall"
        return f"SimClock({mode}, now={self.datetime().isoformat()})"
