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

import importlib
import types
import typing

from ._blocking import MT5Config, MT5Connector
from ._connection import mt5_connection
from ._connector import AsyncMT5Connector
from ._core._backoff import is_testing, set_testing
from ._core._errors import (
    MT5AutoTradingDisabledError,
    MT5CallError,
    MT5CallFailedError,
    MT5ClosedError,
    MT5ConfigurationError,
    MT5ConnectionError,
    MT5Error,
    MT5InitializationError,
    MT5InvalidArgumentError,
    MT5InvalidParamsError,
    MT5IPCTimeoutError,
    MT5LoginError,
    MT5MarketClosedError,
    MT5NotAvailableError,
    MT5NotConnectedError,
    MT5NotFoundError,
    MT5OrderNotPlacedError,
    MT5OutcomeUnknownError,
    MT5ProtocolError,
    MT5ReplyTooLargeError,
    MT5ServerBusyError,
    MT5SymbolNotFoundError,
    MT5TimeoutError,
    MT5TradeError,
    MT5TradeOutcomeUnknownError,
    MT5WorkerBusyError,
)
from ._core._events import (
    ConnectorEvent,
    EventHook,
    EventStream,
    HealthFailed,
    LateResult,
    Reconnected,
    ReconnectFailed,
    ReconnectScheduled,
    StateChanged,
    WorkerWedged,
)
from ._core._stats import ConnectionStats, HealthReport
from ._core._types import USE_DEFAULT, ConnectionState, MT5Struct, TimeoutArg, UseDefault
from ._core._worker import InFlightCall, WorkerState
from ._market._timeframe import Timeframe
from ._mt5.enums import (
    AccountMarginMode,
    AccountTradeMode,
    BookType,
    DealEntry,
    DealReason,
    DealType,
    OrderFilling,
    OrderReason,
    OrderState,
    OrderTime,
    OrderType,
    PositionReason,
    PositionType,
    SymbolCalcMode,
    SymbolTradeExecution,
    SymbolTradeMode,
    TradeAction,
    TradeRetcode,
)
from ._settings import MT5Settings
from ._trading._models import (
    Deal,
    Order,
    OrderCheck,
    OrderResult,
    Position,
    TradeRequest,
    new_tag,
    tag_from_key,
)
from ._trading._trader import Reconciliation, TradeEvent, Trader

if typing.TYPE_CHECKING:
    from ._market._frames import rates_to_frame as rates_to_frame
    from ._market._frames import ticks_to_frame as ticks_to_frame
    from ._market._history import FetchProgress as FetchProgress
    from ._market._store import HistoryStore as HistoryStore
    from ._market._store import StoreKey as StoreKey
    from ._market._store import UpdateResult as UpdateResult
    from ._market._streams import BarStream as BarStream
    from ._market._streams import StreamBar as StreamBar
    from ._market._streams import StreamTick as StreamTick
    from ._market._streams import TickStream as TickStream
    from ._market._verify import BarIssue as BarIssue
    from ._market._verify import Check as Check
    from ._market._verify import ComparisonReport as ComparisonReport
    from ._market._verify import Gap as Gap
    from ._market._verify import TradingSessions as TradingSessions
    from ._market._verify import VerificationReport as VerificationReport
    from ._market._verify import compare_rates as compare_rates
    from ._market._verify import verify_rates as verify_rates
    from ._remote._isolation import ChildTerminal as ChildTerminal
    from ._remote._pool import MT5Pool as MT5Pool

