"""What "connected" means right now: the current ``Session``, and the one wait for a usable one.

A ``Session`` is one successful connect: its id, its worker, and what is cached for it (the
terminal's ``maxbars``, ``find_symbol`` answers...). A reconnect makes a new one, so a cache can
never outlive the link it was read on.

``Sessions`` is the only place that says whether calls can be made: the connection state, the
current session, why the supervisor gave up. The supervisor (and the connector's own
``connect``/``disconnect``/``close``) write it; calls, streams and trading read it through
``usable()`` (the hot path, sync) and ``wait_usable()`` (when they must wait for a session).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from ._errors import MT5ClosedError, MT5NotConnectedError
from ._events import ConnectorEvent, StateChanged
from ._log import get_logger
from ._types import ConnectionState

if TYPE_CHECKING:
    from ._worker import Worker

__all__ = ["LIVE", "Session", "Sessions"]

log = get_logger("aiomt5.connector")

LIVE: Final = frozenset({ConnectionState.CONNECTED, ConnectionState.DEGRADED})
_WAITING: Final = frozenset({ConnectionState.CONNECTING, ConnectionState.RECONNECTING})


class Session:
    """One successful connect.

    Attributes:
        id: 1 for the first session of a connector, then counting up.
        worker: The worker thread serving this session.
        maxbars: The terminal's ``maxbars`` once read (a terminal setting, read once).
        symbols: ``find_symbol`` answers: name -> (server name, expiry).
        names: Every symbol name of the server, with its expiry, once read.
        facts: Other per-session answers, keyed by their owner (trading's filling modes...).
        opened_at: ``time.perf_counter()`` at the connect.
        opened_since: The connect's wall-clock time (UTC).
    """

    __slots__ = (
        "facts",
        "id",
        "maxbars",
        "names",
        "opened_at",
        "opened_since",
        "symbols",
        "worker",
    )

    def __init__(self, session_id: int, worker: Worker) -> None:
        self.id = session_id
        self.worker = worker
        self.opened_at = time.perf_counter()
        self.opened_since = datetime.now(UTC)
        self.maxbars: int | None = None
        self.symbols: dict[str, tuple[str, float]] = {}
        self.names: tuple[tuple[str, ...], float] | None = None
        self.facts: dict[Hashable, Any] = {}

    def __repr__(self) -> str:
        return f"<Session {self.id} worker={self.worker!r}>"


class Sessions:
    """The connection state, the current session, and the waits for a usable one.

    Args:
        emit: Publishes ``StateChanged`` events.
        wait_for_reconnect: Whether a call made while reconnecting waits (within its timeout)
            instead of failing at once.
    """

    def __init__(self, emit: Callable[[ConnectorEvent], None], *, wait_for_reconnect: bool) -> None:
        self.emit = emit
        """Publishes an event (holds the connector weakly)."""
        self.wait_for_reconnect = wait_for_reconnect
        self.state = ConnectionState.DISCONNECTED
        self.current: Session | None = None
        self.count = 0
        """Sessions opened so far (the id of the latest one)."""
        self.gave_up: BaseException | None = None
        """Why the supervisor gave up: every call and stream raises it until the next connect."""
        self.cause: BaseException | None = None
        """The connection error that started the current reconnect."""
        self._changed = asyncio.Event()
        self._entered = time.monotonic()
        self.time_in_state: dict[str, float] = {}

    # ------------------------------------------------------------------ writers

    def set_state(self, new: ConnectionState, reason: str) -> None:
        """Move to ``new``: log, publish ``StateChanged``, wake every waiter."""
        old = self.state
        if old is new:
            return
        now = time.monotonic()
        times = self.time_in_state
        times[old.value] = times.get(old.value, 0.0) + now - self._entered
        self._entered = now
        self.state = new
        # Wake every waiter of the old state at once; later waiters take the new event.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        log.info("aiomt5.connector.state_changed", old=old.value, new=new.value, reason=reason)
        self.emit(StateChanged(old=old, new=new, reason=reason))

    def open(self, worker: Worker) -> Session:
        """Make ``worker``'s freshly connected session the current one."""
        self.count += 1
        session = self.current = Session(self.count, worker)
        self.cause = None
        return session

    def end(self) -> None:
        """No current session (the worker is being retired)."""
        self.current = None

    def times(self) -> dict[str, float]:
        """Seconds spent in each state, the current stay included."""
        times = dict(self.time_in_state)
        state = self.state.value
        times[state] = times.get(state, 0.0) + time.monotonic() - self._entered
        return times

    # ------------------------------------------------------------------ readers

    def usable(self, function: str) -> Session | None:
        """The session to call now; None when the caller should wait for one.

        Raises:
            MT5ClosedError: Closed for good.
            MT5NotConnectedError: Reconnecting and ``wait_for_reconnect`` is off, or not
                connected (and the supervisor did not give up).
            MT5Error: Why the supervisor gave up.
        """
        session = self.current
        state = self.state
        # Identity tests: hashing an enum member for `in LIVE` is a Python-level call.
        if session is not None and (
            state is ConnectionState.CONNECTED or state is ConnectionState.DEGRADED
        ):
            return session
        self._unusable(function, wait=self.wait_for_reconnect)
        return None

    def _unusable(self, function: str, *, wait: bool, patient: bool = False) -> None:
        state = self.state
        if patient and state is ConnectionState.DISCONNECTED and self.gave_up is None:
            return  # disconnected by the user: a connect() may follow
        if state in _WAITING:
            if wait:
                return
            raise MT5NotConnectedError(
                "the connector is reconnecting (the call was not sent); retry later, or set "
                "wait_for_reconnect=True to wait for the connection instead",
                function=function,
            ) from self.cause
        if state is ConnectionState.CLOSED:
            raise MT5ClosedError("this connector is closed; create a new one", function=function)
        if state in LIVE:
            return  # live, but the new session is not installed yet
        raise self.not_connected(function)

    def not_connected(self, function: str) -> BaseException:
        """The error for a call made while disconnected: why the supervisor gave up, if it did."""
        error = self.gave_up
        if error is not None:
            return error.with_traceback(None)  # raised again and again: keep it short
        return MT5NotConnectedError(
            f"the connector is {self.state.value}: await connector.connect() (or use "
            "`async with`) before calling",
            function=function,
        )

    async def changed(self) -> None:
        """Wait for the next state change."""
        await self._changed.wait()

    async def wait_usable(
        self,
        function: str,
        timeout: float | None,
        *,
        always_wait: bool = False,
    ) -> Session:
        """The usable session, waiting up to ``timeout`` seconds while (re)connecting.

        Args:
            function: What the caller wants to call (for errors).
            timeout: Seconds to wait (None: as long as it takes).
            always_wait: Wait out any outage: while (re)connecting even if
                ``wait_for_reconnect`` is off, and while disconnected by the user (a
                ``connect()`` may follow). Streams and trading recovery do.

        Raises:
            MT5NotConnectedError: Still not usable when ``timeout`` passed.
            MT5ClosedError, MT5Error: As ``usable()``: closed, or why the supervisor gave up.
        """
        wait = always_wait or self.wait_for_reconnect
        try:
            async with asyncio.timeout(timeout) as scope:
                while True:
                    session = self.current
                    if session is not None and self.state in LIVE:
                        return session
                    self._unusable(function, wait=wait, patient=always_wait)
                    await self._changed.wait()
        except TimeoutError:
            if not scope.expired():
                raise
            raise MT5NotConnectedError(
                f"still {self.state.value} after waiting {timeout}s (the call's timeout); it "
                "was not sent",
                function=function,
            ) from self.cause

    async def pause(self, seconds: float, sleep: Callable[[float], Awaitable[object]]) -> bool:
        """Sleep ``seconds`` with ``sleep``, cut short by a state change; True if it was.

        For retries while the state still says usable: the trouble may be noticed (and a
        reconnect started) at any moment.
        """
        changed = self._changed
        sleeper = asyncio.ensure_future(sleep(seconds))
        watcher = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait((sleeper, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, watcher):
                task.cancel()
            await asyncio.gather(sleeper, watcher, return_exceptions=True)
        if not sleeper.cancelled() and (error := sleeper.exception()) is not None:
            raise error  # the sleep itself failed, as an awaited sleep would have raised
        return changed.is_set()
