"""MetaTrader5's constant families as ``IntEnum`` classes, for code that branches on them.

Each member's value *is* the constant of ``constants.py`` (so ``OrderType.BUY_LIMIT == 2`` and an
enum goes wherever MetaTrader5 takes the int); ``tests/test_constants.py`` checks that every
constant of a family has its member. ``enum_or_int`` reads a raw field: a member when the value is
known, the int as it came otherwise (a newer server may send a value this version does not name).
"""

from __future__ import annotations

import enum
from typing import TypeVar

from . import constants as c

__all__ = [
    "FAMILIES",
    "AccountMarginMode",
    "AccountTradeMode",
    "BookType",
    "DealEntry",
    "DealReason",
    "DealType",
    "OrderFilling",
    "OrderReason",
    "OrderState",
    "OrderTime",
    "OrderType",
    "PositionReason",
    "PositionType",
    "SymbolCalcMode",
    "SymbolTradeExecution",
    "SymbolTradeMode",
    "TradeAction",
    "TradeRetcode",
    "enum_or_int",
]


class OrderType(enum.IntEnum):
    """An order's type (``ORDER_TYPE_*``): market buy/sell, limit, stop, stop-limit, close-by."""

    BUY = c.ORDER_TYPE_BUY
    SELL = c.ORDER_TYPE_SELL
    BUY_LIMIT = c.ORDER_TYPE_BUY_LIMIT
    SELL_LIMIT = c.ORDER_TYPE_SELL_LIMIT
    BUY_STOP = c.ORDER_TYPE_BUY_STOP
    SELL_STOP = c.ORDER_TYPE_SELL_STOP
    BUY_STOP_LIMIT = c.ORDER_TYPE_BUY_STOP_LIMIT
    SELL_STOP_LIMIT = c.ORDER_TYPE_SELL_STOP_LIMIT
    CLOSE_BY = c.ORDER_TYPE_CLOSE_BY


class TradeAction(enum.IntEnum):
    """What a trade request does (``TRADE_ACTION_*``)."""

    DEAL = c.TRADE_ACTION_DEAL
    PENDING = c.TRADE_ACTION_PENDING
    SLTP = c.TRADE_ACTION_SLTP
    MODIFY = c.TRADE_ACTION_MODIFY
    REMOVE = c.TRADE_ACTION_REMOVE
    CLOSE_BY = c.TRADE_ACTION_CLOSE_BY


class OrderFilling(enum.IntEnum):
    """How an order's volume may be filled (``ORDER_FILLING_*``)."""

    FOK = c.ORDER_FILLING_FOK
    IOC = c.ORDER_FILLING_IOC
    RETURN = c.ORDER_FILLING_RETURN
    BOC = c.ORDER_FILLING_BOC


class OrderTime(enum.IntEnum):
    """How long a pending order lives (``ORDER_TIME_*``)."""

    GTC = c.ORDER_TIME_GTC
    DAY = c.ORDER_TIME_DAY
    SPECIFIED = c.ORDER_TIME_SPECIFIED
    SPECIFIED_DAY = c.ORDER_TIME_SPECIFIED_DAY


class OrderState(enum.IntEnum):
    """Where an order is in its life (``ORDER_STATE_*``)."""

    STARTED = c.ORDER_STATE_STARTED
    PLACED = c.ORDER_STATE_PLACED
    CANCELED = c.ORDER_STATE_CANCELED
    PARTIAL = c.ORDER_STATE_PARTIAL
    FILLED = c.ORDER_STATE_FILLED
    REJECTED = c.ORDER_STATE_REJECTED
    EXPIRED = c.ORDER_STATE_EXPIRED
    REQUEST_ADD = c.ORDER_STATE_REQUEST_ADD
    REQUEST_MODIFY = c.ORDER_STATE_REQUEST_MODIFY
    REQUEST_CANCEL = c.ORDER_STATE_REQUEST_CANCEL


class OrderReason(enum.IntEnum):
    """Why an order was placed (``ORDER_REASON_*``)."""

    CLIENT = c.ORDER_REASON_CLIENT
    MOBILE = c.ORDER_REASON_MOBILE
    WEB = c.ORDER_REASON_WEB
    EXPERT = c.ORDER_REASON_EXPERT
    SL = c.ORDER_REASON_SL
    TP = c.ORDER_REASON_TP
    SO = c.ORDER_REASON_SO