__all__ = [
    "USE_DEFAULT",
    "AccountMarginMode",
    "AccountTradeMode",
    "AsyncMT5Connector",
    "BarIssue",
    "BarStream",
    "BookType",
    "Check",
    "ChildTerminal",
    "ComparisonReport",
    "ConnectionState",
    "ConnectionStats",
    "ConnectorEvent",
    "Deal",
    "DealEntry",
    "DealReason",
    "DealType",
    "EventHook",
    "EventStream",
    "FetchProgress",
    "Gap",
    "HealthFailed",
    "HealthReport",
    "HistoryStore",
    "InFlightCall",
    "LateResult",
    "MT5AutoTradingDisabledError",
    "MT5CallError",
    "MT5CallFailedError",
    "MT5ClosedError",
    "MT5Config",
    "MT5ConfigurationError",
    "MT5ConnectionError",
    "MT5Connector",
    "MT5Error",
    "MT5IPCTimeoutError",
    "MT5InitializationError",
    "MT5InvalidArgumentError",
    "MT5InvalidParamsError",
    "MT5LoginError",
    "MT5MarketClosedError",
    "MT5NotAvailableError",
    "MT5NotConnectedError",
    "MT5NotFoundError",
    "MT5OrderNotPlacedError",
    "MT5OutcomeUnknownError",
    "MT5Pool",
    "MT5ProtocolError",
    "MT5ReplyTooLargeError",
    "MT5ServerBusyError",
    "MT5Settings",
    "MT5Struct",
    "MT5SymbolNotFoundError",
    "MT5TimeoutError",
    "MT5TradeError",
    "MT5TradeOutcomeUnknownError",
    "MT5WorkerBusyError",
    "Order",
    "OrderCheck",
    "OrderFilling",
    "OrderReason",
    "OrderResult",
    "OrderState",
    "OrderTime",
    "OrderType",
    "Position",
    "PositionReason",
    "PositionType",
    "Reconciliation",
    "ReconnectFailed",
    "ReconnectScheduled",
    "Reconnected",
    "StateChanged",
    "StoreKey",
    "StreamBar",
    "StreamTick",
    "SymbolCalcMode",
    "SymbolTradeExecution",
    "SymbolTradeMode",
    "TickStream",
    "Timeframe",
    "TimeoutArg",
    "TradeAction",
    "TradeEvent",
    "TradeRequest",
    "TradeRetcode",
    "Trader",
    "TradingSessions",
    "UpdateResult",
    "UseDefault",
    "VerificationReport",
    "WorkerState",
    "WorkerWedged",
    "compare_rates",
    "is_testing",
    "mt5_connection",
    "new_tag",
    "rates_to_frame",
    "set_testing",
    "tag_from_key",
    "ticks_to_frame",
    "verify_rates",
]

# The market-data and remote tools need numpy; they are imported on first use so
# ``import aiomt5`` (and the pytest plugin) stays light.
_LAZY: typing.Final = {
    "ChildTerminal": "._remote._isolation",
    "MT5Pool": "._remote._pool",
    "rates_to_frame": "._market._frames",
    "ticks_to_frame": "._market._frames",
    "FetchProgress": "._market._history",
    "HistoryStore": "._market._store",
    "StoreKey": "._market._store",
    "UpdateResult": "._market._store",
    "BarStream": "._market._streams",
    "StreamBar": "._market._streams",
    "StreamTick": "._market._streams",
    "TickStream": "._market._streams",
    "BarIssue": "._market._verify",
    "Check": "._market._verify",
    "ComparisonReport": "._market._verify",
    "Gap": "._market._verify",
    "TradingSessions": "._market._verify",
    "VerificationReport": "._market._verify",
    "compare_rates": "._market._verify",
    "verify_rates": "._market._verify",
}

# Reprs, tracebacks and docs show ``aiomt5.MT5Error``, not ``aiomt5._core._errors.MT5Error``.
for _member in [globals()[name] for name in __all__ if name not in _LAZY]:
    if isinstance(_member, type | types.FunctionType):
        _member.__module__ = __name__
del _member


def __getattr__(name: str) -> typing.Any:
    # The version is read lazily: importlib.metadata is slow to import.
    if name == "__version__":
        from importlib.metadata import version

        return version("aiomt5")
    if name in _LAZY:
        member = getattr(importlib.import_module(_LAZY[name], __name__), name)
        if isinstance(member, type | types.FunctionType):
            member.__module__ = __name__
        globals()[name] = member
        return member
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
