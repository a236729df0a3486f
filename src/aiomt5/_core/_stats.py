"""Connection statistics and health reports: frozen snapshots, plus the recorder behind them."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from ._errors import MT5Error, MT5OutcomeUnknownError, MT5TimeoutError
from ._types import ConnectionState

__all__ = ["CallRecorder", "ConnectionStats", "HealthReport"]

_LATENCY_WINDOW: Final = 4096


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """A snapshot of a connector's life (``connector.get_connection_stats()``).

    ``calls`` counts every terminal call the connector made, connect handshakes included.
    Latency percentiles cover the last 4096 completed calls, measured from the caller's side
    (queueing included); None before the first call. ``uptime_seconds`` runs from the current
    session's connect (0 while not connected); ``reconnects`` counts sessions after the first
    (the supervisor's and the user's); ``reconnect_attempts`` counts the supervisor's connect
    attempts, failed ones included; ``time_in_state`` maps each state's value to the seconds
    spent in it, the current stay included. ``ping_ms`` is the terminal's ``ping_last`` to its
    trade server at the last passing health check.
    """

    state: ConnectionState
    backend: str
    connected_since: datetime | None
    uptime_seconds: float
    connects: int
    reconnects: int
    calls: int
    failures: int
    timeouts: int
    outcome_unknown: int
    abandoned: int
    late_results: int
    rejected_busy: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    last_error: str | None
    last_error_at: datetime | None
    worker_state: str
    in_flight: str | None
    queued: int
    reconnect_attempts: int = 0
    health_checks: int = 0
    health_failures: int = 0
    time_in_state: dict[str, float] | None = None
    ping_ms: float | None = None


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The answer of ``connector.health_check()``.

    Attributes:
        ok: Terminal pipe up, terminal connected to the trade server, and account readable.
        terminal_connected: ``terminal_info().connected`` (False if the pipe is down).
        trade_allowed: ``terminal_info().trade_allowed`` (algo trading enabled in the terminal).
        account_reachable: ``account_info()`` answered.
        ping_ms: The terminal's last ping to the trade server, in milliseconds.
        login: The logged-in account, when it answered.
        latency_ms: How long the check took, from the caller's side.
        error: Why it is not ok (None when ok).
        checked_at: When it ran (UTC).
    """

    ok: bool
    terminal_connected: bool
    trade_allowed: bool
    account_reachable: bool
    ping_ms: float | None
    login: int | None
    latency_ms: float
    error: str | None
    checked_at: datetime


class CallRecorder:
    """Counts calls and keeps recent latencies; loop-thread only, O(1) per call (in bulk)."""

    __slots__ = (
        "calls",
        "failures",
        "last_error",
        "last_error_at",
        "latencies",
        "outcome_unknown",
        "timeouts",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.failures = 0
        self.timeouts = 0
        self.outcome_unknown = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    def succeeded_many(self, latencies: list[float]) -> None:
        """Record a batch of calls that returned (one delivery of the worker)."""
        self.calls += len(latencies)
        self.latencies.extend(latencies)

    def failed(self, error: BaseException, seconds: float) -> None:
        """Record a call that raised (cancellations are not recorded at all)."""
        self.calls += 1
        self.failures += 1
        self.latencies.append(seconds)
        if isinstance(error, MT5OutcomeUnknownError):
            self.outcome_unknown += 1
        elif isinstance(error, MT5TimeoutError):
            self.timeouts += 1
        self.last_error = str(error) if isinstance(error, MT5Error) else repr(error)
        self.last_error_at = datetime.now(UTC)

    def percentiles_ms(self) -> tuple[float | None, float | None]:
        """(p50, p99) of the recent latencies in milliseconds."""
        if not self.latencies:
            return None, None
        ordered = sorted(self.latencies)
        last = len(ordered) - 1
        return ordered[round(0.50 * last)] * 1000, ordered[round(0.99 * last)] * 1000
