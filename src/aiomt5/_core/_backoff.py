"""Reconnect/connect backoff (exponential, capped, jittered) and the testing mode that zeroes it."""

from __future__ import annotations

import random
from types import TracebackType

__all__ = ["backoff_delay", "is_testing", "set_testing"]


class _Testing:
    enabled = False


class set_testing:  # noqa: N801  # used like a function, optionally as a context manager
    """Turn testing mode on or off process-wide: every backoff delay becomes 0.

    For test suites (the application decides, never the library). Usable as a plain call or as a
    context manager that restores the previous mode on exit::

        aiomt5.set_testing(True)
        with aiomt5.set_testing(True):
            ...

    A connector also honours ``MT5Settings(testing=True)`` on its own.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._previous = _Testing.enabled
        _Testing.enabled = enabled

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _Testing.enabled = self._previous


def is_testing() -> bool:
    """True while ``set_testing(True)`` is in force."""
    return _Testing.enabled


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    rng: random.Random,
    testing: bool = False,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = first retry).

    ``initial * 2 ** (attempt - 1)``, capped at ``maximum``, then "equal jitter": a uniform draw
    in the upper half, so many clients restarting together spread out but never retry at once.
    Zero in testing mode.
    """
    if testing or _Testing.enabled:
        return 0.0
    # The exponent is capped so "retry forever" never overflows a float.
    base = min(maximum, initial * 2.0 ** min(max(attempt - 1, 0), 62))
    return base / 2 + rng.uniform(0.0, base / 2)
