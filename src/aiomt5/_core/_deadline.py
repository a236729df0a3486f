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
from ._types import TimeoutArg, UseDefault

__all__ = ["Deadline", "bounded", "current", "detached", "operation", "seconds", "within"]


class Deadline:
    """When an operation must be over (``time.monotonic()`` seconds; None: never).

    Args:
        seconds: The budget from now (None: no limit).
        parent: The enclosing operation's deadline, never outlived.
        total: An absolute time it may never pass either (a paged download's total deadline).
    """

    __slots__ = ("at", "parent", "seconds", "total")

    def __init__(
        self, seconds: float | None, parent: Deadline | None = None, total: float | None = None
    ) -> None:
        self.seconds = seconds
        self.parent = parent
        self.total = total
        self.at: float | None = None
        self.renew()

    def renew(self) -> None:
        """Start a fresh budget of ``seconds`` from now (still within the enclosing ones)."""
        ends = [self.total, self.parent.at if self.parent is not None else None]
        if self.seconds is not None:
            ends.append(time.monotonic() + self.seconds)
        known = [end for end in ends if end is not None]
        self.at = min(known) if known else None

    def restart(self) -> None:
        """A fresh budget for this deadline and every enclosing one (a new attempt of the
        whole operation: a trade resent after it provably took no effect)."""
        chain: list[Deadline] = []
        deadline: Deadline | None = self
        while deadline is not None:
            chain.append(deadline)
            deadline = deadline.parent
        for each in reversed(chain):
            each.renew()

    def shift(self, seconds: float) -> None:
        """Move this deadline and the enclosing ones ``seconds`` later (time not counted)."""
        deadline: Deadline | None = self
        while deadline is not None:
            if deadline.at is not None:
                deadline.at += seconds
            if deadline.total is not None:
                deadline.total += seconds
            deadline = deadline.parent

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
    end = None if total is None else time.monotonic() + total
    deadline = Deadline(seconds, _CURRENT.get(), end)
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


@contextlib.contextmanager
def within(deadline: Deadline) -> Iterator[Deadline]:
    """Run the block under an existing ``deadline`` (an operation resumed after a pause)."""
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def detached() -> Iterator[None]:
    """Run the block outside any operation's deadline, and do not count its time against it.

    For work with a budget of its own: trade reconciliation runs after a send gave up, within
    ``reconcile_timeout``; the request's own ``timeout`` then goes on where it stopped.
    """
    outer = _CURRENT.get()
    started = time.monotonic()
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)
        if outer is not None:
            outer.shift(time.monotonic() - started)


def seconds(timeout: TimeoutArg, default: float | None) -> float | None:
    """A ``timeout=`` argument in seconds: ``USE_DEFAULT`` means ``default``."""
    return default if isinstance(timeout, UseDefault) else timeout
