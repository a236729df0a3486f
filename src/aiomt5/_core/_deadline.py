"""One deadline per public operation, seen by every call the operation makes.

A public method that makes several terminal calls (``get_rates``: resolve the symbol, select it,
read ``maxbars``, read the bars) opens an ``operation(timeout)`` scope. The scope's deadline lives
in a context variable, so every call made inside it (however deep, prefetching tasks included)
gets at most what is left of it: ``bounded()`` is what the connector's call path asks. Scopes
nest: an inner scope never outlives the outer one.

Paged downloads ``renew()`` the budget after each page (see ``_market._history``), within the
cap of their optional total deadline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Final

from ._errors import MT5TimeoutError

__all__ = ["Deadline", "bounded", "current", "operation"]


class Deadline:
    """When an operation must be over (``time.monotonic()`` seconds; None: never).

    Args:
        seconds: The budget from now (None: no limit).
        cap: An absolute time it may never pass (an enclosing deadline, a total one).
    """

    __slots__ = ("at", "cap", "seconds")

    def __init__(self, seconds: float | None, cap: float | None = None) -> None:
        self.seconds = seconds
        self.cap = cap
        self.at: float | None = None
        self.renew()

    def renew(self) -> None:
        """Start a fresh budget of ``seconds`` from now (still within ``cap``)."""
        at = None if self.seconds is None else time.monotonic() + self.seconds
        cap = self.cap
        self.at = cap if at is None or (cap is not None and cap < at) else at

    def left(self) -> float | None:
        """Seconds left (may be <= 0), or None without a limit."""
        at = self.at
        return None if at is None else at - time.monotonic()


_CURRENT: Final[ContextVar[Deadline | None]] = ContextVar("aiomt5_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the operation running in this context, if any."""
    return _CURRENT.get()


@contextlib.contextmanager
def operation(seconds: float | None, *, total: float | None = None) -> Iterator[Deadline]:
    """Run the block as one operation: its calls share one deadline of ``seconds``.

    Args:
        seconds: The operation's budget (None: unbounded, unless an enclosing one is).
        total: An extra cap, in seconds from now (a paged download's total deadline).
    """
    outer = _CURRENT.get()
    cap = outer.at if outer is not None else None
    if total is not None:
        end = time.monotonic() + total
        cap = end if cap is None or end < cap else cap
    deadline = Deadline(seconds, cap)
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)


def bounded(timeout: float | None, function: str) -> float | None:
    """``timeout`` for one call, cut to what is left of the current operation.

    Raises:
        MT5TimeoutError: The operation's deadline has passed: nothing is sent.
    """
    deadline = _CURRENT.get()
    if deadline is None or deadline.at is None:
        return timeout
    left = deadline.at - time.monotonic()
    if left <= 0:
        raise MT5TimeoutError(
            "the operation's timeout expired before this call could be sent (it was not sent)",
            function=function,
        )
    return left if timeout is None or left < timeout else timeout
