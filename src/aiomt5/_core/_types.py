"""Small shared types: the connection state enum, the timeout sentinel, result protocols."""

from __future__ import annotations

import enum
from typing import Any, Final, Protocol

__all__ = [
    "USE_DEFAULT",
    "ConnectionState",
    "MT5Struct",
    "TimeoutArg",
    "UseDefault",
]


class ConnectionState(enum.Enum):
    """Where a connector is in its life.

    ``DISCONNECTED`` → ``CONNECTING`` → ``CONNECTED``; ``disconnect()`` goes back to
    ``DISCONNECTED``; ``close()`` ends in ``CLOSED``, which is final. ``DEGRADED`` (terminal up,
    trade server or pings failing) and ``RECONNECTING`` are driven by the supervisor.
    """

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DEGRADED = "degraded"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class UseDefault(enum.Enum):
    """Type of ``USE_DEFAULT``: "not given, use the connector's default" (distinct from None)."""

    USE_DEFAULT = "USE_DEFAULT"

    def __repr__(self) -> str:
        return "USE_DEFAULT"


USE_DEFAULT: Final = UseDefault.USE_DEFAULT
"""Per-call ``timeout=`` default: take ``MT5Settings.call_timeout``. ``None`` means no timeout."""

TimeoutArg = float | None | UseDefault
"""What ``timeout=`` accepts: seconds, ``None`` (wait forever) or ``USE_DEFAULT``."""


class MT5Struct(Protocol):
    """A MetaTrader5 result structure (``TerminalInfo``, ``SymbolInfo``...): a tuple with fields.

    Fields are attributes (``info.connected``); ``_asdict()`` gives them as a dict.
    """

    def _asdict(self) -> dict[str, Any]: ...

    def __getattr__(self, name: str, /) -> Any: ...

    def __getitem__(self, index: int, /) -> Any: ...

    def __len__(self) -> int: ...
