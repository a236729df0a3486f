"""``AsyncMT5Connector``: the typed async API over one MetaTrader 5 terminal.

A thin typed facade: every call goes to the current ``Session``'s worker (one dedicated thread)
through the backend's checked call (``_backends._checked``), which turns MT5's failure values
into typed errors. Whether a call can be made now, or must wait, is the ``Sessions`` object's
answer; the ``Supervisor`` owns the worker and the sessions. A public operation that makes
several calls runs them under one deadline (``_core._deadline``).

Lifecycle (``ConnectionState``): ``DISCONNECTED`` → ``connect()`` → ``CONNECTING`` →
``CONNECTED``; ``disconnect()`` → ``DISCONNECTED`` (connect again at will); ``close()`` (or the
end of ``async with``) → ``CLOSED``, which is final. A failed or cancelled ``connect()`` cleans up
(shielded) and leaves ``DISCONNECTED``. ``connect()`` starts the ``Supervisor`` task, which makes
the connect attempts and then owns the session: ``DEGRADED``, ``RECONNECTING`` and back (see
``_core._supervisor``).
"""

from __future__ import annotations

import asyncio
import functools
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from ._backends import BackendSlot
from ._backends._checked import checked, checked_many, health_job
from ._core._arguments import batch_calls, check_symbol
from ._core._deadline import bounded, operation, seconds
from ._core._errors import (
    MT5ClosedError,
    MT5Error,
    MT5InvalidArgumentError,
    MT5SymbolNotFoundError,
    summarize_call,
)
from ._core._events import ConnectorEvent, EventHook, EventStream
from ._core._instance import process_instance
from ._core._log import get_logger
from ._core._session import LIVE, Session, Sessions
from ._core._stats import CallRecorder, ConnectionStats, HealthReport
from ._core._supervisor import RETIRED_COUNTERS, Supervisor
from ._core._types import USE_DEFAULT, ConnectionState, MT5Struct, TimeoutArg
from ._core._worker import WRITE_FUNCTIONS, Batch, Worker
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

# Owned by connect()/disconnect(): calling them behind the connector's back desyncs its state.
_LIFECYCLE_FUNCTIONS: Final = frozenset({"initialize", "shutdown"})


