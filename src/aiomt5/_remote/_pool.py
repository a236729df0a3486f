"""``MT5Pool``: one connector per trading account, each on its own terminal.

The MetaTrader5 package holds one terminal per process, so several accounts need several
processes: a local account gets a ``ChildTerminal`` (the package in a child process), a
remote one its ``aiomt5://``/``mt5linux://`` backend, a simulated one its own simulator. The
pool connects them together, hands them out by login, reports their stats, and closes them
all (even when cancelled).

Supervision is shared: each member's own supervisor keeps its session alive (health checks,
reconnects with backoff), and the pool supervises the supervisors. When a member's supervisor
gives up (``reconnect_max_retries`` reached), or a member could not connect at start with
``require_all=False``, the pool keeps bringing it back with the member's capped, jittered
backoff, while the other members go on; only a rejected login is left alone (retrying it
cannot help and may lock the account). One hook list sees every member's events, tagged with
the login.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterable, Mapping

from aiomt5._connector import AsyncMT5Connector
from aiomt5._core._backoff import backoff_delay
from aiomt5._core._errors import MT5ConfigurationError, MT5Error, MT5LoginError
from aiomt5._core._events import ConnectorEvent, ReconnectFailed, StateChanged
from aiomt5._core._log import get_logger
from aiomt5._core._stats import ConnectionStats
from aiomt5._core._types import ConnectionState
from aiomt5._settings import MT5Settings

from . import remote_backend
from ._isolation import ChildTerminal

__all__ = ["MT5Pool", "PoolEventHook", "default_pool_backend"]

BackendFactory = Callable[[MT5Settings], object | None]
PoolEventHook = Callable[[int, ConnectorEvent], object]
"""A pool-wide callback: ``hook(login, event)`` for every event of every member."""

log = get_logger("aiomt5.pool")


def default_pool_backend(settings: MT5Settings) -> object | None:
    """The backend one pool member gets: its own process for the MetaTrader5 package.

    Remote URLs get their remote backend, ``"sim"`` a simulator of its own (None: the
    connector builds it), ``"metatrader5"``/``"auto"`` a ``ChildTerminal`` whose hard limit is
    the member's ``connect_timeout`` (initialize may legitimately take that long).
    """
    if settings.backend_url is not None:
        return remote_backend(settings.backend_url, settings)
    if settings.backend == "sim":
        return None
    return ChildTerminal("metatrader5", hard_limit=settings.connect_timeout)


class MT5Pool:
    """Several connectors, one per account, used as ``async with MT5Pool([...]) as pool``.

    Args:
        members: One ``MT5Settings`` per account; each must set a distinct ``login``.
        backend: Builds each member's backend (default: ``default_pool_backend``).
        event_hooks: Callables receiving ``(login, event)`` for every member's events.
        require_all: ``connect()`` fails (and closes everything) unless every member connects.
            With False it succeeds when at least one does, and the pool keeps trying the others
            in the background (see ``failures``).

    Raises:
        MT5ConfigurationError: A member has no login, or two share one.
    """

    def __init__(
        self,
        members: Iterable[MT5Settings],
        *,
        backend: BackendFactory = default_pool_backend,
        event_hooks: Iterable[PoolEventHook] = (),
        require_all: bool = True,
    ) -> None:
        self._connectors: dict[int, AsyncMT5Connector] = {}
        self._backends: dict[int, object | None] = {}
        self._hooks: list[PoolEventHook] = list(event_hooks)
        self._require_all = require_all
        self._revivals: dict[int, asyncio.Task[None]] = {}
        self._failures: dict[int, BaseException] = {}
        self._supervising = False
        self._rng = random.Random()
        for settings in members:
            login = settings.login
            if login is None:
                raise MT5ConfigurationError("every MT5Pool member needs a login (MT5_LOGIN)")
            if login in self._connectors:
                raise MT5ConfigurationError(f"login {login} appears twice in the MT5Pool")
            self._backends[login] = member_backend = backend(settings)
            connector = AsyncMT5Connector(settings, backend=member_backend)
            connector.add_event_hook(self._hook_for(login))
            self._connectors[login] = connector

    @property
    def logins(self) -> tuple[int, ...]:
        """The accounts of the pool, in the order given."""
        return tuple(self._connectors)

    def get(self, login: int) -> AsyncMT5Connector:
        """The connector of account ``login``.

        Raises:
            MT5ConfigurationError: No member has that login.
        """
        try:
            return self._connectors[login]
        except KeyError:
            known = ", ".join(str(n) for n in self._connectors)
            raise MT5ConfigurationError(
                f"no MT5Pool member has login {login} (members: {known})"
            ) from None

    def stats(self) -> Mapping[int, ConnectionStats]:
        """Each member's ``get_connection_stats()``, by login."""
        return {login: c.get_connection_stats() for login, c in self._connectors.items()}

    def states(self) -> Mapping[int, ConnectionState]:
        """Each member's connection state, by login."""
        return {login: c.state for login, c in self._connectors.items()}

    @property
    def failures(self) -> Mapping[int, BaseException]:
        """Members that are down, by login: the last error that kept each from connecting.

        A member leaves this mapping when it is connected again. Logins rejected by the server
        stay (the pool does not retry them; fix the credentials and ``connect()`` the member).
        """
        return dict(self._failures)

    def add_event_hook(self, hook: PoolEventHook) -> None:
        """Also call ``hook(login, event)`` for every member's events."""
        self._hooks.append(hook)

    async def connect(self) -> None:
        """Connect every member concurrently, then supervise them.

        With ``require_all`` (the default) one failure closes all and raises. Without, the
        pool is up if any member connected; the others are retried in the background.

        Raises:
            ExceptionGroup: The members' connect errors (``MT5LoginError``...): with
                ``require_all``, any; without, all members failed.
        """
        if self._require_all:
            try:
                async with asyncio.TaskGroup() as group:
                    for connector in self._connectors.values():
                        group.create_task(connector.connect())
            except BaseException:
                await self.close()
                raise
        else:
            logins = list(self._connectors)
            results = await asyncio.gather(
                *(self._connectors[login].connect() for login in logins), return_exceptions=True
            )
            errors = {
                login: result
                for login, result in zip(logins, results, strict=True)
                if isinstance(result, BaseException)
            }
            fatal = [e for e in errors.values() if not isinstance(e, Exception)]
            if fatal or len(errors) == len(logins):
                await self.close()
                if fatal:
                    raise fatal[0]  # cancelled (or worse) while connecting
                raise ExceptionGroup(
                    "no MT5Pool member could connect",
                    [e for e in errors.values() if isinstance(e, Exception)],
                )
            self._supervising = True
            for login, error in errors.items():
                self._member_down(login, error)
            return
        self._supervising = True

    def _hook_for(self, login: int) -> Callable[[ConnectorEvent], None]:
        def on_event(event: ConnectorEvent) -> None:
            # The pool's own bookkeeping first, so hooks see the pool as the event left it.
            if isinstance(event, ReconnectFailed):
                self._member_down(login, event.error)
            elif isinstance(event, StateChanged) and event.new is ConnectionState.CONNECTED:
                self._failures.pop(login, None)
            for hook in list(self._hooks):
                try:
                    hook(login, event)
                except Exception:  # a broken hook must not stop supervision
                    log.exception("aiomt5.pool.event_hook_failed", login=login, kind=event.kind)

        return on_event

    def _member_down(self, login: int, error: BaseException) -> None:
        """A member's own supervisor gave up: the pool takes over (unless it cannot help)."""
        self._failures[login] = error
        if not self._supervising or login in self._revivals:
            return
        if isinstance(error, MT5LoginError) or not isinstance(error, MT5Error):
            log.error("aiomt5.pool.member_left_down", login=login, error=str(error))
            return
        log.warning("aiomt5.pool.member_down", login=login, error=str(error))
        task = asyncio.get_running_loop().create_task(
            self._revive(login), name=f"aiomt5-pool-revive-{login}"
        )
        self._revivals[login] = task
        task.add_done_callback(lambda _: self._revivals.pop(login, None))

    async def _revive(self, login: int) -> None:
        """Connect the member again and again, with its backoff, until it is up or rejected."""
        connector = self._connectors[login]
        settings = connector.settings
        attempt = 0
        while True:
            attempt += 1
            delay = backoff_delay(
                attempt,
                initial=settings.retry_delay,
                maximum=settings.retry_max_delay,
                rng=self._rng,
                testing=settings.testing,
            )
            await asyncio.sleep(delay)
            try:
                await connector.connect()
            except MT5Error as exc:
                error = exc
            else:
                log.info("aiomt5.pool.member_revived", login=login, attempts=attempt)
                return
            self._failures[login] = error
            if isinstance(error, MT5LoginError):
                log.error("aiomt5.pool.member_left_down", login=login, error=str(error))
                return
            log.warning("aiomt5.pool.revive_failed", login=login, attempt=attempt, error=str(error))

    async def close(self) -> None:
        """Close every member (shielded: it completes even if the caller is cancelled)."""
        self._supervising = False
        revivals = list(self._revivals.values())
        for task in revivals:
            task.cancel()
        closing = asyncio.gather(
            *(c.close() for c in self._connectors.values()), return_exceptions=True
        )
        try:
            await asyncio.shield(closing)
            for task in revivals:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            for backend in self._backends.values():
                if isinstance(backend, ChildTerminal):
                    backend.close()

    async def __aenter__(self) -> MT5Pool:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<MT5Pool logins={list(self._connectors)}>"
