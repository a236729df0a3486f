"""aiomt5: an asyncio client for MetaTrader 5.

One dedicated worker thread talks to the terminal; every call has a timeout; failures arrive as
one typed exception tree; ``aiomt5.sim`` is a built-in simulated terminal for tests and Linux.

```python
import aiomt5

async with aiomt5.mt5_connection(backend="sim") as mt5:
    account = await mt5.get_account_info()
```
"""

from __future__ import annotations

import types

from ._backoff import is_testing, set_testing
from ._connector import AsyncMT5Connector, mt5_connection
from ._errors import (
    MT5AutoTradingDisabledError,
    MT5CallError,
    MT5ClosedError,
    MT5ConfigurationError,
    MT5ConnectionError,
    MT5Error,
    MT5InitializationError,
    MT5InvalidArgumentError,
    MT5IPCTimeoutError,
    MT5LoginError,
    MT5NotAvailableError,
    MT5NotConnectedError,
    MT5NotFoundError,
    MT5OutcomeUnknownError,
    MT5SymbolNotFoundError,
    MT5TimeoutError,
    MT5TradeError,
    MT5WorkerBusyError,
)
from ._events import ConnectorEvent, EventHook, LateResult, StateChanged, WorkerWedged
from ._settings import MT5Settings
from ._stats import ConnectionStats, HealthReport
from ._timeframe import Timeframe
from ._types import USE_DEFAULT, ConnectionState, MT5Struct, TimeoutArg, UseDefault
from ._worker import InFlightCall, WorkerState

__all__ = [
    "USE_DEFAULT",
    "AsyncMT5Connector",
    "ConnectionState",
    "ConnectionStats",
    "ConnectorEvent",
    "EventHook",
    "HealthReport",
    "InFlightCall",
    "LateResult",
    "MT5AutoTradingDisabledError",
    "MT5CallError",
    "MT5ClosedError",
    "MT5ConfigurationError",
    "MT5ConnectionError",
    "MT5Error",
    "MT5IPCTimeoutError",
    "MT5InitializationError",
    "MT5InvalidArgumentError",
    "MT5LoginError",
    "MT5NotAvailableError",
    "MT5NotConnectedError",
    "MT5NotFoundError",
    "MT5OutcomeUnknownError",
    "MT5Settings",
    "MT5Struct",
    "MT5SymbolNotFoundError",
    "MT5TimeoutError",
    "MT5TradeError",
    "MT5WorkerBusyError",
    "StateChanged",
    "Timeframe",
    "TimeoutArg",
    "UseDefault",
    "WorkerState",
    "WorkerWedged",
    "is_testing",
    "mt5_connection",
    "set_testing",
]

# Reprs, tracebacks and docs show ``aiomt5.MT5Error``, not ``aiomt5._errors.MT5Error``.
for _member in [globals()[name] for name in __all__]:
    if isinstance(_member, type | types.FunctionType):
        _member.__module__ = __name__
del _member


def __getattr__(name: str) -> str:
    # The version is read lazily: importlib.metadata is slow to import.
    if name == "__version__":
        from importlib.metadata import version

        return version("aiomt5")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