def _weak_emitter(connector: AsyncMT5Connector) -> Callable[[ConnectorEvent], None]:
    """The event callback of the supervisor and its workers, holding the connector weakly.

    Neither the worker thread nor the supervisor task may keep a forgotten connector alive: then
    it could never be collected, warned about and stopped.
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

    def __init__(
        self,
        settings: MT5Settings | None = None,
        *,
        backend: object | None = None,
        event_hooks: Iterable[EventHook] = (),
    ) -> None:
        self._settings = settings if settings is not None else MT5Settings()
        # An object is checked now; names are resolved on connect (imports may fail).
        self._backend = BackendSlot(backend, self._settings)
        self._hooks: list[EventHook] = list(event_hooks)
        self._sessions = Sessions(
            _weak_emitter(self), wait_for_reconnect=self._settings.wait_for_reconnect
        )
        self._lifecycle = asyncio.Lock()
        self._connecting: asyncio.Task[Any] | None = None
        self._invokers: dict[str, Callable[..., Any]] = {}
        self._batch_runners: dict[str, Callable[..., Any]] = {}
        self._recorder = CallRecorder()
        self._supervisor: Supervisor | None = None
        # Counters of workers and supervisors from earlier connections: stats survive them.
        self._retired = dict.fromkeys(RETIRED_COUNTERS, 0)

    # ------------------------------------------------------------------ singleton

    @classmethod
    def get_instance(cls, settings: MT5Settings | None = None) -> AsyncMT5Connector:
        """The process-wide connector (MT5 allows one terminal connection per process).

        Creates it on first use (and again after it was closed). The slot is shared with
        ``MT5Connector.get_instance()``: a process has one such connector, of either kind.

        Raises:
            MT5ConfigurationError: A live instance exists with different settings, or the
                process-wide connector is a live ``MT5Connector``.
        """
        return process_instance.get(cls, settings, "await connector.close()")

    @classmethod
    def reset_instance(cls) -> None:
        """Forget the process-wide connector; a live one is closed abruptly (no ``shutdown``).

        Meant for tests and for recovery; queued calls fail with ``MT5ClosedError``.
        """
        instance = process_instance.take(cls)
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
        return self._sessions.state

    @property
    def sessions(self) -> Sessions:
        """The connection's ``Sessions``: the current ``Session`` and the waits for one.

        For code built on the connector (streams, trading): ``sessions.wait_usable()`` is the
        one way to wait until calls can be made again.
        """
        return self._sessions

    @property
    def session(self) -> Session | None:
        """The current session (None while not connected): its id and per-session caches."""
        return self._sessions.current

    @property
    def backend(self) -> Any:
        """The backend object once resolved (the MetaTrader5 module, a SimTerminal...), or None."""
        resolved = self._backend.resolved
        return resolved.module if resolved is not None else None

    @property
    def worker(self) -> Worker | None:
        """The worker of the current connection (None when not connected)."""
        supervisor = self._supervisor
        return supervisor.worker if supervisor is not None else None

    def is_connected(self) -> bool:
        """True while calls can be made (CONNECTED or DEGRADED)."""
        return self._sessions.state in LIVE

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
        self._sessions.set_state(new, reason)

    def _check_open(self) -> None:
        if self._sessions.state is ConnectionState.CLOSED:
            raise MT5ClosedError(
                "this connector is closed; create a new one (or use get_instance())"
            )

    def __repr__(self) -> str:
        login = f" login={self._settings.login}" if self._settings.login else ""
        state = self._sessions.state.value
        return f"<AsyncMT5Connector state={state} backend={self._backend.description}{login}>"

    def __del__(self) -> None:
        supervisor = getattr(self, "_supervisor", None)
        if supervisor is None:
            return
        supervisor.cancel_threadsafe()
        worker = supervisor.worker
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
            sessions = self._sessions
            if sessions.state in LIVE or sessions.state is ConnectionState.RECONNECTING:
                return
            if self._supervisor is not None:
                await self._shut_down()  # one that gave up: keep its counters, end its task
            sessions.gave_up = None
            self._set_state(ConnectionState.CONNECTING, "connect()")
            self._connecting = asyncio.current_task()
            supervisor = self._supervisor = Supervisor(
                sessions,
                self._settings,
                backend=self._backend,
                emit=self._sessions.emit,
                recorder=self._recorder,
                retired=self._retired,
            )
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
        sessions = self._sessions
        before = sessions.count
        supervisor.request_reconnect()
        while sessions.count == before or sessions.state not in LIVE:
            self._check_open()
            if sessions.state is ConnectionState.DISCONNECTED:
                raise sessions.not_connected("reconnect")
            await sessions.changed()

    async def disconnect(self) -> None:
        """Shut the terminal session down and stop the worker; ``connect()`` may follow.

        Calls still running finish; new calls fail with ``MT5NotConnectedError``. A
        ``connect()`` still retrying in another task is cancelled.
        """
        self._interrupt_connect("disconnect()")
        async with self._lifecycle:
            if self._sessions.state is ConnectionState.CLOSED:
                return
            self._sessions.gave_up = None
            self._set_state(ConnectionState.DISCONNECTED, "disconnect()")
            await self._shut_down()

    async def close(self) -> None:
        """Disconnect for good: the state becomes ``CLOSED`` and the connector cannot reopen.

        A ``connect()`` still retrying in another task is cancelled.
        """
        self._interrupt_connect("close()")
        async with self._lifecycle:
            if self._sessions.state is ConnectionState.CLOSED:
                return
            self._sessions.gave_up = None
            self._set_state(ConnectionState.CLOSED, "close()")
            await self._shut_down()
            resolved = self._backend.resolved
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
        """Stop the supervisor (no more reconnects; it retires the worker). State already set."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            await supervisor.stop()

    def _abort(self, reason: str) -> None:
        """Synchronous hard stop (no shutdown call): for reset_instance() and finalizers."""
        supervisor, self._supervisor = self._supervisor, None
        self._sessions.state = ConnectionState.CLOSED
        log.info("aiomt5.connector.aborted", reason=reason)
        if supervisor is not None:
            supervisor.abort()

    # ------------------------------------------------------------------ calls

    async def _call_when_usable(
        self,
        function: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        timeout: float | None,
    ) -> Any:
        """Wait (within the call's own timeout) for a usable session, then call."""
        started = time.monotonic()
        session = await self._sessions.wait_usable(function, timeout)
        remaining = None if timeout is None else timeout - (time.monotonic() - started)
        return await session.worker.run(function, fn, args, kwargs, timeout=remaining)

    def _invoker(self, function: str) -> Callable[..., Any]:
        invoker = self._invokers.get(function)
        if invoker is None:
            # A live session implies a resolved backend.
            invoker = self._invokers[function] = checked(self._backend().module, function)
        return invoker

    def _run(
        self,
        function: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> Awaitable[Any]:
        """The worker call, for the caller to await (the worker's future: no frame on the way)."""
        session = self._sessions.usable(function)
        seconds = bounded(
            self._settings.call_timeout if timeout is USE_DEFAULT else timeout, function
        )
        if session is None:
            return self._call_when_usable(function, fn, args, kwargs, seconds)
        return session.worker.submit(function, fn, args, kwargs, timeout=seconds)

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
        session = self._sessions.usable(function)
        invoker = self._invokers.get(function) or self._invoker(function)
        seconds = bounded(
            self._settings.call_timeout if timeout is USE_DEFAULT else timeout, function
        )
        if session is None:
            return await self._call_when_usable(function, invoker, args, kwargs or None, seconds)
        return await session.worker.submit(function, invoker, args, kwargs or None, timeout=seconds)

    async def call_many(
        self,
        function: str,
        arguments: Iterable[Any],
        /,
        *,
        timeout: TimeoutArg = USE_DEFAULT,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Make many calls of one read function as ONE worker job: results in order.

        The calls run back to back on the worker thread, each checked exactly like ``call()``
        (same results, same typed errors), so the event loop pays its per-call cost once for the
        batch, and a child process (``isolation="process"``) or an ``aiomt5://`` server answers
        it in one round trip. For scanning many symbols:
        ``await connector.call_many("symbol_info_tick", ["EURUSD", "GBPUSD"])``.

        Args:
            function: A MetaTrader5 read function (``"symbol_info_tick"``,
                ``"copy_rates_from_pos"``...).
            arguments: One item per call: a tuple is its positional arguments (``("EURUSD",
                TIMEFRAME_M1, 0, 100)``), a mapping its keyword arguments, anything else its
                one argument (``"EURUSD"``).
            timeout: Seconds for the whole batch; ``None`` waits forever; default
                ``settings.call_timeout``.
            return_exceptions: Failed calls' errors take their place in the list (like
                ``asyncio.gather``) instead of being raised.

        Returns:
            The results, in the order of ``arguments`` (``[]`` for no calls).

        Raises:
            MT5InvalidArgumentError: ``function`` changes the terminal (``order_send``,
                ``symbol_select``...: use ``call()`` or the trading API, one call at a time),
                or ``arguments`` is not an iterable of calls.
            MT5Error: Without ``return_exceptions``, the first call that failed (the calls
                after it are not made, or their results are discarded); ``MT5TimeoutError``
                when the batch did not finish in time (a batch that started is abandoned:
                its results are dropped), ``MT5NotConnectedError``...
        """
        if function in _LIFECYCLE_FUNCTIONS:
            raise MT5InvalidArgumentError(
                f"{function}() is managed by the connector: use connect()/disconnect()",
                function=function,
            )
        if function in WRITE_FUNCTIONS:
            raise MT5InvalidArgumentError(
                f"call_many() makes read calls only: {function}() changes the terminal, and each "
                "such call must stay on its own to keep its exactly-once outcome. Send orders "
                "with the trading API (place_order...) or call() one at a time",
                function=function,
            )
        calls = batch_calls(function, arguments)
        if not calls:
            return []
        seconds = bounded(
            self._settings.call_timeout if timeout is USE_DEFAULT else timeout, function
        )
        session = self._sessions.usable(function)
        if session is None:
            started = time.monotonic()
            session = await self._sessions.wait_usable(function, seconds)
            if seconds is not None:
                seconds -= time.monotonic() - started
        run = self._batch_runners.get(function)
        if run is None:
            run = self._batch_runners[function] = checked_many(self._backend().module, function)
        first = summarize_call(function, calls[0][0], calls[0][1] or {})
        batch = Batch(
            len(calls), not return_exceptions, f"{len(calls)} x {function} (first: {first})"
        )
        job: Callable[[], Any] = functools.partial(run, calls, not return_exceptions)
        results: list[Any] = await session.worker.submit(
            function, job, timeout=seconds, batch=batch
        )
        return results

    # ------------------------------------------------------------------ typed API

    async def get_terminal_info(self, *, timeout: TimeoutArg = USE_DEFAULT) -> MT5Struct:
        """``terminal_info()``: the terminal's state and settings."""
        info: MT5Struct = await self._run(
            "terminal_info", self._invoker("terminal_info"), timeout=timeout
        )
        return info

    async def get_account_info(self, *, timeout: TimeoutArg = USE_DEFAULT) -> MT5Struct:
        """``account_info()``: the logged-in account (balance, equity, leverage...)."""
        info: MT5Struct = await self._run(
            "account_info", self._invoker("account_info"), timeout=timeout
        )
        return info

    async def get_symbol_info(self, symbol: str, *, timeout: TimeoutArg = USE_DEFAULT) -> MT5Struct:
        """``symbol_info(symbol)``: everything about one symbol.

        Raises:
            MT5SymbolNotFoundError: The server has no such symbol (try ``find_symbol``).
        """
        check_symbol(symbol)
        info: MT5Struct = await self._run(
            "symbol_info", self._invoker("symbol_info"), (symbol,), timeout=timeout
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

    def _symbol_names_job(self) -> Callable[[str | None], list[str]]:
        symbols_get = self._invoker("symbols_get")

        def names(group: str | None) -> list[str]:
            # Names are extracted on the worker thread: thousands of structs stay off the loop.
            found = symbols_get(group=group) if group is not None else symbols_get()
            return [symbol.name for symbol in found]

        return names

    def clear_symbol_cache(self) -> None:
        """Forget ``find_symbol`` answers (a new session starts without them)."""
        session = self._sessions.current
        if session is not None:
            session.symbols.clear()
            session.names = None

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
        session = self._sessions.current
        cached = session.symbols.get(name) if session is not None else None
        if cached is not None and cached[1] > now:
            return cached[0]
        with operation(self._seconds(timeout)):
            try:
                info = await self.get_symbol_info(name)
                resolved: str = info.name
            except MT5SymbolNotFoundError:
                resolved = pick_symbol(name, await self._all_names(now, ttl))
        session = self._sessions.current
        if ttl > 0 and session is not None:
            session.symbols[name] = (resolved, now + ttl)
        return resolved

    async def _all_names(self, now: float, ttl: float) -> tuple[str, ...]:
        session = self._sessions.current
        cached = session.names if session is not None else None
        if cached is not None and cached[1] > now:
            return cached[0]
        names = tuple(await self.get_available_symbols())
        session = self._sessions.current
        if ttl > 0 and session is not None:
            session.names = (names, now + ttl)
        return names

    def _seconds(self, timeout: TimeoutArg) -> float | None:
        return seconds(timeout, self._settings.call_timeout)

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
        self._sessions.usable("terminal_info")  # raises (closed, gave up) before resolving
        return health_job(self._backend().module)

    def get_connection_stats(self) -> ConnectionStats:
        """A snapshot of counters, latencies and state (sync, cheap)."""
        recorder = self._recorder
        sessions = self._sessions
        supervisor = self._supervisor
        worker = supervisor.worker if supervisor is not None else None
        session = sessions.current
        p50, p99 = recorder.percentiles_ms()
        in_flight = worker.in_flight if worker is not None else None
        retired = self._retired
        return ConnectionStats(
            state=sessions.state,
            backend=self._backend.description,
            connected_since=session.opened_since if session is not None else None,
            uptime_seconds=(
                time.perf_counter() - session.opened_at if session is not None else 0.0
            ),
            connects=sessions.count,
            reconnects=max(sessions.count - 1, 0),
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
            time_in_state=sessions.times(),
            ping_ms=supervisor.ping_ms if supervisor else None,
        )
