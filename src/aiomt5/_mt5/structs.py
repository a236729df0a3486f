"""The result types of MetaTrader5: 11 struct sequences and the two packed array dtypes.

The real types are CPython ``PyStructSequence`` types: tuple subclasses with attribute access,
a ``Name(field=value, ...)`` repr, the ``n_fields`` class attributes, ``__match_args__`` (the
field names, as CPython 3.10+ sets on every struct sequence) and an extra ``_asdict()``
returning a *shallow* dict in field order. They have no ``_fields`` or ``_replace`` (they are not
namedtuples), and they are built from one sequence: ``TradePosition((1, 2, ...))``.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, ClassVar, Final

from .dtypes import RATES_DTYPE, TICKS_DTYPE

__all__ = [
    "RATES_DTYPE",
    "STRUCT_FIELDS",
    "STRUCT_TYPES",
    "TICKS_DTYPE",
    "AccountInfo",
    "BookInfo",
    "OrderCheckResult",
    "OrderSendResult",
    "StructSequence",
    "SymbolInfo",
    "TerminalInfo",
    "Tick",
    "TradeDeal",
    "TradeOrder",
    "TradePosition",
    "TradeRequest",
]


class StructSequence(tuple[Any, ...]):
    """Base of the simulator's struct types; behaves as MetaTrader5's ``PyStructSequence``."""

    __slots__ = ()
    n_fields: ClassVar[int]
    n_sequence_fields: ClassVar[int]
    n_unnamed_fields: ClassVar[int] = 0
    _field_names: ClassVar[tuple[str, ...]]

    def __new__(cls, sequence: Any = (), /) -> StructSequence:
        values = tuple(sequence)
        if len(values) != cls.n_fields:
            msg = f"{cls.__name__}() takes a {cls.n_fields}-sequence ({len(values)}-sequence given)"
            raise TypeError(msg)
        return super().__new__(cls, values)

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={v!r}" for n, v in zip(self._field_names, self, strict=True))
        return f"{type(self).__name__}({body})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (tuple(self),))

    def _asdict(self) -> dict[str, Any]:
        """Return the fields as a plain dict in field order (shallow, as MetaTrader5 does)."""
        return dict(zip(self._field_names, self, strict=True))

    if TYPE_CHECKING:  # attribute access is generated per type below

        def __getattr__(self, name: str) -> Any: ...


def _make(name: str, fields: tuple[str, ...], doc: str) -> type[StructSequence]:
    namespace: dict[str, Any] = {
        "__slots__": (),
        "__doc__": doc,
        "__module__": "MetaTrader5",
        "n_fields": len(fields),
        "n_sequence_fields": len(fields),
        "_field_names": fields,
        # CPython (3.10+) gives every PyStructSequence type this: ``match`` patterns, and code
        # that lists a struct's fields from it (aiomql builds its trade requests that way).
        "__match_args__": fields,
    }
    for index, field in enumerate(fields):
        namespace[field] = property(operator.itemgetter(index), doc=f"{name}.{field}")
    return type(name, (StructSequence,), namespace)


STRUCT_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "TerminalInfo": (
        "community_account", "community_connection", "connected", "dlls_allowed",
        "trade_allowed", "tradeapi_disabled", "email_enabled", "ftp_enabled",
        "notifications_enabled", "mqid", "build", "maxbars", "codepage", "ping_last",
        "community_balance", "retransmission", "company", "name", "language", "path",
        "data_path", "commondata_path",
    ),
    "AccountInfo": (
        "login", "trade_mode", "leverage", "limit_orders", "margin_so_mode", "trade_allowed",
        "trade_expert", "margin_mode", "currency_digits", "fifo_close", "balance", "credit",
        "profit", "equity", "margin", "margin_free", "margin_level", "margin_so_call",
        "margin_so_so", "margin_initial", "margin_maintenance", "assets", "liabilities",
        "commission_blocked", "name", "server", "currency", "company",
    ),
    "SymbolInfo": (
        "custom", "chart_mode", "select", "visible", "session_deals", "session_buy_orders",
        "session_sell_orders", "volume", "volumehigh", "volumelow", "time", "digits", "spread",
        "spread_float", "ticks_bookdepth", "trade_calc_mode", "trade_mode", "start_time",
        "expiration_time", "trade_stops_level", "trade_freeze_level", "trade_exemode",
        "swap_mode", "swap_rollover3days", "margin_hedged_use_leg", "expiration_mode",
        "filling_mode", "order_mode", "order_gtc_mode", "option_mode", "option_right", "bid",
        "bidhigh", "bidlow", "ask", "askhigh", "asklow", "last", "lasthigh", "lastlow",
        "volume_real", "volumehigh_real", "volumelow_real", "option_strike", "point",
        "trade_tick_value", "trade_tick_value_profit", "trade_tick_value_loss",
        "trade_tick_size", "trade_contract_size", "trade_accrued_interest", "trade_face_value",
        "trade_liquidity_rate", "volume_min", "volume_max", "volume_step", "volume_limit",
        "swap_long", "swap_short", "margin_initial", "margin_maintenance", "session_volume",
        "session_turnover", "session_interest", "session_buy_orders_volume",
        "session_sell_orders_volume", "session_open", "session_close", "session_aw",
        "session_price_settlement", "session_price_limit_min", "session_price_limit_max",
        "margin_hedged", "price_change", "price_volatility", "price_theoretical",
        "price_greeks_delta", "price_greeks_theta", "price_greeks_gamma", "price_greeks_vega",
        "price_greeks_rho", "price_greeks_omega", "price_sensitivity", "basis", "category",
        "currency_base", "currency_profit", "currency_margin", "bank", "description",
        "exchange", "formula", "isin", "name", "page", "path",
    ),
    "Tick": ("time", "bid", "ask", "last", "volume", "time_msc", "flags", "volume_real"),
    "TradeOrder": (
        "ticket", "time_setup", "time_setup_msc", "time_done", "time_done_msc",
        "time_expiration", "type", "type_time", "type_filling", "state", "magic",
        "position_id", "position_by_id", "reason", "volume_initial", "volume_current",
        "price_open", "sl", "tp", "price_current", "price_stoplimit", "symbol", "comment",
        "external_id",
    ),
    "TradePosition": (
        "ticket", "time", "time_msc", "time_update", "time_update_msc", "type", "magic",
        "identifier", "reason", "volume", "price_open", "sl", "tp", "price_current", "swap",
        "profit", "symbol", "comment", "external_id",
    ),
    "TradeDeal": (
        "ticket", "order", "time", "time_msc", "type", "entry", "magic", "position_id",
        "reason", "volume", "price", "commission", "swap", "profit", "fee", "symbol",
        "comment", "external_id",
    ),
    "TradeRequest": (
        "action", "magic", "order", "symbol", "volume", "price", "stoplimit", "sl", "tp",
        "deviation", "type", "type_filling", "type_time", "expiration", "comment", "position",
        "position_by",
    ),
    "OrderSendResult": (
        "retcode", "deal", "order", "volume", "price", "bid", "ask", "comment", "request_id",
        "retcode_external", "request",
    ),
    "OrderCheckResult": (
        "retcode", "balance", "equity", "profit", "margin", "margin_free", "margin_level",
        "comment", "request",
    ),
    "BookInfo": ("type", "price", "volume", "volume_dbl"),
}  # fmt: skip

_DOCS: Final[dict[str, str]] = {
    "TerminalInfo": "This is a structure for storing terminal information",
    "AccountInfo": "This is a structure for storing account information",
    "SymbolInfo": "This is a structure for storing symbol information",
    "Tick": "This is a structure for storing tick information",
    "TradeOrder": "This is a structure for storing order information",
    "TradePosition": "This is a structure for storing position information",
    "TradeDeal": "This is a structure for storing deal information",
    "TradeRequest": "This is a structure for storing trade request",
    "OrderSendResult": "This is a structure for storing order send result",
    "OrderCheckResult": "This is a structure for storing order check result",
    "BookInfo": "This is a structure for storing book information",
}

STRUCT_TYPES: Final[dict[str, type[StructSequence]]] = {
    name: _make(name, fields, _DOCS[name]) for name, fields in STRUCT_FIELDS.items()
}

TerminalInfo: Final = STRUCT_TYPES["TerminalInfo"]
AccountInfo: Final = STRUCT_TYPES["AccountInfo"]
SymbolInfo: Final = STRUCT_TYPES["SymbolInfo"]
Tick: Final = STRUCT_TYPES["Tick"]
TradeOrder: Final = STRUCT_TYPES["TradeOrder"]
TradePosition: Final = STRUCT_TYPES["TradePosition"]
TradeDeal: Final = STRUCT_TYPES["TradeDeal"]
TradeRequest: Final = STRUCT_TYPES["TradeRequest"]
OrderSendResult: Final = STRUCT_TYPES["OrderSendResult"]
OrderCheckResult: Final = STRUCT_TYPES["OrderCheckResult"]
BookInfo: Final = STRUCT_TYPES["BookInfo"]
