"""Events a connector publishes to its hooks: frozen, slotted dataclasses (stamina style).

Hooks are plain callables taking one event, registered per connector
(``AsyncMT5Connector(event_hooks=[...])`` or ``connector.add_event_hook``). They run on the event
loop thread; an exception in a hook is logged (``aiomt5.connector.event_hook_failed``) and never
reaches the code that triggered the event.
"""

from __future__ import annotations

import asyncio
import collections
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._types import ConnectionState

__all__ = [
    "ConnectorEvent",
    "EventHook",
    "EventStream",
    "HealthFailed",
    "LateResult",
    "ReconnectFailed",
    "ReconnectScheduled",
    "Reconnected",
    "StateChanged",
    "WorkerWedged",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorEvent:
    """Base of all events. ``kind`` names the event type; ``at`` is wall-clock epoch seconds."""

    kind: ClassVar[str] = "event"
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True, kw_only=True)
class LateResult(ConnectorEvent):
    """A write finished after its caller gave up (timed out or was cancelled).

    The caller got ``MT5OutcomeUnknownError`` (or ``CancelledError``); this is what actually
    happened. Reconcile with it: an order may have been placed.

    Attributes:
        function: The MetaTrader5 function.
        args_summary: The call, secrets masked.
        result: What the call returned (None when it raised).
        error: What it raised, if it did (an aiomt5 error for MT5 failures).
        duration: Seconds the call ran.
        overdue: Seconds it ran after the caller gave up.
        tag: The request's correlation tag, when the caller gave one (``Trader`` requests
            carry their client tag): match it, never parse ``args_summary``.
    """

    kind: ClassVar[str] = "late_result"
    function: str
    args_summary: str
    result: Any = None
    error: BaseException | None = None
    duration: float = 0.0
    overdue: float = 0.0
    tag: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerWedged(ConnectorEvent):
    """The worker is stuck in a call past its caller's timeout; new calls now fail fast.

    Published once per stuck call, ``worker_wedged_after`` seconds past its caller's deadline
    (or when a first call is turned away, if that comes first).
    """

    kind: ClassVar[str] = "worker_busy"
    function: str
    args_summary: str
    running_for: float
    overdue: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChanged(ConnectorEvent):
    """The connector moved from ``old`` to ``new`` (``reason`` says why, briefly)."""

    kind: ClassVar[str] = "state_changed"
    old: ConnectionState
    new: ConnectionState
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthFailed(ConnectorEvent):
    """A health check (or a call's connection error, confirmed by one) found trouble.

    Attributes:
        reason: What is wrong, in a sentence.
        action: What the supervisor does about it: ``"degraded"`` (the state becomes DEGRADED;
            the terminal is up but not fully working) or ``"reconnect"`` (the link is down).
        error: The error behind it, if any.
    """

    kind: ClassVar[str] = "health_failed"
    reason: str
    action: str
    error: BaseException | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectScheduled(ConnectorEvent):
    """A connect attempt failed; the next one starts after ``delay`` seconds (or ``reconnect()``).

    Attributes:
        attempt: The attempt that failed (1 = the first).
        delay: Seconds until the next attempt (the capped, jittered backoff).
        error: Why the attempt failed.
    """

    kind: ClassVar[str] = "reconnect_scheduled"
    attempt: int
    delay: float
    error: BaseException


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconnected(ConnectorEvent):
    """The supervisor re-established the session after losing it.

    Attributes:
        attempts: Connect attempts it took.
        downtime: Seconds from losing the link to being connected again.
        cause: The error that started the outage (None for ``reconnect()``).
    """

    kind: ClassVar[str] = "reconnected"
    attempts: int
    downtime: float
    cause: BaseException | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectFailed(ConnectorEvent):
    """The supervisor gave up (``reconnect_max_retries`` reached, or the login was rejected).

    The state becomes DISCONNECTED and the next call raises ``error``; ``connect()`` starts over.
    """

    kind: ClassVar[str] = "reconnect_failed"
    attempts: int
    error: BaseException


EventHook = Callable[[ConnectorEvent], object]
"""A per-connector callback receiving every event."""


class EventStream:
    """An async iterator over a connector's events (``connector.events()``).

    Bounded: when more than ``maxsize`` events wait to be read, the oldest is dropped and
    ``dropped`` counts it; publishing never blocks the connector. Iteration ends after the
    connector's ``CLOSED`` state change, or at once after ``aclose()``.
    """

    def __init__(self, maxsize: int = 1000) -> None:
        if maxsize < 1:
            msg = f"maxsize must be at least 1, got {maxsize}"
            raise ValueError(msg)
        self._queue: collections.deque[ConnectorEvent] = collections.deque()
        self._maxsize = maxsize
        self._arrived = asyncio.Event()
        self._ended = False
        self._detach: Callable[[], None] | None = None
        self.dropped = 0
        """Events dropped because the reader fell more than ``maxsize`` behind."""

    def hook(self, hooks: list[EventHook]) -> EventHook:
        """A hook for ``hooks`` that feeds this stream and unhooks itself once it is gone.

        It holds the stream weakly, so a forgotten stream stops costing anything.
        """
        ref = weakref.ref(self)

        def feed(event: ConnectorEvent) -> None:
            stream = ref()
            if stream is None:
                if feed in hooks:
                    hooks.remove(feed)
            else:
                stream._push(event)

        def detach() -> None:
            if feed in hooks:
                hooks.remove(feed)

        self._detach = detach
        return feed

    def _push(self, event: ConnectorEvent) -> None:
        if self._ended:
            return
        queue = self._queue
        if len(queue) >= self._maxsize:
            queue.popleft()
            self.dropped += 1
        queue.append(event)
        if isinstance(event, StateChanged) and event.new.value == "closed":
            self._end()
        self._arrived.set()

    def _end(self) -> None:
        self._ended = True
        if self._detach is not None:
            self._detach()
            self._detach = None

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ConnectorEvent:
        while not self._queue:
            if self._ended:
                raise StopAsyncIteration
            self._arrived.clear()
            await self._arrived.wait()
        return self._queue.popleft()

    async def aclose(self) -> None:
        """Stop receiving events; pending ones are discarded."""
        self._end()
        self._queue.clear()
        self._arrived.set()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
