"""``AsyncMT5Connector``: the typed async API over one MetaTrader 5 terminal.

Every backend call goes through the connector's ``Worker`` (one dedicated thread). A call that
returns MT5's failure value (``None``/``False``) is turned into an exception *in the same worker
job* that made it, by reading ``last_error()`` right away: no other call can reset it in between.

Lifecycle (``ConnectionState``): ``DISCONNECTED`` → ``connect()`` → ``CONNECTING`` →
``CONNECTED``; ``disconnect()`` → ``DISCONNECTED`` (connect again at will); ``close()`` (or the
end of ``async with``) → ``CLOSED``, which is final. A failed or cancelled ``connect()`` cleans up
(shielded) and leaves ``DISCONNECTED``. ``connect()`` starts the ``Supervisor`` task, which makes
the connect attempts and then owns the session: ``DEGRADED``, ``RECONNECTING`` and back (see
``_supervisor``).
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

from ._backends import Backend, ResolvedBackend, backend_function, resolve_backend
from ._backends._handshake import handshake
from ._core._arguments import check_symbol
from ._core._errors import (
    MT5ClosedError,
    MT5ConfigurationError,
    MT5ConnectionError,
    MT5Error,
    MT5InvalidArgumentError,
    MT5IPCTimeoutError,
    MT5NotConnectedError,
    MT5OutcomeUnknownError,
    MT5SymbolNotFoundError,
    MT5TimeoutError,
    error_from_last_error,
    summarize_call,
)
from ._core._events import ConnectorEvent, EventHook, EventStream, StateChanged
from ._core._log import get_logger
from ._core._stats import CallRecorder, ConnectionStats, HealthReport
from ._core._supervisor import Supervisor
from ._core._types import USE_DEFAULT, ConnectionState, MT5Struct, TimeoutArg, UseDefault
from ._core._worker import Worker, plain_call
from ._market._symbols import pick_symbol
from ._market._timeframe import Timeframe, TimeframeLike
from ._settings import MT5Settings
from ._trading._api import TradingMethods

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ._market._frames import FrameEngine
    from ._market._history import ProgressCallback, TickFlagsLike
    from ._market._streams import BarStream, Sleep, TickStream

__all__ = ["AsyncMT5Connector"]

log = get_logger("aiomt5.connector")
worker_log = get_logger("aiomt5.worker")

_LIVE: Final = frozenset({ConnectionState.CONNECTED, ConnectionState.DEGRADED})
# Owned by connect()/disconnect(): calling them behind the connector's back desyncs its state.
_LIFECYCLE_FUNCTIONS: Final = frozenset({"initialize", "shutdown"})
# MT5 documents these as never failing; every other function fails with None or False.
_NEVER_FAILS: Final = frozenset({"last_error", "shutdown"})
_CLOSE_TIMEOUT: Final = 5.0


def _failed(result: Any) -> bool:
    return result is None or result is False


def _version_failed(result: Any) -> bool:
    # version() answers (0, 0, "") with last_error set; it never returns None.
    return not result or result[0] == 0


def _weak_emitter(connector: AsyncMT5Connector) -> Callable[[ConnectorEvent], None]:
    """The worker's event callback, holding the connector weakly.

    The worker thread must not keep a forgotten connector alive: then it could never be
    collected, warned about and stopped.
    """
    ref = weakref.ref(connector)

    def emit(event: ConnectorEvent) -> None:
        target = ref()
        if target is not None:
            target._emit(event)

    return emit


class AsyncMT5Connector(TradingMethods):
    """An asyncio connection to one MetaTrader 5 terminal.

    Args:
        settings: The configuration (default: ``MT5Settings()``, i.e. ``MT5_*`` variables and
            ``.env``).
        backend: What to call: ``None`` (``settings.backend``), a name or URL like
            ``settings.backend``, the ``MetaTrader5`` module, an ``aiomt5.sim.SimTerminal``, or
            any object with the same functions.
        event_hooks: Callables receiving every ``ConnectorEvent`` (see ``add_event_hook``).

    Example:
        ```python
        async with AsyncMT5Connector(MT5Settings(backend="sim")) as mt5:
            info = await mt5.get_account_info()
            rates = await mt5.get_rates("EURUSD", "H1", count=100)
        ```
    """

    _instance: ClassVar[AsyncMT5Connector | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        settings: MT5Settings | None = None,
        *,
        backend: object | None = None,
        event_hooks: Iterable[EventHook] = (),
    ) -> None:
        self._settings = settings if settings is not None else MT5Settings()
        if backend is not None and not isinstance(backend, str):
            # An object is checked now; names are resolved on connect (imports may fail).
            self._resolved: ResolvedBackend | None = resolve_backend(backend, self._settings)
        else:
            self._resolved = None
        self._backend_spec = backend
        self._hooks: list[EventHook] = list(event_hooks)
        self._state = ConnectionState.DISCONNECTED
        self._lifecycle = asyncio.Lock()
        self._worker: Worker | None = None
        self._connecting: asyncio.Task[Any] | None = None
        self._invokers: dict[str, Callable[..., Any]] = {}
        self._recorder = CallRecorder()
        self._supervisor: Supervisor | None = None
        self._session_worker: Worker | None = None
        self._pending_error: BaseException | None = None
        self._last_connection_error: BaseException | None = None
        self._state_changed = asyncio.Event()
        self._state_entered = time.monotonic()
        self._time_in_state: dict[str, float] = {}
        self._connects = 0
        self._connected_at: float | None = None
        self._connected_since: datetime | None = None
        self._symbol_cache: dict[str, tuple[str, float]] = {}
        self._names_cache: tuple[tuple[str, ...], float] | None = None
        # Counters of workers from earlier connections, so stats survive reconnects.
        self._retired = {
            "abandoned": 0,
            "late_results": 0,
            "rejected_busy": 0,
            "reconnect_attempts": 0,
            "health_checks": 0,
            "health_failures": 0,
        }

    # ------------------------------------------------------------------ singleton

    @classmethod
    def get_instance(cls, settings: MT5Settings | None = None) -> AsyncMT5Connector:
        """The process-wide connector (MT5 allows one terminal connection per process).

        Creates it on first use (and again after it was closed).

        Raises:
            MT5ConfigurationError: A live instance exists with different settings.
        """
        with cls._instance_lock:
            instance = cls._instance
            if instance is not None and instance.state is not ConnectionState.CLOSED:
                if settings is not None and settings != instance.settings:
                    raise MT5ConfigurationError(
                        "get_instance() was asked for different settings while a connector is "
                        "live; close it (await connector.close()) or call reset_instance() first"
                    )
                return instance
            instance = cls(settings)
            cls._instance = instance
            return instance

    @classmethod
    def reset_instance(cls) -> None:
        """Forget the process-wide connector; a live one is closed abruptly (no ``shutdown``).

        Meant for tests and for recovery; queued calls fail with ``MT5ClosedError``.
        """
        with cls._instance_lock:
            instance, cls._instance = cls._instance, None
        if instance is not None:
            instance._abort("reset_instance()")

    # ------------------------------------------------------------------ state

    @property
    def settings(self) -> MT5Settings:
        """The settings this connector was made with."""
        return self._settings

    @property
    def state(self) -> ConnectionState:
        """Where the connector is in its life."""
        return self._state

    @property
    def backend(self) -> Any:
        """The backend object once resolved (the MetaTrader5 module, a SimTerminal...), or None."""
        return self._resolved.module if self._resolved is not None else None

    @property
    def worker(self) -> Worker | None:
        """The worker of the current connection (None when not connected)."""
        return self._worker

    def is_connected(self) -> bool:
        """True while calls can be made (CONNECTED or DEGRADED)."""
        return self._state in _LIVE

    def add_event_hook(self, hook: EventHook) -> None:
        """Call ``hook(event)`` for every event (on the loop thread; errors are logged)."""
        self._hooks.append(hook)

    def remove_event_hook(self, hook: EventHook) -> None:
        """Stop calling ``hook``."""
        self._hooks.remove(hook)

    def _emit(self, event: ConnectorEvent) -> None:
        for hook in list(self._hooks):
            try:
                hook(event)
            except Exception:  # a broken hook must not break the code that emitted
                log.exception("aiomt5.connector.event_hook_failed", kind=event.kind)

    def events(self, maxsize: int = 1000) -> EventStream:
        """Every event from now on, as an async iterator: ``async for event in mt5.events():``.

        At most ``maxsize`` events wait to be read: when a slow reader lets more pile up, the
        oldest are dropped (counted in ``stream.dropped``) so the connector never blocks on
        its readers. Iteration ends after the connector closes; ``aclose()`` (or ``async
        with``, or dropping the stream) stops the subscription.
        """
        stream = EventStream(maxsize)
        self._hooks.append(stream.hook(self._hooks))
        return stream

    def _set_state(self, new: ConnectionState, reason: str) -> None:
        old = self._state
        if old is new:
            return
        now = time.monotonic()
        times = self._time_in_state
        times[old.value] = times.get(old.value, 0.0) + now - self._state_entered
        self._state_entered = now
        self._state = new
        # Wake every waiter of the old state at once; later waiters take the new event.
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()
        log.info("aiomt5.connector.state_changed", old=old.value, new=new.value, reason=reason)
        self._emit(StateChanged(old=old, new=new, reason=reason))

    def _check_open(self) -> None:
        if self._state is ConnectionState.CLOSED:
            raise MT5ClosedError(
                "this connector is closed; create a new one (or use get_instance())"
            )

    def __repr__(self) -> str:
        backend = self._resolved.description if self._resolved else self._settings.backend
        login = f" login={self._settings.login}" if self._settings.login else ""
        return f"<AsyncMT5Connector state={self._state.value} backend={backend}{login}>"

    def __del__(self) -> None:
        supervisor = getattr(self, "_supervisor", None)
        if supervisor is not None:
            supervisor.cancel_threadsafe()
        worker = getattr(self, "_worker", None)
        if worker is not None and not worker.closed:
            warnings.warn(
                f"unclosed {self!r}: use `async with` or await close()",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )
            worker.stop_soon()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> AsyncMT5Connector:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Start the supervisor, which starts the worker, initializes the terminal and logs in.

        Tries ``max_retries`` times (None: until cancelled), waiting an exponential, capped,
        jittered delay between attempts (zero in testing mode). Rejected credentials are not
        retried. Idempotent while connected or reconnecting. Once connected, the supervisor
        keeps the session alive (health checks, reconnects). On failure or cancellation
        everything is cleaned up and the state is ``DISCONNECTED``.

        Raises:
            MT5LoginError: The account was rejected.
            MT5ConnectionError: The terminal could not be reached (after all attempts).
            MT5NotAvailableError: The backend cannot run here.
            MT5ClosedError: The connector is closed.
        """
        self._check_open()
        async with self._lifecycle:
            self._check_open()
            if self._state in _LIVE or self._state is ConnectionState.RECONNECTING:
                return
            if self._supervisor is not None:
                await self._shut_down()  # one that gave up: keep its counters, end its task
            self._pending_error = None
            self._set_state(ConnectionState.CONNECTING, "connect()")
            self._connecting = asyncio.current_task()
            supervisor = self._supervisor = Supervisor(self)
            self._recorder.on_connection_error = supervisor.connection_lost
            try:
                await supervisor.start()
            except BaseException:
                self._set_state(ConnectionState.DISCONNECTED, "connect failed")
                await self._shut_down()
                raise
            finally:
                self._connecting = None

    async def reconnect(self) -> None:
        """Start a fresh session now and wait until it is up.

        While reconnecting, this skips the backoff wait; while connected, it replaces the
        session (e.g. after changing the terminal); while disconnected, it connects.

        Raises:
            MT5Error: Why the supervisor gave up (see ``connect()``).
            MT5ClosedError: The connector is closed.
        """
        self._check_open()
        supervisor = self._supervisor
        if supervisor is None or not supervisor.running:
            await self.connect()
            return
        sessions = self._connects
        supervisor.request_reconnect()
        while self._connects == sessions or self._state not in _LIVE:
            self._check_open()
            if self._state is ConnectionState.DISCONNECTED:
                raise self._take_pending_error("reconnect")
            await self._state_changed.wait()

    async def _open_session(self) -> Any:
        """One connect attempt on a fresh worker (the supervisor's); returns the account.

        A worker serves one session (caches such as ``maxbars`` are kept per worker): the
        previous one is retired first, waiting for a stuck call to return rather than letting
        two threads into MetaTrader5. A worker whose handshake failed is reused.
        """
        worker = self._worker
        if worker is None or worker is self._session_worker or worker.in_flight is not None:
            worker = await self._fresh_worker()
        self.clear_symbol_cache()
        account = await self._handshake_once(worker)
        self._session_worker = worker
        self._connects += 1
        self._connected_at = time.perf_counter()
        self._connected_since = datetime.now(UTC)
        return account

    async def _fresh_worker(self) -> Worker:
        old = self._detach_worker()
        if old is not None:
            await self._stop_worker(old, shutdown=old.in_flight is None, patient=True)
        if self._resolved is None:
            self._resolved = resolve_backend(self._backend_spec, self._settings)
        settings = self._settings
        worker = Worker(
            wedged_after=settings.worker_wedged_after,
            max_queued=settings.max_queued_calls,
            on_event=_weak_emitter(self),
            idle_spin=settings.worker_idle_spin,
            recorder=self._recorder,
            send_ahead=self._resolved.send_ahead,
        )
        worker.start()
        self._worker = worker
        return worker

    async def _handshake_once(self, worker: Worker) -> Any:
        timeout = self._settings.connect_timeout
        try:
            # The job holds the backend and the settings, never the connector: a forgotten
            # connector must stay collectable whatever the worker thread still references.
            job = functools.partial(handshake, self._resolved_backend(), self._settings)
            return await worker.run("initialize", job, timeout=timeout)
        except (MT5TimeoutError, MT5OutcomeUnknownError) as exc:
            if isinstance(exc, MT5ConnectionError):
                raise  # -10005 from the terminal itself
            raise MT5IPCTimeoutError(
                f"the terminal did not finish initialize/login within connect_timeout={timeout}s",
                function="initialize",
            ) from exc

    def _resolved_backend(self) -> Backend:
        assert self._resolved is not None  # resolved by _open() before any worker call
        return self._resolved.module

    @property
    def _description(self) -> str:
        return self._resolved.description if self._resolved else self._settings.backend

    async def disconnect(self) -> None:
        """Shut the terminal session down and stop the worker; ``connect()`` may follow.

        Calls still running finish; new calls fail with ``MT5NotConnectedError``. A
        ``connect()`` still retrying in another task is cancelled.
        """
        self._interrupt_connect("disconnect()")
        async with self._lifecycle:
            if self._state is ConnectionState.CLOSED:
                return
            self._set_state(ConnectionState.DISCONNECTED, "disconnect()")
            await self._shut_down()

    async def close(self) -> None:
        """Disconnect for good: the state becomes ``CLOSED`` and the connector cannot reopen.

        A ``connect()`` still retrying in another task is cancelled.
        """
        self._interrupt_connect("close()")
        async with self._lifecycle:
            if self._state is ConnectionState.CLOSED:
                return
            self._set_state(ConnectionState.CLOSED, "close()")
            await self._shut_down()
            resolved = self._resolved
            if resolved is not None and resolved.close is not None:
                resolved.close()  # what resolving built for this connector: a child process

    aclose = close

    def _interrupt_connect(self, reason: str) -> None:
        # A connect() may retry for a long time (max_retries=None: forever); shutting down must
        # not wait for it. It cleans up on the cancellation, then the lock is ours.
        task = self._connecting
        if task is not None and task is not asyncio.current_task():
            task.cancel(f"aiomt5: {reason} while connecting")

    async def _shut_down(self) -> None:
        """Stop the supervisor (no more reconnects), then the worker; the state is already set."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()  # before any await: it must not act on the new state
            self._recorder.on_connection_error = None
            retired = self._retired
            retired["reconnect_attempts"] += supervisor.reconnect_attempts
            retired["health_checks"] += supervisor.health_checks
            retired["health_failures"] += supervisor.health_failures
            await asyncio.shield(supervisor.stop())
        await self._retire_worker(shutdown=True)

    def _detach_worker(self) -> Worker | None:
        """Take the worker away (new calls fail fast or wait) and keep its counters."""
        worker, self._worker = self._worker, None
        self._connected_at = None
        self._connected_since = None
        if worker is not None:
            self._retired["abandoned"] += worker.abandoned
            self._retired["late_results"] += worker.late_results
            self._retired["rejected_busy"] += worker.rejected_busy
        return worker

    async def _retire_worker(self, *, shutdown: bool) -> None:
        """Detach the worker now (new calls fail fast), then shut it down, shielded."""
        worker = self._detach_worker()
        if worker is not None:
            await asyncio.shield(self._stop_worker(worker, shutdown=shutdown))

    async def _stop_worker(self, worker: Worker, *, shutdown: bool, patient: bool = False) -> None:
        """Shut the session down and join the thread.

        ``patient`` (the supervisor, before a new session): wait for a stuck call however long
        it takes, so that no two threads are ever inside MetaTrader5; cancelling the wait
        (``close()``) leaves the thread to exit when its call returns.
        """
        if shutdown and self._resolved is not None:
            try:
                await worker.run("shutdown", self._resolved.module.shutdown, timeout=_CLOSE_TIMEOUT)
            except MT5Error as exc:
                log.warning("aiomt5.connector.shutdown_failed", error=str(exc))
        try:
            while not await worker.aclose(timeout=_CLOSE_TIMEOUT):
                if not patient:
                    log.error(
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

    def _abort(self, reason: str) -> None:
        """Synchronous hard stop (no shutdown call): for reset_instance() and finalizers."""
        worker, self._worker = self._worker, None
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel_threadsafe()
        self._state = ConnectionState.CLOSED
        log.info("aiomt5.connector.aborted", reason=reason)
        if worker is not None:
            worker.close(timeout=1.0)

    # ------------------------------------------------------------------ calls

    def _live_worker(self, function: str) -> Worker | None:
        """The worker to call now, or None when the call should wait for a reconnect."""
        worker = self._worker
        state = self._state
        if worker is not None and state in _LIVE:
            return worker
        if state is ConnectionState.RECONNECTING:
            if self._settings.wait_for_reconnect:
                return None
            raise MT5NotConnectedError(
                "the connector is reconnecting (the call was not sent); retry later, or set "
                "wait_for_reconnect=True to wait for the connection instead",
                function=function,
            ) from self._last_connection_error
        if state is ConnectionState.CLOSED:
            raise MT5ClosedError("this connector is closed; create a new one", function=function)
        raise self._take_pending_error(function)

    def _take_pending_error(self, function: str) -> BaseException:
        """The supervisor's unreported failure (once), else a plain "not connected"."""
        error, self._pending_error = self._pending_error, None
        if error is not None:
            return error
        return MT5NotConnectedError(
            f"the connector is {self._state.value}: await connector.connect() (or use "
            "`async with`) before calling",
            function=function,
        )

    async def _run_when_reconnected(
        self,
        function: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        timeout: float | None,
    ) -> Any:
        """Wait (within the call's own timeout) for the supervisor to reconnect, then call."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(timeout) as scope:
                worker = self._live_worker(function)
                while worker is None:
                    await self._state_changed.wait()
                    worker = self._live_worker(function)
        except TimeoutError:
            if not scope.expired():
                raise  # an MT5IPCTimeoutError the supervisor gave up with
            raise MT5NotConnectedError(
                f"still reconnecting after waiting {timeout}s (the call's timeout); it was not "
                "sent",
                function=function,
            ) from self._last_connection_error
        remaining = None if timeout is None else timeout - (loop.time() - started)
        return await worker.run(function, fn, args, kwargs, timeout=remaining)

    def _invoker(self, function: str) -> Callable[..., Any]:
        invoker = self._invokers.get(function)
        if invoker is None:
            invoker = self._invokers[function] = self._make_invoker(function)
        return invoker

    def _make_invoker(self, function: str) -> Callable[..., Any]:
        assert self._resolved is not None  # a live worker implies a resolved backend
        backend = self._resolved.module
        method = backend_function(backend, function)
        if method is None:
            known = [n for n in dir(backend) if not n.startswith("_")]
            close = difflib.get_close_matches(function, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise MT5InvalidArgumentError(
                f"the backend has no function {function!r}{hint}", function=function
            )
        if function in _NEVER_FAILS:
            return method
        last_error = backend.last_error

        failed = _version_failed if function == "version" else _failed

        def invoke(*args: Any, **kwargs: Any) -> Any:
            # Runs on the worker thread. last_error() is read in this same job, right after the
            # call: nothing else can run on the terminal in between and reset it.
            result = method(*args, **kwargs)
            if failed(result):
                code, message = last_error()
                error = error_from_last_error(
                    function, code, message, args_summary=summarize_call(function, args, kwargs)
                )
                level = logging.WARNING if isinstance(error, MT5ConnectionError) else logging.DEBUG
                if worker_log.enabled(level):
                    emit = worker_log.warning if level == logging.WARNING else worker_log.debug
                    emit(
                        "aiomt5.worker.call_failed",
                        function=function,
                        code=code,
                        message=message,
                        error=type(error).__name__,
                    )
                raise error
            return result

        return plain_call(invoke)

    def _run(
        self,
        function: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> Coroutine[Any, Any, Any]:
        """The worker call, as a coroutine for the caller to await (no extra frame on the way)."""
        worker = self._live_worker(function)
        seconds = self._settings.call_timeout if isinstance(timeout, UseDefault) else timeout
        if worker is None:
            return self._run_when_reconnected(function, fn, args, kwargs, seconds)
        return worker.run(function, fn, args, kwargs, timeout=seconds)

    async def call(
        self, function: str, /, *args: Any, timeout: TimeoutArg = USE_DEFAULT, **kwargs: Any
    ) -> Any:
        """Call any MetaTrader5 function by name, on the worker thread.

        Arguments go through unchanged (mind MT5's positional-only functions). A ``None`` or
        ``False`` result becomes the matching ``MT5Error``. ``initialize`` and ``shutdown``
        belong to ``connect()``/``disconnect()`` and are refused here.

        Args:
            function: The MetaTrader5 function name (``"symbol_info_tick"``...).
            *args: Its positional arguments.
            timeout: Seconds; ``None`` waits forever; default ``settings.call_timeout``.
            **kwargs: Its keyword arguments.

        Raises:
            MT5Error: The mapped failure (see the exception tree), ``MT5TimeoutError``,
                ``MT5OutcomeUnknownError`` for writes that timed out mid-call, or
                ``MT5NotConnectedError``.
        """
        if function in _LIFECYCLE_FUNCTIONS:
            raise MT5InvalidArgumentError(
                f"{function}() is managed by the connector: use connect()/disconnect()",
                function=function,
            )
        worker = self._live_worker(function)
        invoker = self._invokers.get(function) or self._invoker(function)
        seconds = self._settings.call_timeout if isinstance(timeout, UseDefault) else timeout
        if worker is None:
            return await self._run_when_reconnected(
                function, invoker, args, kwargs or None, seconds
            )
        return await worker.run(function, invoker, args, kwargs or None, timeout=seconds)

    # ------------------------------------------------------------------ typed API

    async def get_terminal_info(self, *, timeout: TimeoutArg = USE_DEFAULT) -> MT5Struct:
        """``terminal_info()``: the terminal's state and settings."""
        info: MT5Struct = await self._run(
            "terminal_info", self._invoker_live("terminal_info"), timeout=timeout
        )
        return info

    async def get_account_info(self, *, timeout: TimeoutArg = USE_DEFAULT) -> MT5Struct:
        """``account_info()``: the logged-in account (balance, equity, leverage...)."""
        info: MT5Struct = await self._run(
            "account_info", self._invoker_live("account_info"), timeout=timeout
        )
        return info

    async def get_symbol_info(self, symbol: str, *, timeout: TimeoutArg = USE_DEFAULT) -> MT5Struct:
        """``symbol_info(symbol)``: everything about one symbol.

        Raises:
            MT5SymbolNotFoundError: The server has no such symbol (try ``find_symbol``).
        """
        check_symbol(symbol)
        info: MT5Struct = await self._run(
            "symbol_info", self._invoker_live("symbol_info"), (symbol,), timeout=timeout
        )
        return info

    async def get_available_symbols(
        self, group: str | None = None, *, timeout: TimeoutArg = USE_DEFAULT
    ) -> list[str]:
        """Names of the symbols the server offers, optionally filtered by an MT5 ``group``.

        Args:
            group: MT5's filter syntax, e.g. ``"*USD*,!*EUR*"`` (None: all).
            timeout: Seconds, ``None`` or the default.
        """
        if group is not None and not isinstance(group, str):
            raise MT5InvalidArgumentError(f"group must be a str or None, got {group!r}")
        names: list[str] = await self._run(
            "symbols_get",
            self._symbol_names_job(),
            (group,),
            timeout=timeout,
        )
        return names

    def _invoker_live(self, function: str) -> Callable[..., Any]:
        self._live_worker(function)
        return self._invoker(function)

    def _symbol_names_job(self) -> Callable[[str | None], list[str]]:
        symbols_get = self._invoker_live("symbols_get")

        def names(group: str | None) -> list[str]:
            # Names are extracted on the worker thread: thousands of structs stay off the loop.
            found = symbols_get(group=group) if group is not None else symbols_get()
            return [symbol.name for symbol in found]

        return names

    def clear_symbol_cache(self) -> None:
        """Forget ``find_symbol`` answers (done on every connect)."""
        self._symbol_cache.clear()
        self._names_cache = None

    async def find_symbol(self, name: str, *, timeout: TimeoutArg = USE_DEFAULT) -> str:
        """The server's name for ``name``: exact first, then a unique broker-decorated form.

        ``"EURUSD"`` finds ``"EURUSD.m"``, ``"EURUSDm"`` or ``"#EURUSD"`` on brokers that
        decorate names. Answers are cached for ``settings.symbol_cache_ttl`` seconds and
        forgotten on reconnect.

        Raises:
            MT5SymbolNotFoundError: No such symbol, or several candidates (listed in the error
                and in ``.candidates``).
        """
        check_symbol(name)
        ttl = self._settings.symbol_cache_ttl
        now = time.monotonic()
        cached = self._symbol_cache.get(name)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            info = await self.get_symbol_info(name, timeout=timeout)
            resolved: str = info.name
        except MT5SymbolNotFoundError:
            resolved = pick_symbol(name, await self._all_names(now, ttl, timeout))
        if ttl > 0:
            self._symbol_cache[name] = (resolved, now + ttl)
        return resolved

    async def _all_names(self, now: float, ttl: float, timeout: TimeoutArg) -> tuple[str, ...]:
        cached = self._names_cache
        if cached is not None and cached[1] > now:
            return cached[0]
        names = tuple(await self.get_available_symbols(timeout=timeout))
        if ttl > 0:
            self._names_cache = (names, now + ttl)
        return names

    async def get_rates(
        self,
        symbol: str,
        timeframe: TimeframeLike,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        *,
        count: int | None = None,
        start_pos: int | None = None,
        closed_only: bool = False,
        progress: ProgressCallback | None = None,
        page_size: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> npt.NDArray[np.void]:
        """Bars of ``symbol`` as MetaTrader5's packed array, oldest first, any size of request.

        Requests above the terminal's ``maxbars`` are paged transparently (one worker call per
        page, so other calls interleave); pages join without duplicate or missing rows. Forms:

        * ``date_from`` and ``date_to``: bars opened in that range; ``date_from`` alone: up to now;
        * ``date_from`` and ``count``: ``count`` bars ending at ``date_from``;
        * ``count`` (and optionally ``start_pos``, 0 = the current bar): the latest bars.

        The symbol is resolved (``find_symbol``) and selected in the Market Watch first.

        **The forming bar.** Like MetaTrader5, the result includes the newest bar while it is
        still forming (its close moves until its period ends). ``closed_only=True`` leaves it
        out; ``stream_bars(..., since=<last bar's time>)`` then continues with every later bar
        once closed — no bar twice, none missing.

        Args:
            symbol: A symbol name (broker decorations are resolved).
            timeframe: ``Timeframe.H1``, ``"H1"`` or MT5's integer.
            date_from: Aware datetime (naive ones are refused: MT5 would read local time).
            date_to: Aware datetime.
            count: Number of bars.
            start_pos: Bars back from the current one.
            closed_only: Leave out the bar still forming (see above); ``count`` then counts
                closed bars.
            progress: Called after each page with a ``FetchProgress``.
            page_size: Bars per request (default and maximum: ``maxbars - 1``).
            timeout: Per request: seconds, ``None`` or the default.

        Raises:
            MT5InvalidArgumentError: An impossible combination, a naive datetime, a bad count.
            MT5SymbolNotFoundError: No such symbol.
        """
        from ._market._history import fetch_rates

        # With closed_only, one bar more is asked for so ``count`` closed bars remain.
        extra = 1 if closed_only and count is not None and date_from is None else 0
        rows = await fetch_rates(
            self, symbol, timeframe, date_from, date_to,
            count=None if count is None else count + extra, start_pos=start_pos,
            progress=progress, page_size=page_size, timeout=timeout,
        )  # fmt: skip
        if not closed_only:
            return rows
        from ._market._forming import drop_forming

        name = await self.find_symbol(symbol, timeout=timeout)
        closed = await drop_forming(self, name, Timeframe.parse(timeframe), rows, timeout)
        if extra and count is not None and len(closed) > count:
            return closed[-count:]
        return closed

    async def get_ticks(
        self,
        symbol: str,
        date_from: datetime,
        date_to: datetime | None = None,
        *,
        count: int | None = None,
        flags: TickFlagsLike = "all",
        progress: ProgressCallback | None = None,
        page_size: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> npt.NDArray[np.void]:
        """Ticks from ``date_from`` (to ``date_to``, or the first ``count``), paged by time.

        ``time_msc`` order is kept and no tick is repeated or lost at page seams. ``flags`` is
        ``"all"``, ``"info"`` (bid/ask changes), ``"trade"`` (last/volume changes) or MT5's int.
        """
        from ._market._history import fetch_ticks

        return await fetch_ticks(
            self, symbol, date_from, date_to, count=count, flags=flags, progress=progress,
            page_size=page_size, timeout=timeout,
        )  # fmt: skip

    async def get_rates_frame(
        self,
        symbol: str,
        timeframe: TimeframeLike,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        *,
        count: int | None = None,
        start_pos: int | None = None,
        closed_only: bool = False,
        engine: FrameEngine | None = None,
        progress: ProgressCallback | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> Any:
        """``get_rates`` as a pandas (default if installed) or polars frame with UTC times."""
        from ._market._frames import fetch_rates_frame, rates_to_frame

        if closed_only:
            rows = await self.get_rates(
                symbol, timeframe, date_from, date_to, count=count, start_pos=start_pos,
                closed_only=True, progress=progress, timeout=timeout,
            )  # fmt: skip
            return rates_to_frame(rows, engine)

        return await fetch_rates_frame(
            self, symbol, timeframe, date_from, date_to, count=count, start_pos=start_pos,
            engine=engine, progress=progress, timeout=timeout,
        )  # fmt: skip

    async def get_ticks_frame(
        self,
        symbol: str,
        date_from: datetime,
        date_to: datetime | None = None,
        *,
        count: int | None = None,
        flags: TickFlagsLike = "all",
        engine: FrameEngine | None = None,
        progress: ProgressCallback | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> Any:
        """``get_ticks`` as a pandas (default if installed) or polars frame with UTC times."""
        from ._market._frames import fetch_ticks_frame

        return await fetch_ticks_frame(
            self, symbol, date_from, date_to, count=count, flags=flags, engine=engine,
            progress=progress, timeout=timeout,
        )  # fmt: skip

    def stream_ticks(
        self,
        *symbols: str,
        poll_interval: float = 0.25,
        buffer: int = 10_000,
        flags: TickFlagsLike = "all",
        since: datetime | None = None,
        retry_interval: float | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> TickStream:
        """Live ticks of ``symbols``: ``async for tick in connector.stream_ticks("EURUSD"):``.

        Each tick once, in time order, across reconnects (a ``time_msc`` cursor per symbol); at
        most ``buffer`` ticks are held, and a slow consumer lags instead of losing ticks.
        Breaking out of the loop (or ``aclose()``) stops the polling.
        """
        from ._market._streams import stream_ticks

        return stream_ticks(
            self, *symbols, poll_interval=poll_interval, buffer=buffer, flags=flags, since=since,
            retry_interval=retry_interval, sleep=sleep,
        )  # fmt: skip

    def stream_bars(
        self,
        symbol: str,
        timeframe: TimeframeLike,
        *,
        poll_interval: float = 1.0,
        retry_interval: float | None = None,
        sleep: Sleep = asyncio.sleep,
        since: datetime | None = None,
    ) -> BarStream:
        """Each bar of ``symbol`` that closes from now on, exactly once, oldest first.

        ``since`` (aware datetime): every bar opened after it instead, once closed — pass the
        last bar of ``get_rates(..., closed_only=True)`` to continue that download exactly.
        """
        from ._market._streams import stream_bars

        return stream_bars(
            self, symbol, timeframe, poll_interval=poll_interval, retry_interval=retry_interval,
            sleep=sleep, since=since,
        )  # fmt: skip

    # ------------------------------------------------------------------ health and stats

    async def health_check(self, *, timeout: TimeoutArg = USE_DEFAULT) -> HealthReport:
        """Check the pipe, the trade server link, and the account, in one worker job.

        Never raises for terminal trouble: the report says what is wrong (``ok=False``).

        Raises:
            MT5ClosedError: The connector is closed.
        """
        self._check_open()
        started = time.perf_counter()
        try:
            terminal, account = await self._run(
                "terminal_info", self._health_job(), timeout=timeout
            )
        except MT5ClosedError:
            raise
        except MT5Error as exc:
            return HealthReport(
                ok=False,
                terminal_connected=False,
                trade_allowed=False,
                account_reachable=False,
                ping_ms=None,
                login=None,
                latency_ms=(time.perf_counter() - started) * 1000,
                error=str(exc),
                checked_at=datetime.now(UTC),
            )
        connected = bool(terminal.connected)
        reachable = account is not None
        problems = []
        if not connected:
            problems.append("terminal is not connected to the trade server")
        if not reachable:
            problems.append("account_info() failed")
        return HealthReport(
            ok=not problems,
            terminal_connected=connected,
            trade_allowed=bool(terminal.trade_allowed),
            account_reachable=reachable,
            ping_ms=terminal.ping_last / 1000 if terminal.ping_last is not None else None,
            login=account.login if reachable else None,
            latency_ms=(time.perf_counter() - started) * 1000,
            error="; ".join(problems) or None,
            checked_at=datetime.now(UTC),
        )

    def _health_job(self) -> Callable[[], tuple[Any, Any]]:
        terminal_info = self._invoker_live("terminal_info")
        assert self._resolved is not None
        account_info = self._resolved.module.account_info

        def check() -> tuple[Any, Any]:
            # The pipe must answer terminal_info (else raise); the account may legitimately
            # be unreachable while the trade server is down, so its None is reported, not raised.
            return terminal_info(), account_info()

        return check

    def get_connection_stats(self) -> ConnectionStats:
        """A snapshot of counters, latencies and state (sync, cheap)."""
        recorder = self._recorder
        worker = self._worker
        p50, p99 = recorder.percentiles_ms()
        in_flight = worker.in_flight if worker is not None else None
        retired = self._retired
        supervisor = self._supervisor
        times = dict(self._time_in_state)
        state = self._state.value
        times[state] = times.get(state, 0.0) + time.monotonic() - self._state_entered
        return ConnectionStats(
            state=self._state,
            backend=self._description,
            connected_since=self._connected_since,
            uptime_seconds=(
                time.perf_counter() - self._connected_at if self._connected_at is not None else 0.0
            ),
            connects=self._connects,
            reconnects=max(self._connects - 1, 0),
            calls=recorder.calls,
            failures=recorder.failures,
            timeouts=recorder.timeouts,
            outcome_unknown=recorder.outcome_unknown,
            abandoned=retired["abandoned"] + (worker.abandoned if worker else 0),
            late_results=retired["late_results"] + (worker.late_results if worker else 0),
            rejected_busy=retired["rejected_busy"] + (worker.rejected_busy if worker else 0),
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            last_error=recorder.last_error,
            last_error_at=recorder.last_error_at,
            worker_state=worker.state.value if worker is not None else "none",
            in_flight=in_flight.function if in_flight is not None else None,
            queued=worker.queued if worker is not None else 0,
            reconnect_attempts=retired["reconnect_attempts"]
            + (supervisor.reconnect_attempts if supervisor else 0),
            health_checks=retired["health_checks"]
            + (supervisor.health_checks if supervisor else 0),
            health_failures=retired["health_failures"]
            + (supervisor.health_failures if supervisor else 0),
            time_in_state=times,
            ping_ms=supervisor.ping_ms if supervisor else None,
        )
