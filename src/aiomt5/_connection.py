"""``mt5_connection()``: one context manager for both worlds.

``async with mt5_connection(...) as mt5`` yields a connected ``AsyncMT5Connector``;
``with mt5_connection(...) as mt5`` yields a connected blocking ``MT5Connector`` (the seed's
usage). Either way the connector is closed on exit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._connector import AsyncMT5Connector
from ._settings import MT5Settings, settings_with

if TYPE_CHECKING:
    from ._blocking import MT5Connector

__all__ = ["Connection", "mt5_connection"]


class Connection:
    """What ``mt5_connection()`` returns: enter it with ``async with`` or ``with``."""

    def __init__(self, settings: MT5Settings) -> None:
        self._settings = settings
        self._async: AsyncMT5Connector | None = None
        self._blocking: MT5Connector | None = None

    async def __aenter__(self) -> AsyncMT5Connector:
        connector = self._async = AsyncMT5Connector(self._settings)
        try:
            await connector.connect()
        except BaseException:
            await connector.close()
            raise
        return connector

    async def __aexit__(self, *exc_info: object) -> None:
        connector, self._async = self._async, None
        if connector is not None:
            await connector.close()

    def __enter__(self) -> MT5Connector:
        from ._blocking import MT5Connector

        connector = self._blocking = MT5Connector(self._settings)
        try:
            connector.connect()
        except BaseException:
            connector.close()
            raise
        return connector

    def __exit__(self, *exc_info: object) -> None:
        connector, self._blocking = self._blocking, None
        if connector is not None:
            connector.close()


def mt5_connection(settings: MT5Settings | None = None, **overrides: Any) -> Connection:
    """A connector, connected on entry and closed on exit: ``async with`` or ``with``.

    Args:
        settings: Base settings (default: from the environment).
        **overrides: Setting fields to change, e.g. ``backend="sim"``, ``call_timeout=5``.

    Example:
        ```python
        async with mt5_connection(backend="sim") as mt5:  # AsyncMT5Connector
            print(await mt5.get_account_info())

        with mt5_connection(backend="sim") as mt5:  # MT5Connector (blocking)
            print(mt5.get_account_info())
        ```
    """
    return Connection(settings_with(settings, overrides))