class DealType(enum.IntEnum):
    """Deal type: ``DEAL_TYPE_*``, ``DEAL_DIVIDEND``, ``DEAL_DIVIDEND_FRANKED``, ``DEAL_TAX``."""

    BUY = c.DEAL_TYPE_BUY
    SELL = c.DEAL_TYPE_SELL
    BALANCE = c.DEAL_TYPE_BALANCE
    CREDIT = c.DEAL_TYPE_CREDIT
    CHARGE = c.DEAL_TYPE_CHARGE
    CORRECTION = c.DEAL_TYPE_CORRECTION
    BONUS = c.DEAL_TYPE_BONUS
    COMMISSION = c.DEAL_TYPE_COMMISSION
    COMMISSION_DAILY = c.DEAL_TYPE_COMMISSION_DAILY
    COMMISSION_MONTHLY = c.DEAL_TYPE_COMMISSION_MONTHLY
    COMMISSION_AGENT_DAILY = c.DEAL_TYPE_COMMISSION_AGENT_DAILY
    COMMISSION_AGENT_MONTHLY = c.DEAL_TYPE_COMMISSION_AGENT_MONTHLY
    INTEREST = c.DEAL_TYPE_INTEREST
    BUY_CANCELED = c.DEAL_TYPE_BUY_CANCELED
    SELL_CANCELED = c.DEAL_TYPE_SELL_CANCELED
    DIVIDEND = c.DEAL_DIVIDEND
    DIVIDEND_FRANKED = c.DEAL_DIVIDEND_FRANKED
    TAX = c.DEAL_TAX


class DealEntry(enum.IntEnum):
    """Whether a deal opened, closed or reversed a position (``DEAL_ENTRY_*``)."""

    IN = c.DEAL_ENTRY_IN
    OUT = c.DEAL_ENTRY_OUT
    INOUT = c.DEAL_ENTRY_INOUT
    OUT_BY = c.DEAL_ENTRY_OUT_BY


class DealReason(enum.IntEnum):
    """Why a deal happened (``DEAL_REASON_*``): client, stop loss, take profit, stop out..."""

    CLIENT = c.DEAL_REASON_CLIENT
    MOBILE = c.DEAL_REASON_MOBILE
    WEB = c.DEAL_REASON_WEB
    EXPERT = c.DEAL_REASON_EXPERT
    SL = c.DEAL_REASON_SL
    TP = c.DEAL_REASON_TP
    SO = c.DEAL_REASON_SO
    ROLLOVER = c.DEAL_REASON_ROLLOVER
    VMARGIN = c.DEAL_REASON_VMARGIN
    SPLIT = c.DEAL_REASON_SPLIT


class PositionType(enum.IntEnum):
    """A position's direction (``POSITION_TYPE_*``)."""

    BUY = c.POSITION_TYPE_BUY
    SELL = c.POSITION_TYPE_SELL


class PositionReason(enum.IntEnum):
    """Why a position was opened (``POSITION_REASON_*``)."""

    CLIENT = c.POSITION_REASON_CLIENT
    MOBILE = c.POSITION_REASON_MOBILE
    WEB = c.POSITION_REASON_WEB
    EXPERT = c.POSITION_REASON_EXPERT


