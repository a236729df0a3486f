"""``MT5Pool``: one connector per trading account, each on its own terminal.

The MetaTrader5 package holds one terminal per process, so several accounts need several
processes: a local account gets a ``ChildTerminal`` (the package in a child process), a
remote one its ``aiomt5://``/``mt5linux://`` backend, a simulated one its own simulator. The
pool connects them together, hands them out by login, reports their stats, and closes them
all (even when cancelled).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping

from aiomt5._connector import AsyncMT5Connector
from aiomt5._errors import MT5ConfigurationError
from aiomt5._settings import MT5Settings
from aiomt5._stats import ConnectionStats

from . import remote_backend
from ._isolation import ChildTerminal

__all__ = ["MT5Pool", "default_pool_backend"]

BackendFactory = Callable[[MT5Settings], object | None]


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

    Raises:
        MT5ConfigurationError: A member has no login, or two share one.
    """

    def __init__(
        self,
        members: Iterable[MT5Settings],
        *,
        backend: BackendFactory = default_pool_backend,
    ) -> None:
        self._connectors: dict[int, AsyncMT5Connector] = {}
        self._backends: dict[int, object | None] = {}
        for settings in members:
            login = settings.login
            if login is None:
                raise MT5ConfigurationError("every MT5Pool member needs a login (MT5_LOGIN)")
            if login in self._connectors:
                raise MT5ConfigurationError(f"login {login} appears twice in the MT5Pool")
            self._backends[login] = member_backend = backend(settings)
            self._connectors[login] = AsyncMT5Connector(settings, backend=member_backend)

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

    async def connect(self) -> None:
        """Connect every member concurrently; if any fails, close all and raise.

        Raises:
            ExceptionGroup: The members' connect errors (``MT5LoginError``...).
        """
        try:
            async with asyncio.TaskGroup() as group:
                for connector in self._connectors.values():
                    group.create_task(connector.connect())
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close every member (shielded: it completes even if the caller is cancelled)."""
        closing = asyncio.gather(
            *(c.close() for c in self._connectors.values()), return_exceptions=True
        )
        try:
            await asyncio.shield(closing)
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
