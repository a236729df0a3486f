"""Events a connector publishes to its hooks: frozen, slotted dataclasses (stamina style).

Hooks are plain callables taking one event, registered per connector
(``AsyncMT5Connector(event_hooks=[...])`` or ``connector.add_event_hook``). They run on the event
loop thread; an exception in a hook is logged (``aiomt5.connector.event_hook_failed``) and never
reaches the code that triggered the event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._types import ConnectionState

__all__ = ["ConnectorEvent", "EventHook", "LateResult", "StateChanged", "WorkerWedged"]


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
    """

    kind: ClassVar[str] = "late_result"
    function: str
    args_summary: str
    result: Any = None
    error: BaseException | None = None
    duration: float = 0.0
    overdue: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerWedged(ConnectorEvent):
    """The worker is stuck in a call past its caller's timeout; new calls now fail fast.

    Published once per stuck call, when the first call is turned away.
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


EventHook = Callable[[ConnectorEvent], object]
"""A per-connector callback receiving every event."""