class TradeRetcode(enum.IntEnum):
    """The trade server's answer to a request (``TRADE_RETCODE_*``)."""

    REQUOTE = c.TRADE_RETCODE_REQUOTE
    REJECT = c.TRADE_RETCODE_REJECT
    CANCEL = c.TRADE_RETCODE_CANCEL
    PLACED = c.TRADE_RETCODE_PLACED
    DONE = c.TRADE_RETCODE_DONE
    DONE_PARTIAL = c.TRADE_RETCODE_DONE_PARTIAL
    ERROR = c.TRADE_RETCODE_ERROR
    TIMEOUT = c.TRADE_RETCODE_TIMEOUT
    INVALID = c.TRADE_RETCODE_INVALID
    INVALID_VOLUME = c.TRADE_RETCODE_INVALID_VOLUME
    INVALID_PRICE = c.TRADE_RETCODE_INVALID_PRICE
    INVALID_STOPS = c.TRADE_RETCODE_INVALID_STOPS
    TRADE_DISABLED = c.TRADE_RETCODE_TRADE_DISABLED
    MARKET_CLOSED = c.TRADE_RETCODE_MARKET_CLOSED
    NO_MONEY = c.TRADE_RETCODE_NO_MONEY
    PRICE_CHANGED = c.TRADE_RETCODE_PRICE_CHANGED
    PRICE_OFF = c.TRADE_RETCODE_PRICE_OFF
    INVALID_EXPIRATION = c.TRADE_RETCODE_INVALID_EXPIRATION
    ORDER_CHANGED = c.TRADE_RETCODE_ORDER_CHANGED
    TOO_MANY_REQUESTS = c.TRADE_RETCODE_TOO_MANY_REQUESTS
    NO_CHANGES = c.TRADE_RETCODE_NO_CHANGES
    SERVER_DISABLES_AT = c.TRADE_RETCODE_SERVER_DISABLES_AT
    CLIENT_DISABLES_AT = c.TRADE_RETCODE_CLIENT_DISABLES_AT
    LOCKED = c.TRADE_RETCODE_LOCKED
    FROZEN = c.TRADE_RETCODE_FROZEN
    INVALID_FILL = c.TRADE_RETCODE_INVALID_FILL
    CONNECTION = c.TRADE_RETCODE_CONNECTION
    ONLY_REAL = c.TRADE_RETCODE_ONLY_REAL
    LIMIT_ORDERS = c.TRADE_RETCODE_LIMIT_ORDERS
    LIMIT_VOLUME = c.TRADE_RETCODE_LIMIT_VOLUME
    INVALID_ORDER = c.TRADE_RETCODE_INVALID_ORDER
    POSITION_CLOSED = c.TRADE_RETCODE_POSITION_CLOSED
    INVALID_CLOSE_VOLUME = c.TRADE_RETCODE_INVALID_CLOSE_VOLUME
    CLOSE_ORDER_EXIST = c.TRADE_RETCODE_CLOSE_ORDER_EXIST
    LIMIT_POSITIONS = c.TRADE_RETCODE_LIMIT_POSITIONS
    REJECT_CANCEL = c.TRADE_RETCODE_REJECT_CANCEL
    LONG_ONLY = c.TRADE_RETCODE_LONG_ONLY
    SHORT_ONLY = c.TRADE_RETCODE_SHORT_ONLY
    CLOSE_ONLY = c.TRADE_RETCODE_CLOSE_ONLY
    FIFO_CLOSE = c.TRADE_RETCODE_FIFO_CLOSE


class SymbolTradeMode(enum.IntEnum):
    """What trading a symbol allows (``SYMBOL_TRADE_MODE_*``)."""

    DISABLED = c.SYMBOL_TRADE_MODE_DISABLED
    LONGONLY = c.SYMBOL_TRADE_MODE_LONGONLY
    SHORTONLY = c.SYMBOL_TRADE_MODE_SHORTONLY
    CLOSEONLY = c.SYMBOL_TRADE_MODE_CLOSEONLY
    FULL = c.SYMBOL_TRADE_MODE_FULL


class SymbolTradeExecution(enum.IntEnum):
    """How a symbol's market orders are executed (``SYMBOL_TRADE_EXECUTION_*``)."""

    REQUEST = c.SYMBOL_TRADE_EXECUTION_REQUEST
    INSTANT = c.SYMBOL_TRADE_EXECUTION_INSTANT
    MARKET = c.SYMBOL_TRADE_EXECUTION_MARKET
    EXCHANGE = c.SYMBOL_TRADE_EXECUTION_EXCHANGE


