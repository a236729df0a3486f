"""The supervisor: one task that connects, watches health and reconnects (aiokafka's model).

``connect()`` starts it and waits until its first connect succeeds (or raises why it failed).
From then on it owns the session:

* its health child task (started and cancelled only by the supervisor) checks the terminal every
  ``health_check_interval`` seconds and only *signals* what it saw; calls that fail with a
  connection error signal too (through the connector's ``CallRecorder``);
* the supervisor *decides*: DEGRADED when the terminal answers but is not fully working (trade
  server down, account unreadable, a ping stuck), CONNECTED again when a check passes, and a
  reconnect (RECONNECTING) when the link to the terminal is down;
* a reconnect retires the worker (waiting for a stuck call to return: two threads must never be
  inside MetaTrader5 at once), starts a fresh one and re-runs the handshake, with capped, jittered
  exponential backoff between attempts; ``connector.reconnect()`` skips the wait;
* a call stuck ``worker_wedged_after`` seconds past its timeout (``WorkerWedged``) in a backend
  that runs in a child process (``isolation="process"``) is ended by replacing the child: the
  stuck call fails like a broken pipe, and the session is re-established on a fresh child. In
  one process nothing can end it, so the connector only goes DEGRADED until it returns;
* when it gives up (``reconnect_max_retries``, or rejected credentials), the error goes to a
  ``ReconnectFailed`` event and to the user's next call, and the state becomes DISCONNECTED.

The supervisor holds its connector weakly: a forgotten connector is still collected (and
warned about), and its finalizer cancels the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ._backoff import backoff_delay
from ._errors import (
    MT5ClosedError,
    MT5ConfigurationError,
    MT5ConnectionError,
    MT5Error,
    MT5InvalidArgumentError,
    MT5LoginError,
    MT5NotAvailableError,
    MT5TimeoutError,
    MT5WorkerBusyError,
)
from ._events import (
    ConnectorEvent,
    HealthFailed,
    Reconnected,
    ReconnectFailed,
    ReconnectScheduled,
    WorkerWedged,
)
from ._log import get_logger
from ._types import ConnectionState
from ._worker import WorkerState

if TYPE_CHECKING:
    from aiomt5._connector import AsyncMT5Connector
    from aiomt5._settings import MT5Settings

__all__ = ["Supervisor"]

log = get_logger("aiomt5.supervisor")
connect_log = get_logger("aiomt5.connector")

_LIVE: Final = frozenset({ConnectionState.CONNECTED, ConnectionState.DEGRADED})
_FATAL: Final = (
    MT5LoginError,
    MT5ConfigurationError,
    MT5InvalidArgumentError,
    MT5NotAvailableError,
    MT5ClosedError,
)
# The health probe's worker job is named after its first call.
_PROBE: Final = "terminal_info"


class _Health(enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"
    LOST = "lost"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class _Verdict:
    health: _Health
    reason: str = ""
    error: BaseException | None = None


def _retryable(error: MT5Error, *, first: bool) -> bool:
    """Whether another connect attempt may succeed where this one failed.

    Rejected credentials fail again (and may lock the account), and configuration errors need
    a human. The first connect retries only link failures, so a misconfiguration surfaces at
    once; a reconnect also retries call failures (an account read failing while the trade
    server is still coming back), since the same configuration worked before.
    """
    if isinstance(error, _FATAL):
        return False
    return isinstance(error, MT5ConnectionError) or not first


class _Gone(Exception):
    """The connector was collected: the supervisor has nothing left to do."""


class Supervisor:
    """Owns connecting, health checks and reconnection of one connector.

    Args:
        connector: The connector to supervise (held weakly).
    """

    def __init__(self, connector: AsyncMT5Connector) -> None:
        self._ref = weakref.ref(connector)
        self._settings: MT5Settings = connector.settings
        self._rng = random.Random()
        self._wake = asyncio.Event()
        self._reconnect_now = asyncio.Event()
        self._lost: tuple[MT5ConnectionError, bool] | None = None
        self._verdict: _Verdict | None = None
        self._task: asyncio.Task[None] | None = None
        self._health: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._last_alive = 0
        self.reconnect_attempts = 0
        """Connect attempts made to recover a lost session (failed ones included)."""
        self.health_checks = 0
        """Health probes sent (ticks skipped thanks to a successful call are not counted)."""
        self.health_failures = 0
        """Health findings that made the connector DEGRADED or reconnect."""
        self.ping_ms: float | None = None
        """The terminal's ``ping_last`` to its trade server at the last passing check."""

    # ------------------------------------------------------------------ control (loop side)

    @property
    def running(self) -> bool:
        """True while the supervisor task is alive."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the task and wait for the first connect (its error is raised here)."""
        loop = asyncio.get_running_loop()
        self._ready = ready = loop.create_future()
        self._connector().add_event_hook(self._on_event)
        self._task = asyncio.create_task(self._main(), name="aiomt5-supervisor")
        # Shielded: a cancelled connect() must not cancel the future the task resolves.
        await asyncio.shield(ready)

    def cancel(self) -> None:
        """Ask the task to stop (sync; ``stop()`` waits for it)."""
        if self._task is not None:
            self._task.cancel()

    def cancel_threadsafe(self) -> None:
        """``cancel()`` from any thread (for finalizers)."""
        task = self._task
        if task is None or task.done():
            return
        # A closed loop raises RuntimeError: then the task can never run again anyway.
        with contextlib.suppress(RuntimeError):
            task.get_loop().call_soon_threadsafe(task.cancel)

    async def stop(self) -> None:
        """Cancel the task (and its health child) and wait until both have ended."""
        task = self._task
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # already reported by the task itself; mark it retrieved
        ready = self._ready
        if ready is not None and ready.done() and not ready.cancelled():
            ready.exception()

    def connection_lost(self, error: MT5ConnectionError) -> None:
        """A call failed with a connection error (the recorder's callback; loop thread)."""
        connector = self._ref()
        if connector is None or connector.state not in _LIVE:
            return  # handshake failures while (re)connecting are the supervisor's own business
        if isinstance(error, MT5LoginError | MT5WorkerBusyError):
            return  # a reconnect cannot fix a rejected login or a stuck call
        if self._lost is None:
            self._lost = (error, False)
        self._wake.set()

    def _on_event(self, event: ConnectorEvent) -> None:
        """A stuck call can be ended by replacing the child process: decide to (loop thread)."""
        if not isinstance(event, WorkerWedged) or not self.running:
            return
        connector = self._ref()
        if connector is None or connector.state not in _LIVE or not self._can_restart(connector):
            return
        error = MT5WorkerBusyError(
            f"the terminal is stuck in {event.args_summary} for {event.running_for:.1f}s, "
            f"{event.overdue:.1f}s past its timeout: replacing its process",
            function=event.function,
        )
        self._lost = (error, True)
        self._wake.set()

    @staticmethod
    def _can_restart(connector: AsyncMT5Connector) -> bool:
        resolved = connector._resolved
        return resolved is not None and resolved.restart is not None

    def _restart_stuck(self, connector: AsyncMT5Connector) -> None:
        """Before a new session: end a call its caller gave up on by replacing the backend's
        process (it fails like a broken pipe), rather than wait for it. In-process, or when
        its caller still waits, the new session waits for it as always."""
        resolved = connector._resolved
        worker = connector.worker
        if resolved is None or resolved.restart is None or worker is None:
            return
        in_flight = worker.in_flight
        if in_flight is None or in_flight.overdue_for is None:
            return
        log.error(
            "aiomt5.supervisor.replacing_stuck_terminal",
            function=in_flight.function,
            running_for=round(in_flight.running_for, 3),
        )
        resolved.restart()

    def request_reconnect(self) -> None:
        """Reconnect now: skip a backoff wait, or start a fresh session when connected."""
        self._reconnect_now.set()
        self._wake.set()

    # ------------------------------------------------------------------ the task

    def _connector(self) -> AsyncMT5Connector:
        connector = self._ref()
        if connector is None:
            raise _Gone
        return connector

    async def _main(self) -> None:
        try:
            if not await self._establish(first=True):
                return
            self._resolve_ready()
            while True:
                self._start_health()
                cause = await self._watch()
                await self._stop_health()
                if not await self._recover(cause):
                    return
        except _Gone:
            return
        except Exception as exc:  # a bug here must reach the user, not vanish with the task
            log.exception("aiomt5.supervisor.crashed", error=repr(exc))
            self._fail(exc, attempts=0)
        finally:
            connector = self._ref()
            if connector is not None:
                with contextlib.suppress(ValueError):  # already removed
                    connector.remove_event_hook(self._on_event)
                del connector
            await self._stop_health()

    def _resolve_ready(self) -> None:
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_result(None)

    async def _establish(self, *, first: bool) -> int:
        """Connect attempts with backoff until one succeeds; returns their count, 0 if gave up."""
        settings = self._settings
        limit = settings.max_retries if first else settings.reconnect_max_retries
        attempt = 0
        while True:
            attempt += 1
            error = await self._attempt(attempt, limit, first=first)
            if error is None:
                self._reconnect_now.clear()
                return attempt
            exhausted = limit is not None and attempt >= limit
            if exhausted or not _retryable(error, first=first):
                if exhausted and _retryable(error, first=first):
                    error.add_note(f"aiomt5: gave up after {attempt} connect attempt(s)")
                if first:
                    self._fail(error, attempts=attempt)
                else:
                    await self._give_up(error, attempt)
                return 0
            delay = backoff_delay(
                attempt,
                initial=settings.retry_delay,
                maximum=settings.retry_max_delay,
                rng=self._rng,
                testing=settings.testing,
            )
            self._schedule(attempt, delay, error, first=first)
            await self._backoff(delay)

    async def _attempt(self, attempt: int, limit: int | None, *, first: bool) -> MT5Error | None:
        connector = self._connector()
        if not first:
            self.reconnect_attempts += 1
        self._restart_stuck(connector)  # e.g. an initialize that outlived connect_timeout
        settings = self._settings
        connect_log.info(
            "aiomt5.connector.connect_attempt",
            attempt=attempt,
            max_attempts=limit,
            backend=connector._description,
            login=settings.login,
            server=settings.server,
        )
        try:
            account = await connector._open_session()
        except MT5Error as exc:
            connect_log.warning("aiomt5.connector.connect_failed", attempt=attempt, error=str(exc))
            return exc
        connect_log.info(
            "aiomt5.connector.connected",
            attempts=attempt,
            login=getattr(account, "login", None),
            server=getattr(account, "server", None),
        )
        self._lost = None
        self._verdict = None
        self._last_alive = connector._recorder.succeeded_calls
        connector._set_state(ConnectionState.CONNECTED, "connected" if first else "reconnected")
        return None

    def _schedule(self, attempt: int, delay: float, error: MT5Error, *, first: bool) -> None:
        if first:
            connect_log.info(
                "aiomt5.connector.connect_retry_scheduled", attempt=attempt, delay=delay
            )
        else:
            log.warning(
                "aiomt5.supervisor.reconnect_scheduled",
                attempt=attempt,
                delay=round(delay, 3),
                error=str(error),
            )
        self._connector()._emit(ReconnectScheduled(attempt=attempt, delay=delay, error=error))

    async def _backoff(self, delay: float) -> None:
        """Wait ``delay`` seconds, or less if ``reconnect()`` is called."""
        if self._reconnect_now.is_set():
            self._reconnect_now.clear()
            return
        if delay <= 0:
            await asyncio.sleep(0)  # let other tasks (and cancellation) in between attempts
            return
        try:
            async with asyncio.timeout(delay):
                await self._reconnect_now.wait()
        except TimeoutError:
            return
        self._reconnect_now.clear()

    def _fail(self, error: BaseException, *, attempts: int) -> None:
        """The first connect failed: connect() raises it."""
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_exception(error)
            return
        # Failing after the first connect: like giving up, minus the awaits.
        connector = self._ref()
        if connector is not None:
            connector._pending_error = error
            connector._emit(ReconnectFailed(attempts=attempts, error=error))
            connector._set_state(ConnectionState.DISCONNECTED, f"supervisor failed: {error!r}")

    async def _give_up(self, error: MT5Error, attempts: int) -> None:
        connector = self._connector()
        log.error("aiomt5.supervisor.gave_up", attempts=attempts, error=str(error))
        await connector._retire_worker(shutdown=True)
        connector._pending_error = error
        connector._emit(ReconnectFailed(attempts=attempts, error=error))
        connector._set_state(ConnectionState.DISCONNECTED, f"reconnect gave up: {error}")

    async def _watch(self) -> MT5ConnectionError | None:
        """Apply health signals until the session must be replaced; return why (None: asked)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._reconnect_now.is_set():
                self._reconnect_now.clear()
                return None
            lost, self._lost = self._lost, None
            if lost is not None:
                error, confirmed = lost
                if confirmed:
                    return error
                # One failed call is not proof: MT5 reports a single failed IPC exchange with
                # the same codes as a dead pipe. Ask the terminal before tearing down.
                probe = await self._probe()
                if probe.health is _Health.LOST:
                    return error
                self._apply(probe)
                continue
            verdict, self._verdict = self._verdict, None
            if verdict is not None:
                if verdict.health is _Health.LOST:
                    assert isinstance(verdict.error, MT5ConnectionError)
                    return verdict.error
                self._apply(verdict)

    def _apply(self, verdict: _Verdict) -> None:
        connector = self._connector()
        if verdict.health is _Health.OK:
            if connector.state is ConnectionState.DEGRADED:
                log.info("aiomt5.supervisor.recovered")
                connector._set_state(ConnectionState.CONNECTED, "health check passed")
        elif verdict.health is _Health.DEGRADED and connector.state in _LIVE:
            self.health_failures += 1
            log.warning("aiomt5.supervisor.health_failed", reason=verdict.reason, action="degraded")
            connector._emit(
                HealthFailed(reason=verdict.reason, action="degraded", error=verdict.error)
            )
            connector._set_state(ConnectionState.DEGRADED, verdict.reason)

    async def _recover(self, cause: MT5ConnectionError | None) -> bool:
        """Replace the session; False if the supervisor gave up."""
        connector = self._connector()
        started = time.monotonic()
        if cause is not None:
            self.health_failures += 1
            reason = f"lost the terminal: {cause}"
            log.warning("aiomt5.supervisor.connection_lost", error=str(cause))
            connector._emit(HealthFailed(reason=reason, action="reconnect", error=cause))
        else:
            reason = "reconnect()"
        connector._last_connection_error = cause
        connector._set_state(ConnectionState.RECONNECTING, reason)
        del connector  # hold the connector only while acting, never while waiting
        attempts = await self._establish(first=False)
        if not attempts:
            return False
        downtime = time.monotonic() - started
        log.info("aiomt5.supervisor.reconnected", attempts=attempts, downtime=round(downtime, 3))
        self._connector()._emit(Reconnected(attempts=attempts, downtime=downtime, cause=cause))
        return True

    # ------------------------------------------------------------------ health (child task)

    def _start_health(self) -> None:
        if self._settings.health_check and self._health is None:
            self._health = asyncio.create_task(self._health_loop(), name="aiomt5-health")

    async def _stop_health(self) -> None:
        task, self._health = self._health, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    async def _health_loop(self) -> None:
        """Check every interval and signal the result; deciding is the supervisor's job."""
        interval = self._settings.health_check_interval
        try:
            while True:
                await asyncio.sleep(interval)
                verdict = await self._tick()
                if verdict.health is _Health.SKIPPED:
                    continue
                if verdict.health is _Health.LOST:
                    assert isinstance(verdict.error, MT5ConnectionError)
                    self._lost = (verdict.error, True)
                else:
                    self._verdict = verdict
                self._wake.set()
        except _Gone:
            return

    async def _tick(self) -> _Verdict:
        connector = self._connector()
        alive = connector._recorder.succeeded_calls
        if connector.state is ConnectionState.CONNECTED and alive > self._last_alive:
            # A call answered since the last tick: proof of life, no ping needed. (Not while
            # DEGRADED: only a check can tell that the trade server is back.)
            self._last_alive = alive
            return _Verdict(_Health.SKIPPED, "proof of life")
        del connector
        return await self._probe()

    async def _probe(self) -> _Verdict:
        """Ping the terminal once: pipe, trade server, account, ``ping_last``."""
        connector = self._connector()
        worker = connector.worker
        if worker is None or connector.state not in _LIVE:
            return _Verdict(_Health.SKIPPED, "not connected")
        in_flight = worker.in_flight
        if in_flight is not None:
            if worker.state is WorkerState.WEDGED:
                reason = (
                    f"the terminal is stuck in {in_flight.function}() for "
                    f"{in_flight.running_for:.1f}s"
                )
                if self._can_restart(connector):  # a child process: replace it
                    error = MT5WorkerBusyError(reason, function=in_flight.function)
                    return _Verdict(_Health.LOST, reason, error)
                return _Verdict(_Health.DEGRADED, reason)
            # A ping queued behind a long call would time out and look like a dead terminal;
            # the call's own outcome will tell. Check again next time.
            return _Verdict(_Health.SKIPPED, f"{in_flight.function}() in flight")
        self.health_checks += 1
        job = connector._health_job()
        try:
            terminal, account = await worker.run(
                _PROBE, job, timeout=self._settings.health_check_timeout
            )
        except (MT5LoginError, MT5WorkerBusyError) as exc:
            return _Verdict(_Health.DEGRADED, f"health check refused: {exc}", exc)
        except MT5ConnectionError as exc:
            return _Verdict(_Health.LOST, str(exc), exc)
        except MT5TimeoutError as exc:
            stuck = worker.in_flight
            if stuck is not None and stuck.function != _PROBE:
                return _Verdict(_Health.SKIPPED, f"ping queued behind {stuck.function}()")
            return _Verdict(_Health.DEGRADED, "the terminal did not answer a ping in time", exc)
        except MT5Error as exc:
            return _Verdict(_Health.DEGRADED, f"health check failed: {exc}", exc)
        finally:
            self._last_alive = connector._recorder.succeeded_calls
        if not terminal.connected:
            return _Verdict(_Health.DEGRADED, "the terminal is not connected to the trade server")
        if account is None:
            return _Verdict(_Health.DEGRADED, "account_info() failed")
        ping = terminal.ping_last
        self.ping_ms = ping / 1000 if ping is not None else None  # MT5 says microseconds
        return _Verdict(_Health.OK)
