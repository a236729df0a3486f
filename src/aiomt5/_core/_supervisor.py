"""The supervisor: the one owner of the worker and session lifecycle (aiokafka's model).

``connect()`` starts its task and waits until its first connect succeeds (or raises why it
failed). Each connect attempt starts a fresh worker thread, runs the handshake on it, and opens
a new ``Session``. From then on the supervisor owns that session:

* liveness signals reach it directly: the worker tells it of every failed call
  (``call_failed``) and counts the calls that answered; its health child task (started and
  cancelled only here) checks the terminal every ``health_check_interval`` seconds and only
  *signals* what it saw;
* the supervisor *decides*: DEGRADED when the terminal answers but is not fully working (trade
  server down, account unreadable, a ping stuck), CONNECTED again when a check passes, and a
  reconnect (RECONNECTING) when the link to the terminal is down. A call failing with MT5's
  generic failure makes it check at once, so the state tells the truth whoever is calling;
* a reconnect retires the worker (waiting for a stuck call to return: two threads must never be
  inside MetaTrader5 at once), starts a fresh one and re-runs the handshake, with capped, jittered
  exponential backoff between attempts; ``connector.reconnect()`` skips the wait;
* a call stuck ``worker_wedged_after`` seconds past its timeout (``WorkerWedged``) in a backend
  that runs in a child process (``isolation="process"``) is ended by replacing the child: the
  stuck call fails like a broken pipe, and the session is re-established on a fresh child. In
  one process nothing can end it, so the connector only goes DEGRADED until it returns;
* when it gives up (``reconnect_max_retries``, or rejected credentials), the error goes to a
  ``ReconnectFailed`` event and stays in ``Sessions.gave_up``: every later call and every open
  stream raises it, until the next ``connect()``.

It never sees the connector: it works on the ``Sessions`` it was given, publishes events through
``emit`` and reaches the backend through the checked call. A forgotten connector stays
collectable, and its finalizer cancels the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aiomt5._backends._checked import health_job
from aiomt5._backends._handshake import handshake

from ._backoff import backoff_delay
from ._errors import (
    MT5CallFailedError,
    MT5ClosedError,
    MT5ConfigurationError,
    MT5ConnectionError,
    MT5Error,
    MT5InvalidArgumentError,
    MT5IPCTimeoutError,
    MT5LoginError,
    MT5NotAvailableError,
    MT5OutcomeUnknownError,
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
from ._session import LIVE, Sessions
from ._stats import CallRecorder
from ._types import ConnectionState
from ._worker import Worker, WorkerState

if TYPE_CHECKING:
    from aiomt5._backends import BackendSlot
    from aiomt5._settings import MT5Settings

__all__ = ["Supervisor"]

log = get_logger("aiomt5.supervisor")
connect_log = get_logger("aiomt5.connector")

_FATAL: Final = (
    MT5LoginError,
    MT5ConfigurationError,
    MT5InvalidArgumentError,
    MT5NotAvailableError,
    MT5ClosedError,
)
# The health probe's worker job is named after its first call.
_PROBE: Final = "terminal_info"
_CLOSE_TIMEOUT: Final = 5.0
_STUCK_POLL: Final = 0.01  # how often a connect attempt looks whether a given-up call returned
_SAME_CALL_SLACK: Final = 0.005  # clock reads of the worker and the loop differ by this much
RETIRED_COUNTERS: Final = (
    "abandoned",
    "late_results",
    "rejected_busy",
    "reconnect_attempts",
    "health_checks",
    "health_failures",
)
"""Counters kept across workers and supervisors (``retired`` holds those of the past ones)."""


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


class Supervisor:
    """Owns the worker, the sessions, health checks and reconnection of one connection.

    Args:
        sessions: Where the state and the current session live (shared with the connector).
        settings: The connector's settings.
        backend: Resolves the backend (called on the first connect attempt; may raise).
        emit: Publishes events (holds the connector weakly).
        recorder: Counts the calls of every worker.
        retired: Counters of past workers and supervisors (``RETIRED_COUNTERS``), added to.
    """

    def __init__(
        self,
        sessions: Sessions,
        settings: MT5Settings,
        *,
        backend: BackendSlot,
        emit: Callable[[ConnectorEvent], None],
        recorder: CallRecorder,
        retired: dict[str, int],
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._backend = backend
        self._emit = emit
        self._recorder = recorder
        self._retired = retired
        self._rng = random.Random()
        self._wake = asyncio.Event()
        self._reconnect_now = asyncio.Event()
        self._lost: tuple[MT5ConnectionError, bool] | None = None
        self._suspect: MT5Error | None = None
        self._verdict: _Verdict | None = None
        self._task: asyncio.Task[None] | None = None
        self._health: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._last_alive = 0
        self._handshaken: Worker | None = None
        self.worker: Worker | None = None
        """The worker thread (of the current session, or of the connect attempt under way)."""
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
        """End the task (and its health child), then shut the session down and the worker.

        The caller has set the state already. Shielded from the caller's cancellation.
        """
        self.cancel()  # before any await: it must not act on the new state
        self._keep_counters()
        await asyncio.shield(self._stop())

    async def _stop(self) -> None:
        task = self._task
        if task is not None:
            await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # already reported by the task itself; mark it retrieved
        ready = self._ready
        if ready is not None and ready.done() and not ready.cancelled():
            ready.exception()
        await self.retire_worker(shutdown=True)

    def abort(self) -> None:
        """Synchronous hard stop (no ``shutdown`` call): for ``reset_instance()`` and finalizers."""
        self.cancel_threadsafe()
        worker, self.worker = self.worker, None
        self._sessions.end()
        if worker is not None:
            worker.close(timeout=1.0)

    def _keep_counters(self) -> None:
        retired = self._retired
        retired["reconnect_attempts"] += self.reconnect_attempts
        retired["health_checks"] += self.health_checks
        retired["health_failures"] += self.health_failures
        self.reconnect_attempts = self.health_checks = self.health_failures = 0

    def call_failed(self, error: BaseException) -> None:
        """A call raised (the worker's liveness signal; loop thread)."""
        if self._sessions.state not in LIVE:
            return  # handshake failures while (re)connecting are the supervisor's own business
        if isinstance(error, MT5ConnectionError):
            if isinstance(error, MT5LoginError | MT5WorkerBusyError):
                return  # a reconnect cannot fix a rejected login or a stuck call
            if self._lost is None:
                self._lost = (error, False)
            self._wake.set()
        elif (
            isinstance(error, MT5CallFailedError)
            and self._suspect is None
            and self._sessions.state is ConnectionState.CONNECTED
        ):
            # MT5's generic failure: often the trade server is away. Check now, so the state
            # says DEGRADED whoever is calling (a polling stream must not hide an outage).
            # (Already DEGRADED: the health loop checks every interval; no probe storm.)
            self._suspect = error
            self._wake.set()

    def _on_worker_event(self, event: ConnectorEvent) -> None:
        """The worker's events go out; a stuck call in a child process is ended by replacing
        the child: decide to (loop thread)."""
        self._emit(event)
        if not isinstance(event, WorkerWedged) or not self.running:
            return
        if self._sessions.state not in LIVE or not self._can_restart():
            return
        error = MT5WorkerBusyError(
            f"the terminal is stuck in {event.args_summary} for {event.running_for:.1f}s, "
            f"{event.overdue:.1f}s past its timeout: replacing its process",
            function=event.function,
        )
        self._lost = (error, True)
        self._wake.set()

    def _can_restart(self) -> bool:
        resolved = self._backend.resolved
        return resolved is not None and resolved.restart is not None

    async def _restart_stuck(self) -> None:
        """Before a new session: end a call its caller gave up on by replacing the backend's
        process (it fails like a broken pipe), rather than wait for it. In-process, or when
        its caller still waits, the new session waits for it as always.

        A call that merely outlived its caller's deadline is not stuck: it gets until it has
        been overdue ``worker_wedged_after`` seconds to return before its process is replaced.
        """
        resolved = self._backend.resolved
        worker = self.worker
        if resolved is None or resolved.restart is None or worker is None:
            return
        in_flight = worker.in_flight
        if in_flight is None or in_flight.overdue_for is None:
            return
        loop = asyncio.get_running_loop()
        seen_at = loop.time()
        until = seen_at + self._settings.worker_wedged_after - in_flight.overdue_for

        def still_running() -> bool:
            # The same call, not a later one: its age grew by the time that passed.
            now = worker.in_flight
            aged = in_flight.running_for + loop.time() - seen_at - _SAME_CALL_SLACK
            return (
                now is not None and now.function == in_flight.function and now.running_for >= aged
            )

        # A bounded poll on a rare path: the caller gave up, so nothing awaits the call's end.
        while still_running() and loop.time() < until:  # noqa: ASYNC110
            await asyncio.sleep(min(_STUCK_POLL, max(until - loop.time(), 0.0)))
        if not still_running():
            return  # it returned: nothing to end
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
        except Exception as exc:  # a bug here must reach the user, not vanish with the task
            log.exception("aiomt5.supervisor.crashed", error=repr(exc))
            self._fail(exc, attempts=0)
        finally:
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
        if not first:
            self.reconnect_attempts += 1
        await self._restart_stuck()  # e.g. an initialize that outlived connect_timeout
        settings = self._settings
        connect_log.info(
            "aiomt5.connector.connect_attempt",
            attempt=attempt,
            max_attempts=limit,
            backend=self._backend.description,
            login=settings.login,
            server=settings.server,
        )
        try:
            account = await self._open_session()
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
        self._suspect = None
        self._verdict = None
        worker = self.worker
        self._last_alive = worker.answered if worker is not None else 0
        self._sessions.set_state(ConnectionState.CONNECTED, "connected" if first else "reconnected")
        return None

    # ------------------------------------------------------------------ worker and session

    async def _open_session(self) -> Any:
        """One connect attempt on a fresh worker; returns the account.

        A worker serves one session (a session's caches belong to its link): the previous one
        is retired first, waiting for a stuck call to return rather than letting two threads
        into MetaTrader5. A worker whose handshake failed is reused.
        """
        worker = self.worker
        if worker is None or worker is self._handshaken or worker.in_flight is not None:
            worker = await self._fresh_worker()
        account = await self._handshake_once(worker)
        self._handshaken = worker
        self._sessions.open(worker)
        return account

    async def _fresh_worker(self) -> Worker:
        old = self._detach_worker()
        if old is not None:
            await self._stop_worker(old, shutdown=old.in_flight is None, patient=True)
        self._backend()  # resolve now: a backend that cannot be used fails this attempt
        settings = self._settings
        worker = Worker(
            wedged_after=settings.worker_wedged_after,
            max_queued=settings.max_queued_calls,
            on_event=self._on_worker_event,
            idle_spin=settings.worker_idle_spin,
            recorder=self._recorder,
            on_failure=self.call_failed,
            send_ahead=self._backend().send_ahead,
        )
        worker.start()
        self.worker = worker
        return worker

    async def _handshake_once(self, worker: Worker) -> Any:
        timeout = self._settings.connect_timeout
        try:
            # The job holds the backend and the settings, never the connector: a forgotten
            # connector must stay collectable whatever the worker thread still references.
            job = functools.partial(handshake, self._backend().module, self._settings)
            return await worker.run("initialize", job, timeout=timeout)
        except (MT5TimeoutError, MT5OutcomeUnknownError) as exc:
            if isinstance(exc, MT5ConnectionError):
                raise  # -10005 from the terminal itself
            raise MT5IPCTimeoutError(
                f"the terminal did not finish initialize/login within connect_timeout={timeout}s",
                function="initialize",
            ) from exc

    def _detach_worker(self) -> Worker | None:
        """Take the worker away (new calls fail fast or wait) and keep its counters."""
        worker, self.worker = self.worker, None
        self._sessions.end()
        if worker is not None:
            retired = self._retired
            retired["abandoned"] += worker.abandoned
            retired["late_results"] += worker.late_results
            retired["rejected_busy"] += worker.rejected_busy
        return worker

    async def retire_worker(self, *, shutdown: bool) -> None:
        """Detach the worker now (new calls fail fast), then shut it down, shielded."""
        worker = self._detach_worker()
        if worker is not None:
            await asyncio.shield(self._stop_worker(worker, shutdown=shutdown))

    async def _stop_worker(self, worker: Worker, *, shutdown: bool, patient: bool = False) -> None:
        """Shut the session down and join the thread.

        ``patient`` (before a new session): wait for a stuck call however long it takes, so
        that no two threads are ever inside MetaTrader5; cancelling the wait (``close()``)
        leaves the thread to exit when its call returns.
        """
        if shutdown:
            try:
                module = self._backend().module
                await worker.run("shutdown", module.shutdown, timeout=_CLOSE_TIMEOUT)
            except MT5Error as exc:
                connect_log.warning("aiomt5.connector.shutdown_failed", error=str(exc))
        try:
            while not await worker.aclose(timeout=_CLOSE_TIMEOUT):
                if not patient:
                    connect_log.error(
                        "aiomt5.connector.worker_left_behind",
                        reason="a backend call is stuck; its daemon thread was abandoned",
                    )
                    return
                in_flight = worker.in_flight
                log.error(
                    "aiomt5.supervisor.waiting_for_stuck_call",
                    function=in_flight.function if in_flight else None,
                    running_for=round(in_flight.running_for, 1) if in_flight else None,
                )
        except asyncio.CancelledError:
            worker.stop_soon()
            raise

    # ------------------------------------------------------------------ decisions

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
        self._emit(ReconnectScheduled(attempt=attempt, delay=delay, error=error))

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
        sessions = self._sessions
        sessions.gave_up = error
        self._emit(ReconnectFailed(attempts=attempts, error=error))
        sessions.set_state(ConnectionState.DISCONNECTED, f"supervisor failed: {error!r}")

    async def _give_up(self, error: MT5Error, attempts: int) -> None:
        log.error("aiomt5.supervisor.gave_up", attempts=attempts, error=str(error))
        await self.retire_worker(shutdown=True)
        sessions = self._sessions
        sessions.gave_up = error
        self._emit(ReconnectFailed(attempts=attempts, error=error))
        sessions.set_state(ConnectionState.DISCONNECTED, f"reconnect gave up: {error}")

    async def _watch(self) -> MT5ConnectionError | None:
        """Apply health signals until the session must be replaced; return why (None: asked)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._reconnect_now.is_set():
                self._reconnect_now.clear()
                return None
            lost, self._lost = self._lost, None
            suspect, self._suspect = self._suspect, None
            if lost is not None or suspect is not None:
                if lost is not None and lost[1]:
                    return lost[0]
                # One failed call is not proof: MT5 reports a single failed IPC exchange with
                # the same codes as a dead pipe, and a generic failure may be the request's
                # own. Ask the terminal before deciding.
                probe = await self._probe()
                if probe.health is _Health.LOST:
                    return lost[0] if lost is not None else self._lost_by(probe)
                self._apply(probe)
                continue
            verdict, self._verdict = self._verdict, None
            if verdict is not None:
                if verdict.health is _Health.LOST:
                    return self._lost_by(verdict)
                self._apply(verdict)

    @staticmethod
    def _lost_by(verdict: _Verdict) -> MT5ConnectionError:
        assert isinstance(verdict.error, MT5ConnectionError)
        return verdict.error

    def _apply(self, verdict: _Verdict) -> None:
        sessions = self._sessions
        if verdict.health is _Health.OK:
            if sessions.state is ConnectionState.DEGRADED:
                log.info("aiomt5.supervisor.recovered")
                sessions.set_state(ConnectionState.CONNECTED, "health check passed")
        elif verdict.health is _Health.DEGRADED and sessions.state in LIVE:
            self.health_failures += 1
            log.warning("aiomt5.supervisor.health_failed", reason=verdict.reason, action="degraded")
            self._emit(HealthFailed(reason=verdict.reason, action="degraded", error=verdict.error))
            sessions.set_state(ConnectionState.DEGRADED, verdict.reason)

    async def _recover(self, cause: MT5ConnectionError | None) -> bool:
        """Replace the session; False if the supervisor gave up."""
        sessions = self._sessions
        started = time.monotonic()
        if cause is not None:
            self.health_failures += 1
            reason = f"lost the terminal: {cause}"
            log.warning("aiomt5.supervisor.connection_lost", error=str(cause))
            self._emit(HealthFailed(reason=reason, action="reconnect", error=cause))
        else:
            reason = "reconnect()"
        sessions.cause = cause
        sessions.end()
        sessions.set_state(ConnectionState.RECONNECTING, reason)
        attempts = await self._establish(first=False)
        if not attempts:
            return False
        downtime = time.monotonic() - started
        log.info("aiomt5.supervisor.reconnected", attempts=attempts, downtime=round(downtime, 3))
        self._emit(Reconnected(attempts=attempts, downtime=downtime, cause=cause))
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
        while True:
            await asyncio.sleep(interval)
            verdict = await self._tick()
            if verdict.health is _Health.SKIPPED:
                continue
            if verdict.health is _Health.LOST:
                self._lost = (self._lost_by(verdict), True)
            else:
                self._verdict = verdict
            self._wake.set()

    async def _tick(self) -> _Verdict:
        worker = self.worker
        alive = worker.answered if worker is not None else 0
        if self._sessions.state is ConnectionState.CONNECTED and alive > self._last_alive:
            # A call answered since the last tick: proof of life, no ping needed. (Not while
            # DEGRADED: only a check can tell that the trade server is back.)
            self._last_alive = alive
            return _Verdict(_Health.SKIPPED, "proof of life")
        return await self._probe()

    async def _probe(self) -> _Verdict:
        """Ping the terminal once: pipe, trade server, account, ``ping_last``."""
        worker = self.worker
        if worker is None or self._sessions.state not in LIVE:
            return _Verdict(_Health.SKIPPED, "not connected")
        in_flight = worker.in_flight
        if in_flight is not None:
            if worker.state is WorkerState.WEDGED:
                reason = (
                    f"the terminal is stuck in {in_flight.function}() for "
                    f"{in_flight.running_for:.1f}s"
                )
                if self._can_restart():  # a child process: replace it
                    error = MT5WorkerBusyError(reason, function=in_flight.function)
                    return _Verdict(_Health.LOST, reason, error)
                return _Verdict(_Health.DEGRADED, reason)
            # A ping queued behind a long call would time out and look like a dead terminal;
            # the call's own outcome will tell. Check again next time.
            return _Verdict(_Health.SKIPPED, f"{in_flight.function}() in flight")
        self.health_checks += 1
        job = health_job(self._backend().module)
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
            self._last_alive = worker.answered
        if not terminal.connected:
            return _Verdict(_Health.DEGRADED, "the terminal is not connected to the trade server")
        if account is None:
            return _Verdict(_Health.DEGRADED, "account_info() failed")
        ping = terminal.ping_last
        self.ping_ms = ping / 1000 if ping is not None else None  # MT5 says microseconds
        return _Verdict(_Health.OK)