class SymbolCalcMode(enum.IntEnum):
    """How a symbol's margin and profit are computed (``SYMBOL_CALC_MODE_*``)."""

    FOREX = c.SYMBOL_CALC_MODE_FOREX
    FUTURES = c.SYMBOL_CALC_MODE_FUTURES
    CFD = c.SYMBOL_CALC_MODE_CFD
    CFDINDEX = c.SYMBOL_CALC_MODE_CFDINDEX
    CFDLEVERAGE = c.SYMBOL_CALC_MODE_CFDLEVERAGE
    FOREX_NO_LEVERAGE = c.SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE
    EXCH_STOCKS = c.SYMBOL_CALC_MODE_EXCH_STOCKS
    EXCH_FUTURES = c.SYMBOL_CALC_MODE_EXCH_FUTURES
    EXCH_OPTIONS = c.SYMBOL_CALC_MODE_EXCH_OPTIONS
    EXCH_OPTIONS_MARGIN = c.SYMBOL_CALC_MODE_EXCH_OPTIONS_MARGIN
    EXCH_BONDS = c.SYMBOL_CALC_MODE_EXCH_BONDS
    EXCH_STOCKS_MOEX = c.SYMBOL_CALC_MODE_EXCH_STOCKS_MOEX
    EXCH_BONDS_MOEX = c.SYMBOL_CALC_MODE_EXCH_BONDS_MOEX
    SERV_COLLATERAL = c.SYMBOL_CALC_MODE_SERV_COLLATERAL


class AccountTradeMode(enum.IntEnum):
    """The account's kind (``ACCOUNT_TRADE_MODE_*``): demo, contest, real."""

    DEMO = c.ACCOUNT_TRADE_MODE_DEMO
    CONTEST = c.ACCOUNT_TRADE_MODE_CONTEST
    REAL = c.ACCOUNT_TRADE_MODE_REAL


class AccountMarginMode(enum.IntEnum):
    """How the account holds positions (``ACCOUNT_MARGIN_MODE_*``): netting, exchange, hedging."""

    RETAIL_NETTING = c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    EXCHANGE = c.ACCOUNT_MARGIN_MODE_EXCHANGE
    RETAIL_HEDGING = c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING


class BookType(enum.IntEnum):
    """A market-depth entry's side (``BOOK_TYPE_*``)."""

    SELL = c.BOOK_TYPE_SELL
    BUY = c.BOOK_TYPE_BUY
    SELL_MARKET = c.BOOK_TYPE_SELL_MARKET
    BUY_MARKET = c.BOOK_TYPE_BUY_MARKET


FAMILIES: dict[type[enum.IntEnum], tuple[str, tuple[str, ...]]] = {
    OrderType: ("ORDER_TYPE_", ()),
    TradeAction: ("TRADE_ACTION_", ()),
    OrderFilling: ("ORDER_FILLING_", ()),
    OrderTime: ("ORDER_TIME_", ()),
    OrderState: ("ORDER_STATE_", ()),
    OrderReason: ("ORDER_REASON_", ()),
    DealType: (
        "DEAL_TYPE_",
        (
            "DEAL_DIVIDEND",
            "DEAL_DIVIDEND_FRANKED",
            "DEAL_TAX",
        ),
    ),
    DealEntry: ("DEAL_ENTRY_", ()),
    DealReason: ("DEAL_REASON_", ()),
    PositionType: ("POSITION_TYPE_", ()),
    PositionReason: ("POSITION_REASON_", ()),
    TradeRetcode: ("TRADE_RETCODE_", ()),
    SymbolTradeMode: ("SYMBOL_TRADE_MODE_", ()),
    SymbolTradeExecution: ("SYMBOL_TRADE_EXECUTION_", ()),
    SymbolCalcMode: ("SYMBOL_CALC_MODE_", ()),
    AccountTradeMode: ("ACCOUNT_TRADE_MODE_", ()),
    AccountMarginMode: ("ACCOUNT_MARGIN_MODE_", ()),
    BookType: ("BOOK_TYPE_", ()),
}
"""Each enum, with the prefix of its constants and the constants outside that prefix."""

_E = TypeVar("_E", bound=enum.IntEnum)


def enum_or_int(kind: type[_E], value: int) -> _E | int:
    """``kind(value)`` when MetaTrader5's ``value`` is a member, else ``value`` unchanged."""
    try:
        return kind(value)
    except ValueError:
        return value
