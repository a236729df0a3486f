"""Accounts of the simulated trade server and the book of each: orders, positions, deals.

``SimAccount`` is configuration (what the broker set up); ``AccountBook`` is the live state the
trading engine changes and the read functions (``positions_get``, ``history_deals_get`` ...) list.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Final

from aiomt5._mt5 import constants as c
from aiomt5._mt5.structs import StructSequence, TradeDeal, TradeOrder, TradePosition

__all__ = [
    "DEFAULT_LOGIN",
    "DEFAULT_PASSWORD",
    "DEFAULT_SERVER",
    "AccountBook",
    "SimAccount",
    "SimDeal",
    "SimOrder",
    "SimPosition",
    "default_accounts",
]

DEFAULT_LOGIN: Final = 5_001_234
DEFAULT_PASSWORD: Final = "Demo-Pass-1"
DEFAULT_SERVER: Final = "AioMT5-Demo"


@dataclass(frozen=True, slots=True, kw_only=True)
class SimAccount:
    """An account the simulated trade server accepts.

    ``password`` is checked by ``initialize(login=...)``/``login()``; ``investor_password`` logs in
    read-only (trading is refused). ``saved_password`` lets ``initialize(login=...)`` work without a
    password, as a terminal that remembers it does.
    """

    login: int
    password: str = field(repr=False)
    server: str = DEFAULT_SERVER
    investor_password: str | None = field(default=None, repr=False)
    saved_password: bool = False
    name: str = "Demo Trader"
    company: str = "AioMT5 Simulated Markets Ltd"
    currency: str = "USD"
    currency_digits: int = 2
    balance: float = 10_000.0
    credit: float = 0.0
    leverage: int = 100
    trade_mode: int = c.ACCOUNT_TRADE_MODE_DEMO
    margin_mode: int = c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    margin_so_mode: int = c.ACCOUNT_STOPOUT_MODE_PERCENT
    margin_so_call: float = 50.0
    margin_so_so: float = 30.0
    limit_orders: int = 200
    trade_allowed: bool = True
    trade_expert: bool = True
    fifo_close: bool = False


def default_accounts(margin_mode: int | None = None) -> tuple[SimAccount, ...]:
    """The demo server's accounts: a hedging demo (the default) and a netting demo."""
    hedging = SimAccount(
        login=DEFAULT_LOGIN,
        password=DEFAULT_PASSWORD,
        investor_password="Demo-Investor-1",
        saved_password=True,
    )
    netting = SimAccount(
        login=DEFAULT_LOGIN + 1,
        password=DEFAULT_PASSWORD,
        name="Demo Netting",
        margin_mode=c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
    )
    if margin_mode == c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING:
        hedging = dataclasses.replace(hedging, margin_mode=margin_mode)
        netting = dataclasses.replace(netting, margin_mode=c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING)
    return (hedging, netting)


@dataclass(slots=True, kw_only=True)
class SimOrder:
    """An order (active or in history)."""

    ticket: int
    symbol: str
    type: int
    volume_initial: float
    volume_current: float
    price_open: float
    time_setup_msc: int
    time_done_msc: int = 0
    time_expiration: int = 0
    type_time: int = c.ORDER_TIME_GTC
    type_filling: int = c.ORDER_FILLING_FOK
    state: int = c.ORDER_STATE_STARTED
    magic: int = 0
    position_id: int = 0
    position_by_id: int = 0
    reason: int = c.ORDER_REASON_EXPERT
    sl: float = 0.0
    tp: float = 0.0
    price_current: float = 0.0
    price_stoplimit: float = 0.0
    comment: str = ""
    external_id: str = ""

    def to_struct(self) -> StructSequence:
        """The ``TradeOrder`` MetaTrader5 returns for this order."""
        return TradeOrder(
            (
                self.ticket,
                self.time_setup_msc // 1000,
                self.time_setup_msc,
                self.time_done_msc // 1000,
                self.time_done_msc,
                self.time_expiration,
                self.type,
                self.type_time,
                self.type_filling,
                self.state,
                self.magic,
                self.position_id,
                self.position_by_id,
                self.reason,
                self.volume_initial,
                self.volume_current,
                self.price_open,
                self.sl,
                self.tp,
                self.price_current,
                self.price_stoplimit,
                self.symbol,
                self.comment,
                self.external_id,
            )
        )


@dataclass(slots=True, kw_only=True)
class SimPosition:
    """An open position."""

    ticket: int
    symbol: str
    type: int
    volume: float
    price_open: float
    time_msc: int
    time_update_msc: int
    identifier: int
    magic: int = 0
    reason: int = c.POSITION_REASON_EXPERT
    sl: float = 0.0
    tp: float = 0.0
    price_current: float = 0.0
    swap: float = 0.0
    profit: float = 0.0
    comment: str = ""
    external_id: str = ""

    def to_struct(self) -> StructSequence:
        """The ``TradePosition`` MetaTrader5 returns for this position."""
        return TradePosition(
            (
                self.ticket,
                self.time_msc // 1000,
                self.time_msc,
                self.time_update_msc // 1000,
                self.time_update_msc,
                self.type,
                self.magic,
                self.identifier,
                self.reason,
                self.volume,
                self.price_open,
                self.sl,
                self.tp,
                self.price_current,
                self.swap,
                self.profit,
                self.symbol,
                self.comment,
                self.external_id,
            )
        )


@dataclass(slots=True, kw_only=True)
class SimDeal:
    """A deal in the account history."""

    ticket: int
    order: int
    symbol: str
    type: int
    entry: int
    volume: float
    price: float
    time_msc: int
    magic: int = 0
    position_id: int = 0
    reason: int = c.DEAL_REASON_EXPERT
    commission: float = 0.0
    swap: float = 0.0
    profit: float = 0.0
    fee: float = 0.0
    comment: str = ""
    external_id: str = ""

    def to_struct(self) -> StructSequence:
        """The ``TradeDeal`` MetaTrader5 returns for this deal."""
        return TradeDeal(
            (
                self.ticket,
                self.order,
                self.time_msc // 1000,
                self.time_msc,
                self.type,
                self.entry,
                self.magic,
                self.position_id,
                self.reason,
                self.volume,
                self.price,
                self.commission,
                self.swap,
                self.profit,
                self.fee,
                self.symbol,
                self.comment,
                self.external_id,
            )
        )


@dataclass(slots=True)
class AccountBook:
    """The live state of one account on the trade server."""

    account: SimAccount
    balance: float = 0.0
    credit: float = 0.0
    orders: dict[int, SimOrder] = field(default_factory=dict)
    """Active (pending) orders by ticket, in placement order."""
    positions: dict[int, SimPosition] = field(default_factory=dict)
    """Open positions by ticket, in opening order."""
    history_orders: list[SimOrder] = field(default_factory=list)
    deals: list[SimDeal] = field(default_factory=list)
    _tickets: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        if not self.balance:
            self.balance = self.account.balance
            self.credit = self.account.credit
        # Tickets are unique per server; start each account in its own range for readability.
        self._tickets = itertools.count(self.account.login % 1000 * 1_000_000 + 100_001)

    def next_ticket(self) -> int:
        """A new order/deal/position ticket (one sequence, as on an MT5 server)."""
        return next(self._tickets)

    @property
    def hedging(self) -> bool:
        """True on a hedging account (several positions per symbol)."""
        return self.account.margin_mode == c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
