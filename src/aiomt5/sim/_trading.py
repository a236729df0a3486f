"""The simulated trade server: checks and executes trade requests, and moves books with the market.

``TradingEngine`` is what ``order_check``/``order_send`` reach once the terminal has parsed the
arguments into a ``TradeRequest``. It validates a request the way an MT5 trade server does and
answers with the server's retcode, executes it against an ``AccountBook`` (orders, positions,
deals, balance), and ``sync`` replays the ticks since the last call so pending orders, SL/TP,
expirations and stop-outs happen at the tick (or moment) they would have on a live server.

Decisions where MT5 leaves room, or where the simulator simplifies:

* Prices: market deals fill at the current ask (buy) or bid (sell), pending orders and SL/TP at
  the bid/ask of the tick that triggers them (gaps give slippage, as on a server). Instant
  execution requotes (10004, current prices in ``bid``/``ask``) and request execution answers
  10020 (prices changed) only when the market moved more than ``deviation`` points from the
  request price; market and exchange execution ignore the request price. Nothing is random.
* Netting: one position per symbol whose ticket and identifier stay those of the opening order
  through increases, partial closes and reversals (``DEAL_ENTRY_INOUT``); the price is the
  volume-weighted average, and SL/TP given with a deal replace the position's.
* Hedging: ``position=`` closes (part of) that position; ``TRADE_ACTION_CLOSE_BY`` closes the
  overlapping volume of two opposite positions with one ``ORDER_TYPE_CLOSE_BY`` order and two
  ``DEAL_ENTRY_OUT_BY`` deals: the first position closes at the open price of the second and the
  second at its own open price, so the pair realises exactly the locked-in difference.
* A triggered stop-limit order keeps its ticket and becomes the limit order at its stop-limit price.
  A triggered pending order the account cannot afford is rejected (``ORDER_STATE_REJECTED``).
  SL, TP and stop-out closes are server orders and deals with reason SL/TP/SO, the position's
  magic, and comments ``[sl 1.09500]``, ``[tp 1.10500]``, ``[so 29.10%/321.00/1103.00]``.
* Margin: each position at its open price through ``_calc.margin`` (so a lone position's margin is
  ``order_calc_margin`` of it), conversion at current prices. On a hedging account the overlapping
  buy/sell volume of a symbol is charged once, scaled by ``margin_hedged`` (per contract size, or
  per ``margin_initial`` for instruments with a fixed initial margin; 0 means the full amount).
  Pending orders take no margin. Swaps and commissions are 0.
* Stop-out: at the first tick where the margin level falls to ``margin_so_so`` (percent, or equity
  in money mode) the positions with the largest loss are closed (deal reason SO) until it is above.
  Ticks are scanned with each position's profit extrapolated linearly from its last mark; the
  exact level is recomputed before anything is closed.
* A trade whose margin cannot be converted to the account currency (no quotes for a conversion
  pair) is refused with 10021 (no quotes), like one on a symbol without prices.
* ``check`` runs the request on a what-if copy of what it changes: success is retcode 0 with
  comment ``"Done"`` and the account figures after the request; a refusal has the retcode, its
  broker comment and the current figures (the figures after it for 10019, no money).
* The terminal refuses requests itself while the trade server is down (``-1`` call failed); the
  engine answers ``TRADE_RETCODE_CONNECTION`` (10031) if it is ever asked while disconnected.
  An unknown symbol, or one not in the Market Watch, is an invalid request (10013).
* A result's ``request_id`` counts the ``send`` calls of the engine from 1.
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import numpy as np

from aiomt5._mt5 import constants as c
from aiomt5._mt5.structs import OrderCheckResult, OrderSendResult, StructSequence

from . import _calc
from ._account import AccountBook, SimAccount, SimDeal, SimOrder, SimPosition

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._spec import SymbolSpec
    from ._view import MarketView

__all__ = ["RETCODE_COMMENTS", "AccountFigures", "TradingEngine"]

RETCODE_COMMENTS: Final[dict[int, str]] = {
    c.TRADE_RETCODE_REQUOTE: "Requote",
    c.TRADE_RETCODE_REJECT: "Request rejected",
    c.TRADE_RETCODE_CANCEL: "Request canceled by trader",
    c.TRADE_RETCODE_PLACED: "Order placed",
    c.TRADE_RETCODE_DONE: "Request executed",
    c.TRADE_RETCODE_DONE_PARTIAL: "Request executed partially",
    c.TRADE_RETCODE_ERROR: "Request processing error",
    c.TRADE_RETCODE_TIMEOUT: "Request canceled by timeout",
    c.TRADE_RETCODE_INVALID: "Invalid request",
    c.TRADE_RETCODE_INVALID_VOLUME: "Invalid volume",
    c.TRADE_RETCODE_INVALID_PRICE: "Invalid price",
    c.TRADE_RETCODE_INVALID_STOPS: "Invalid stops",
    c.TRADE_RETCODE_TRADE_DISABLED: "Trade disabled",
    c.TRADE_RETCODE_MARKET_CLOSED: "Market closed",
    c.TRADE_RETCODE_NO_MONEY: "No money",
    c.TRADE_RETCODE_PRICE_CHANGED: "Prices changed",
    c.TRADE_RETCODE_PRICE_OFF: "Off quotes",
    c.TRADE_RETCODE_INVALID_EXPIRATION: "Invalid expiration",
    c.TRADE_RETCODE_ORDER_CHANGED: "Order state changed",
    c.TRADE_RETCODE_TOO_MANY_REQUESTS: "Too many requests",
    c.TRADE_RETCODE_NO_CHANGES: "No changes",
    c.TRADE_RETCODE_SERVER_DISABLES_AT: "AutoTrading disabled by server",
    c.TRADE_RETCODE_CLIENT_DISABLES_AT: "AutoTrading disabled by client",
    c.TRADE_RETCODE_LOCKED: "Request locked for processing",
    c.TRADE_RETCODE_FROZEN: "Order or position frozen",
    c.TRADE_RETCODE_INVALID_FILL: "Unsupported filling mode",
    c.TRADE_RETCODE_CONNECTION: "No connection with the trade server",
    c.TRADE_RETCODE_ONLY_REAL: "Operation is allowed only for live accounts",
    c.TRADE_RETCODE_LIMIT_ORDERS: "The number of pending orders has reached the limit",
    c.TRADE_RETCODE_LIMIT_VOLUME: "The volume of orders and positions has reached the limit",
    c.TRADE_RETCODE_INVALID_ORDER: "Invalid or prohibited order type",
    c.TRADE_RETCODE_POSITION_CLOSED: "Position doesn't exist",
    c.TRADE_RETCODE_INVALID_CLOSE_VOLUME: "Close volume exceeds the position volume",
    c.TRADE_RETCODE_CLOSE_ORDER_EXIST: "A close order already exists",
    c.TRADE_RETCODE_LIMIT_POSITIONS: "The number of positions has reached the limit",
    c.TRADE_RETCODE_REJECT_CANCEL: "Pending order activation request rejected",
    c.TRADE_RETCODE_LONG_ONLY: "Only long positions are allowed",
    c.TRADE_RETCODE_SHORT_ONLY: "Only short positions are allowed",
    c.TRADE_RETCODE_CLOSE_ONLY: "Only position closing is allowed",
    c.TRADE_RETCODE_FIFO_CLOSE: "Position closing is allowed only by FIFO rule",
}
"""The broker comment of each ``TRADE_RETCODE_*`` (the ``comment`` of a result)."""

_CHECK_DONE: Final = "Done"
_MARKET_TYPES: Final = (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL)
_LIMIT_TYPES: Final = (c.ORDER_TYPE_BUY_LIMIT, c.ORDER_TYPE_SELL_LIMIT)
_STOP_TYPES: Final = (c.ORDER_TYPE_BUY_STOP, c.ORDER_TYPE_SELL_STOP)
_STOP_LIMIT_TYPES: Final = (c.ORDER_TYPE_BUY_STOP_LIMIT, c.ORDER_TYPE_SELL_STOP_LIMIT)
_PENDING_TYPES: Final = _LIMIT_TYPES + _STOP_TYPES + _STOP_LIMIT_TYPES
#: SYMBOL_ORDER_* bit of each order type in ``SymbolSpec.order_mode``.
_ORDER_MODE_BIT: Final = {
    c.ORDER_TYPE_BUY: 1,
    c.ORDER_TYPE_SELL: 1,
    c.ORDER_TYPE_BUY_LIMIT: 2,
    c.ORDER_TYPE_SELL_LIMIT: 2,
    c.ORDER_TYPE_BUY_STOP: 4,
    c.ORDER_TYPE_SELL_STOP: 4,
    c.ORDER_TYPE_BUY_STOP_LIMIT: 8,
    c.ORDER_TYPE_SELL_STOP_LIMIT: 8,
    c.ORDER_TYPE_CLOSE_BY: 64,
}
_ORDER_MODE_SL: Final = 16
_ORDER_MODE_TP: Final = 32
#: SYMBOL_FILLING_* bits in ``SymbolSpec.filling_mode``.
_FILLING_FOK: Final = 1
_FILLING_IOC: Final = 2
_FILLING_BOC: Final = 4
#: SYMBOL_EXPIRATION_* bit of each ORDER_TIME_* in ``SymbolSpec.expiration_mode``.
_EXPIRATION_BIT: Final = {
    c.ORDER_TIME_GTC: 1,
    c.ORDER_TIME_DAY: 2,
    c.ORDER_TIME_SPECIFIED: 4,
    c.ORDER_TIME_SPECIFIED_DAY: 8,
}
_DAY_MSC: Final = 86_400_000
#: Volumes are lots with at most a few decimals; sums are rounded to drop float noise.
_VOLUME_DIGITS: Final = 8
_VOLUME_EPS: Final = 1e-9
#: Event kinds during a sync, in the order they are handled when they fall on the same moment.
_EXPIRE, _STOPS, _TRIGGER, _STOP_OUT = range(4)


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """The live money figures of an account, in its currency."""

    profit: float
    equity: float
    margin: float
    margin_free: float
    margin_level: float


class _Request(NamedTuple):
    """A ``TradeRequest``'s fields with their types (the struct's attributes are untyped)."""

    action: int
    magic: int
    order: int
    symbol: str
    volume: float
    price: float
    stoplimit: float
    sl: float
    tp: float
    deviation: int
    type: int
    type_filling: int
    type_time: int
    expiration: int
    comment: str
    position: int
    position_by: int

    @classmethod
    def of(cls, request: Any) -> _Request:
        return cls(*request)


class _Done(NamedTuple):
    """What an executed request reports: deal and order tickets, volume and price."""

    retcode: int
    deal: int = 0
    order: int = 0
    volume: float = 0.0
    price: float = 0.0


class _Rejected(Exception):
    """A request the server refuses, with its retcode (and what else the result carries)."""

    def __init__(
        self,
        retcode: int,
        *,
        prices: tuple[float, float] = (0.0, 0.0),
        figures: AccountFigures | None = None,
    ) -> None:
        super().__init__(retcode)
        self.retcode = retcode
        self.prices = prices
        self.figures = figures


@dataclass(frozen=True, slots=True)
class _Plan:
    """A validated request: ``apply`` executes it on a book (the real one or a scratch copy)."""

    apply: Callable[[AccountBook], _Done]
    #: The only symbol whose orders and positions the plan touches.
    symbol: str
    #: May raise the margin: the free margin after it is checked (10019).
    adds_margin: bool
    #: Tickets of the open orders and positions it changes (the what-if copies only those).
    touches: tuple[int, ...] = ()


class _Scratch(AccountBook):
    """A what-if book: a plan's symbol, with copies of the orders and positions it changes.

    The symbol's other positions are the real book's objects and must only be read. New tickets
    are negative, so they never collide with real ones, and the real book's ticket sequence is
    left untouched.
    """

    __slots__ = ("_scratch_tickets",)

    def __init__(self, book: AccountBook, plan: _Plan) -> None:
        super().__init__(
            book.account,
            orders={t: copy.copy(book.orders[t]) for t in plan.touches if t in book.orders},
            positions={
                t: copy.copy(p) if t in plan.touches else p
                for t, p in book.positions.items()
                if p.symbol == plan.symbol
            },
        )
        # Set after __post_init__, which replaces a zero balance by the account's initial one.
        self.balance = book.balance
        self.credit = book.credit
        self._scratch_tickets = itertools.count(-1, -1)

    def next_ticket(self) -> int:
        return next(self._scratch_tickets)


@dataclass(frozen=True, slots=True)
class _Ticks:
    """The ticks of one symbol over a sync window, as plain arrays."""

    time: npt.NDArray[np.int64]
    bid: npt.NDArray[np.float64]
    ask: npt.NDArray[np.float64]

    @classmethod
    def of(cls, ticks: npt.NDArray[np.void]) -> _Ticks:
        return cls(
            np.asarray(ticks["time_msc"], dtype=np.int64),
            np.asarray(ticks["bid"], dtype=np.float64),
            np.asarray(ticks["ask"], dtype=np.float64),
        )

    def start(self, from_msc: int) -> int:
        """Index of the first tick at or after ``from_msc``."""
        return int(np.searchsorted(self.time, from_msc, side="left"))


@dataclass(frozen=True, slots=True)
class _Event:
    """Something that happens during a sync, and its place in the replay order."""

    time: int
    kind: int
    ticket: int
    #: Whose positions it changes ("" for a stop-out, which marks everything itself).
    symbol: str
    run: Callable[[], object]

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.time, self.kind, self.ticket)


class TradingEngine:
    """The trade server of a ``SimTerminal``: requests, execution and the life of orders.

    Args:
        view: The market as the terminal shows it (symbols, ticks, sessions, AutoTrading).
        seed: Accepted for symmetry with the other simulator parts; the engine draws nothing at
            random (requotes follow real price moves), so its behaviour depends on prices only.
        symbol_suffix: The broker suffix of the symbol names, so currency conversion finds its
            pairs (``EURUSD`` + ``".m"``).
    """

    def __init__(self, view: MarketView, *, seed: int = 0, symbol_suffix: str = "") -> None:
        self.view = view
        self.seed = seed
        self.symbol_suffix = symbol_suffix
        self._request_ids = itertools.count(1)
        # Per book (by identity, holding the book so the id is never reused): msc synced up to.
        self._synced: dict[int, tuple[AccountBook, int]] = {}
        # Quotes by time by symbol, for the last few times asked (a sync reads two or three).
        self._quote_memo: dict[int, dict[str, tuple[float, float] | None]] = {}

    # ================================================================== the contract
    def check(self, book: AccountBook, request: Any, now_msc: int) -> StructSequence:
        """``order_check``: the retcode ``send`` would give and the account after the request.

        Nothing changes in ``book`` because of the request (the book is synced to ``now_msc``).
        Success is retcode 0 with comment ``"Done"``; a refusal carries the current figures, or
        the figures after the request for 10019 (no money).
        """
        self.sync(book, now_msc)
        req = _Request.of(request)
        try:
            plan = self._plan(book, req, now_msc)
            balance, after = self._try(book, plan, now_msc)
        except _Rejected as rejected:
            figures = rejected.figures or self.figures(book, now_msc)
            return _check_result(rejected.retcode, book.balance, figures, request)
        return _check_result(0, balance, after, request)

    def send(self, book: AccountBook, request: Any, now_msc: int) -> StructSequence:
        """``order_send``: validate ``request`` and execute it on ``book`` at ``now_msc``."""
        request_id = next(self._request_ids)
        self.sync(book, now_msc)
        req = _Request.of(request)
        try:
            plan = self._plan(book, req, now_msc)
            if plan.adds_margin:
                self._try(book, plan, now_msc)
            done = plan.apply(book)
        except _Rejected as rejected:
            bid, ask = rejected.prices
            return OrderSendResult(
                (rejected.retcode, 0, 0, 0.0, 0.0, bid, ask, _comment(rejected.retcode),
                 request_id, 0, request)
            )  # fmt: skip
        quote = self._quotes(now_msc)
        bid, ask = (quote(plan.symbol) or (0.0, 0.0)) if done.deal else (0.0, 0.0)
        self._mark(book, now_msc, quote, only=plan.symbol)
        return OrderSendResult(
            (done.retcode, done.deal, done.order, done.volume, done.price, bid, ask,
             _comment(done.retcode), request_id, 0, request)
        )  # fmt: skip

    def sync(self, book: AccountBook, now_msc: int) -> None:
        """Bring ``book`` up to ``now_msc``: replay the ticks since the last sync, then mark.

        Pending orders trigger (a stop-limit becomes a limit order), SL/TP close positions,
        orders expire and a margin level at the stop-out level closes the worst positions, each
        at the moment it happens. Open positions and orders are then marked to the market.
        Cheap when the book has nothing open.
        """
        entry = self._synced.get(id(book))
        last = entry[1] if entry is not None else now_msc
        self._synced[id(book)] = (book, max(last, now_msc))
        if not book.positions and not book.orders:
            return
        if now_msc > last:
            self._replay(book, last + 1, now_msc)
        self._mark(book, now_msc)

    def figures(self, book: AccountBook, now_msc: int) -> AccountFigures:
        """Profit, equity, margin, free margin and margin level at ``now_msc``."""
        quote = self._quotes(now_msc)
        self._mark(book, now_msc, quote)
        return self._figures(book, quote)

    def margin_for(
        self, book: AccountBook, symbol: str, order_type: int, volume: float, price: float
    ) -> float | None:
        """Margin of an order at current conversion rates (``order_calc_margin``), or None."""
        spec = self.view.spec(symbol)
        if spec is None:
            return None
        try:
            value = _calc.margin(
                spec, order_type, volume, price,
                leverage=book.account.leverage, account_currency=book.account.currency,
                quote=self.view.quote, suffix=self.symbol_suffix,
            )  # fmt: skip
        except ValueError:
            return None
        return None if value is None else round(value, book.account.currency_digits)

    # ================================================================== what-if
    def _try(self, book: AccountBook, plan: _Plan, now_msc: int) -> tuple[float, AccountFigures]:
        """Balance and figures after ``plan``, run on a scratch copy of its symbol's trades.

        ``book`` must be marked at ``now_msc`` (``sync`` does it). The other symbols' profit and
        margin are the book's, unchanged by the plan.

        Raises:
            _Rejected: 10019 when the plan raises the margin beyond the free margin.
        """
        quote = self._quotes(now_msc)
        scratch = _Scratch(book, plan)
        margin_before = self._margin(scratch, quote)
        plan.apply(scratch)
        changed = [p for t, p in scratch.positions.items() if book.positions.get(t) is not p]
        self._mark_positions(book.account, changed, quote)
        others = [p for p in book.positions.values() if p.symbol != plan.symbol]
        profit = sum((p.profit + p.swap for p in others), 0.0)
        after = _figures(
            scratch.account,
            scratch.balance + scratch.credit,
            profit + sum((p.profit + p.swap for p in scratch.positions.values()), 0.0),
            self._margin_of(book, others, quote) + self._margin(scratch, quote),
        )
        if plan.adds_margin and after.margin > margin_before + 1e-9 and after.margin_free < 0:
            raise _Rejected(c.TRADE_RETCODE_NO_MONEY, figures=after)
        return scratch.balance, after

    # ================================================================== validation
    def _plan(self, book: AccountBook, req: _Request, now_msc: int) -> _Plan:
        """Validate ``req`` against the book and the market; raise ``_Rejected`` if refused."""
        if not self.view.trade_server_connected:
            raise _Rejected(c.TRADE_RETCODE_CONNECTION)
        if not self.view.trade_allowed:
            raise _Rejected(c.TRADE_RETCODE_CLIENT_DISABLES_AT)
        if not book.account.trade_expert:
            raise _Rejected(c.TRADE_RETCODE_SERVER_DISABLES_AT)
        if not book.account.trade_allowed:
            raise _Rejected(c.TRADE_RETCODE_TRADE_DISABLED)
        planner = {
            c.TRADE_ACTION_DEAL: self._plan_deal,
            c.TRADE_ACTION_PENDING: self._plan_pending,
            c.TRADE_ACTION_SLTP: self._plan_sltp,
            c.TRADE_ACTION_MODIFY: self._plan_modify,
            c.TRADE_ACTION_REMOVE: self._plan_remove,
            c.TRADE_ACTION_CLOSE_BY: self._plan_close_by,
        }.get(req.action)
        if planner is None:
            raise _Rejected(c.TRADE_RETCODE_INVALID)
        return planner(book, req, now_msc)

    def _market(self, symbol: str, now_msc: int) -> tuple[SymbolSpec, float, float]:
        """The instrument and its ``(bid, ask)`` when it can be traded now."""
        spec = self.view.spec(symbol)
        if spec is None or not self.view.is_selected(symbol):
            raise _Rejected(c.TRADE_RETCODE_INVALID)
        if spec.trade_mode == c.SYMBOL_TRADE_MODE_DISABLED:
            raise _Rejected(c.TRADE_RETCODE_TRADE_DISABLED)
        if not self.view.is_open(symbol, now_msc // 1000):
            raise _Rejected(c.TRADE_RETCODE_MARKET_CLOSED)
        tick = self.view.last_tick(symbol, now_msc)
        if tick is None or tick[1] <= 0.0 or tick[2] <= 0.0:
            raise _Rejected(c.TRADE_RETCODE_PRICE_OFF)
        return spec, tick[1], tick[2]

    def _plan_deal(self, book: AccountBook, req: _Request, now_msc: int) -> _Plan:
        spec, bid, ask = self._market(req.symbol, now_msc)
        if req.type not in _MARKET_TYPES or not spec.order_mode & _ORDER_MODE_BIT[req.type]:
            raise _Rejected(c.TRADE_RETCODE_INVALID_ORDER)
        buy = req.type == c.ORDER_TYPE_BUY
        target: SimPosition | None = None
        if req.position:
            target = book.positions.get(req.position)
            if target is None:
                raise _Rejected(c.TRADE_RETCODE_POSITION_CLOSED)
            if target.symbol != req.symbol or _position_is_buy(target) == buy:
                raise _Rejected(c.TRADE_RETCODE_INVALID)
        _check_volume(spec, req.volume)
        if target is not None and req.volume > target.volume + _VOLUME_EPS:
            raise _Rejected(c.TRADE_RETCODE_INVALID_CLOSE_VOLUME)
        netted = None if book.hedging or target is not None else _net_position(book, req.symbol)
        opens = target is None and (
            netted is None
            or _position_is_buy(netted) == buy
            or req.volume > netted.volume + _VOLUME_EPS
        )
        _check_trade_mode(spec, buy, opens=opens)
        _check_filling(spec, req.type_filling, req.type)
        price = ask if buy else bid
        self._check_requote(spec, req, price, bid, ask)
        if opens:
            _check_stops(spec, buy, bid if buy else ask, req.sl, req.tp)
            _check_volume_limit(book, spec, buy, req.volume)
            self._check_convertible(book, spec, req.type, req.volume, price, now_msc)
        if target is not None and book.account.fifo_close:
            _check_fifo(book, target)
        apply = functools.partial(self._apply_deal, req=req, price=price, now_msc=now_msc)
        changed = target or netted
        touches = () if changed is None else (changed.ticket,)
        return _Plan(apply, req.symbol, adds_margin=opens, touches=touches)

    def _check_requote(
        self, spec: SymbolSpec, req: _Request, price: float, bid: float, ask: float
    ) -> None:
        """Instant/request execution: the request price must be within ``deviation`` points."""
        if spec.exemode not in (c.SYMBOL_TRADE_EXECUTION_INSTANT, c.SYMBOL_TRADE_EXECUTION_REQUEST):
            return
        if req.price <= 0.0:
            raise _Rejected(c.TRADE_RETCODE_INVALID_PRICE)
        if abs(price - req.price) > max(req.deviation, 0) * spec.point + _price_eps(spec):
            retcode = (
                c.TRADE_RETCODE_REQUOTE
                if spec.exemode == c.SYMBOL_TRADE_EXECUTION_INSTANT
                else c.TRADE_RETCODE_PRICE_CHANGED
            )
            raise _Rejected(retcode, prices=(bid, ask))

    def _check_convertible(
        self,
        book: AccountBook,
        spec: SymbolSpec,
        order_type: int,
        volume: float,
        price: float,
        now_msc: int,
    ) -> None:
        """10021 when margin cannot be put in the account currency (no conversion pair quotes)."""
        margin = _calc.margin(
            spec, order_type, volume, price, leverage=book.account.leverage,
            account_currency=book.account.currency, quote=self._quotes(now_msc),
            suffix=self.symbol_suffix,
        )  # fmt: skip
        if margin is None:
            raise _Rejected(c.TRADE_RETCODE_PRICE_OFF)

    def _plan_pending(self, book: AccountBook, req: _Request, now_msc: int) -> _Plan:
        spec, bid, ask = self._market(req.symbol, now_msc)
        if req.type not in _PENDING_TYPES or not spec.order_mode & _ORDER_MODE_BIT[req.type]:
            raise _Rejected(c.TRADE_RETCODE_INVALID_ORDER)
        buy = _calc.is_buy(req.type)
        _check_volume(spec, req.volume)
        _check_trade_mode(spec, buy, opens=True)
        _check_pending_prices(spec, req.type, req.price, req.stoplimit, bid, ask)
        _check_stops(spec, buy, _fill_level(req.type, req.price, req.stoplimit), req.sl, req.tp)
        _check_filling(spec, req.type_filling, req.type)
        _check_expiration(spec, req.type_time, req.expiration, now_msc)
        if 0 < book.account.limit_orders <= len(book.orders):
            raise _Rejected(c.TRADE_RETCODE_LIMIT_ORDERS)
        _check_volume_limit(book, spec, buy, req.volume)
        self._check_convertible(book, spec, req.type, req.volume, req.price, now_msc)
        apply = functools.partial(self._apply_pending, req=req, now_msc=now_msc)
        return _Plan(apply, req.symbol, adds_margin=False)

    def _plan_sltp(self, book: AccountBook, req: _Request, now_msc: int) -> _Plan:
        if req.position:
            position = book.positions.get(req.position)
        elif not book.hedging and req.symbol:
            position = _net_position(book, req.symbol)
        else:
            raise _Rejected(c.TRADE_RETCODE_INVALID)
        if position is None:
            raise _Rejected(c.TRADE_RETCODE_POSITION_CLOSED)
        if req.symbol and req.symbol != position.symbol:
            raise _Rejected(c.TRADE_RETCODE_INVALID)
        spec, bid, ask = self._market(position.symbol, now_msc)
        buy = _position_is_buy(position)
        if (req.sl and not spec.order_mode & _ORDER_MODE_SL) or (
            req.tp and not spec.order_mode & _ORDER_MODE_TP
        ):
            raise _Rejected(c.TRADE_RETCODE_INVALID_STOPS)
        if _same_price(spec, req.sl, position.sl) and _same_price(spec, req.tp, position.tp):
            raise _Rejected(c.TRADE_RETCODE_NO_CHANGES)
        close = bid if buy else ask
        if _frozen(spec, close, (position.sl, position.tp)):
            raise _Rejected(c.TRADE_RETCODE_FROZEN)
        _check_stops(spec, buy, close, req.sl, req.tp)
        apply = functools.partial(
            _apply_sltp, ticket=position.ticket, sl=req.sl, tp=req.tp, now_msc=now_msc
        )
        return _Plan(apply, position.symbol, adds_margin=False, touches=(position.ticket,))

    def _plan_modify(self, book: AccountBook, req: _Request, now_msc: int) -> _Plan:
        order = self._active_order(book, req)
        spec, bid, ask = self._market(order.symbol, now_msc)
        buy = _calc.is_buy(order.type)
        stoplimit = req.stoplimit if order.type in _STOP_LIMIT_TYPES else 0.0
        if (
            _same_price(spec, req.price, order.price_open)
            and _same_price(spec, stoplimit, order.price_stoplimit)
            and _same_price(spec, req.sl, order.sl)
            and _same_price(spec, req.tp, order.tp)
            and req.type_time == order.type_time
            and _stored_expiration(req.type_time, req.expiration) == order.time_expiration
        ):
            raise _Rejected(c.TRADE_RETCODE_NO_CHANGES)
        if _frozen(spec, ask if buy else bid, (order.price_open,)):
            raise _Rejected(c.TRADE_RETCODE_FROZEN)
        _check_pending_prices(spec, order.type, req.price, stoplimit, bid, ask)
        _check_stops(spec, buy, _fill_level(order.type, req.price, stoplimit), req.sl, req.tp)
        _check_expiration(spec, req.type_time, req.expiration, now_msc)
        apply = functools.partial(_apply_modify, ticket=order.ticket, req=req, stoplimit=stoplimit)
        return _Plan(apply, order.symbol, adds_margin=False, touches=(order.ticket,))

    def _plan_remove(self, book: AccountBook, req: _Request, now_msc: int) -> _Plan:
        order = self._active_order(book, req)
        spec, bid, ask = self._market(order.symbol, now_msc)
        if _frozen(spec, ask if _calc.is_buy(order.type) else bid, (order.price_open,)):
            raise _Rejected(c.TRADE_RETCODE_FROZEN)
        apply = functools.partial(
            _retire, ticket=order.ticket, state=c.ORDER_STATE_CANCELED, now_msc=now_msc
        )
        return _Plan(apply, order.symbol, adds_margin=False, touches=(order.ticket,))

    @staticmethod
    def _active_order(book: AccountBook, req: _Request) -> SimOrder:
        order = book.orders.get(req.order)
        if order is None:
            raise _Rejected(c.TRADE_RETCODE_INVALID_ORDER)
        if req.symbol and req.symbol != order.symbol:
            raise _Rejected(c.TRADE_RETCODE_INVALID)
        return order

    def _plan_close_by(self, book: AccountBook, req: _Request, now_msc: int) -> _Plan:
        if not book.hedging:
            raise _Rejected(c.TRADE_RETCODE_INVALID)
        position = book.positions.get(req.position)
        by = book.positions.get(req.position_by)
        if position is None or by is None:
            raise _Rejected(c.TRADE_RETCODE_POSITION_CLOSED)
        if (
            position.ticket == by.ticket
            or position.symbol != by.symbol
            or position.type == by.type
            or (req.symbol and req.symbol != position.symbol)
        ):
            raise _Rejected(c.TRADE_RETCODE_INVALID)
        spec, _, _ = self._market(position.symbol, now_msc)
        if not spec.order_mode & _ORDER_MODE_BIT[c.ORDER_TYPE_CLOSE_BY]:
            raise _Rejected(c.TRADE_RETCODE_INVALID_ORDER)
        if book.account.fifo_close:
            _check_fifo(book, position)
            _check_fifo(book, by)
        apply = functools.partial(self._apply_close_by, req=req, now_msc=now_msc)
        touches = (position.ticket, by.ticket)
        return _Plan(apply, position.symbol, adds_margin=False, touches=touches)

    # ================================================================== execution
    def _apply_deal(self, book: AccountBook, *, req: _Request, price: float, now_msc: int) -> _Done:
        order = SimOrder(
            ticket=book.next_ticket(),
            symbol=req.symbol,
            type=req.type,
            volume_initial=req.volume,
            volume_current=req.volume,
            price_open=price,
            time_setup_msc=now_msc,
            type_time=req.type_time,
            type_filling=req.type_filling,
            magic=req.magic,
            sl=req.sl,
            tp=req.tp,
            comment=req.comment,
        )
        deal = self._fill(book, order, price, now_msc, close=req.position)
        return _Done(c.TRADE_RETCODE_DONE, deal.ticket, order.ticket, deal.volume, price)

    def _apply_pending(self, book: AccountBook, *, req: _Request, now_msc: int) -> _Done:
        order = SimOrder(
            ticket=book.next_ticket(),
            symbol=req.symbol,
            type=req.type,
            volume_initial=req.volume,
            volume_current=req.volume,
            price_open=req.price,
            price_stoplimit=req.stoplimit if req.type in _STOP_LIMIT_TYPES else 0.0,
            time_setup_msc=now_msc,
            time_expiration=_stored_expiration(req.type_time, req.expiration),
            type_time=req.type_time,
            type_filling=req.type_filling,
            state=c.ORDER_STATE_PLACED,
            magic=req.magic,
            sl=req.sl,
            tp=req.tp,
            comment=req.comment,
        )
        book.orders[order.ticket] = order
        return _Done(c.TRADE_RETCODE_PLACED, 0, order.ticket, req.volume, req.price)

    def _apply_close_by(self, book: AccountBook, *, req: _Request, now_msc: int) -> _Done:
        position = book.positions[req.position]
        by = book.positions[req.position_by]
        volume = min(position.volume, by.volume)
        order = SimOrder(
            ticket=book.next_ticket(),
            symbol=position.symbol,
            type=c.ORDER_TYPE_CLOSE_BY,
            volume_initial=volume,
            volume_current=volume,
            price_open=0.0,
            time_setup_msc=now_msc,
            magic=req.magic,
            position_id=position.identifier,
            position_by_id=by.identifier,
            comment=req.comment,
        )
        first = self._close_part(
            book, order, position, volume, by.price_open, now_msc, entry=c.DEAL_ENTRY_OUT_BY
        )
        self._close_part(book, order, by, volume, by.price_open, now_msc, entry=c.DEAL_ENTRY_OUT_BY)
        _to_history(book, order, now_msc, position_id=position.identifier, price=by.price_open)
        return _Done(c.TRADE_RETCODE_DONE, first.ticket, order.ticket, volume, by.price_open)

    def _fill(
        self,
        book: AccountBook,
        order: SimOrder,
        price: float,
        now_msc: int,
        *,
        close: int = 0,
        reason: int = c.DEAL_REASON_EXPERT,
    ) -> SimDeal:
        """Execute ``order`` (market, triggered pending, SL/TP/SO) at ``price``: deal, position.

        ``close`` is the ticket of the position the order closes (hedging ``position=``, SL/TP,
        stop-out). Otherwise a hedging account opens a position and a netting account adds to,
        reduces, closes or reverses the symbol's position.
        """
        volume = order.volume_current
        buy = _calc.is_buy(order.type)
        if close:
            position: SimPosition | None = book.positions[close]
        else:
            position = None if book.hedging else _net_position(book, order.symbol)
        if position is None or _position_is_buy(position) == buy:
            if position is None:
                position = _open_position(book, order, price, now_msc)
            else:
                _add_to_position(position, order, price, now_msc)
            deal = self._deal(
                book, order, c.DEAL_ENTRY_IN, volume, price, now_msc, reason,
                buy=buy, position_id=position.identifier,
            )  # fmt: skip
        elif volume <= position.volume + _VOLUME_EPS:
            deal = self._close_part(
                book, order, position, volume, price, now_msc, entry=c.DEAL_ENTRY_OUT,
                reason=reason,
            )  # fmt: skip
        else:
            closed = position.volume
            deal = self._close_part(
                book, order, position, volume, price, now_msc, entry=c.DEAL_ENTRY_INOUT,
                reason=reason, closed=closed,
            )  # fmt: skip
            _reverse_position(book, position, order, _volume(volume - closed), price, now_msc)
        _to_history(book, order, now_msc, position_id=deal.position_id, price=price)
        return deal

    def _close_part(
        self,
        book: AccountBook,
        order: SimOrder,
        position: SimPosition,
        volume: float,
        price: float,
        now_msc: int,
        *,
        entry: int,
        reason: int = c.DEAL_REASON_EXPERT,
        closed: float | None = None,
    ) -> SimDeal:
        """A deal closing ``closed`` lots (default ``volume``) of ``position`` at ``price``."""
        closed = volume if closed is None else closed
        spec = self._spec(position.symbol)
        profit = _calc.profit(
            spec, position.type, closed, position.price_open, price,
            account_currency=book.account.currency, quote=self._quotes(now_msc),
            suffix=self.symbol_suffix,
        )  # fmt: skip
        deal = self._deal(
            book, order, entry, volume, price, now_msc, reason,
            buy=not _position_is_buy(position), position_id=position.identifier,
        )  # fmt: skip
        deal.profit = round(profit or 0.0, book.account.currency_digits)
        book.balance = round(book.balance + deal.profit, book.account.currency_digits)
        position.volume = _volume(position.volume - closed)
        position.time_update_msc = now_msc
        if position.volume <= _VOLUME_EPS:
            del book.positions[position.ticket]
        return deal

    @staticmethod
    def _deal(
        book: AccountBook,
        order: SimOrder,
        entry: int,
        volume: float,
        price: float,
        now_msc: int,
        reason: int,
        *,
        buy: bool,
        position_id: int,
    ) -> SimDeal:
        deal = SimDeal(
            ticket=book.next_ticket(),
            order=order.ticket,
            symbol=order.symbol,
            type=c.DEAL_TYPE_BUY if buy else c.DEAL_TYPE_SELL,
            entry=entry,
            volume=volume,
            price=price,
            time_msc=now_msc,
            magic=order.magic,
            position_id=position_id,
            reason=reason,
            comment=order.comment,
        )
        book.deals.append(deal)
        return deal

    # ================================================================== the clock moves
    def _replay(self, book: AccountBook, from_msc: int, to_msc: int) -> None:
        """Handle every event in ``[from_msc, to_msc]`` in the order it happens."""
        symbols = sorted({p.symbol for p in book.positions.values()} | {
            o.symbol for o in book.orders.values()
        })  # fmt: skip
        ticks = {s: _Ticks.of(self.view.ticks(s, from_msc, to_msc)) for s in symbols}
        cursor = stop_out_from = from_msc
        while True:
            events = self._events(book, ticks, cursor, stop_out_from, to_msc)
            event = min(events, key=lambda e: e.key, default=None)
            if event is None:
                return
            cursor = event.time
            event.run()
            if event.kind == _STOP_OUT:
                stop_out_from = event.time + 1
            else:
                # Keeps every position's price_current and profit a consistent pair, which the
                # stop-out scan extrapolates from.
                self._mark(book, event.time, only=event.symbol)

    def _events(
        self,
        book: AccountBook,
        ticks: dict[str, _Ticks],
        cursor: int,
        stop_out_from: int,
        to_msc: int,
    ) -> Iterator[_Event]:
        """The next event of each order and position, and the next stop-out."""
        for order in book.orders.values():
            expiry = _expiry_msc(order)
            if expiry is not None and expiry <= to_msc:
                expire = functools.partial(
                    _retire, book, ticket=order.ticket, state=c.ORDER_STATE_EXPIRED,
                    now_msc=max(expiry, cursor),
                )  # fmt: skip
                yield _Event(max(expiry, cursor), _EXPIRE, order.ticket, order.symbol, expire)
            series = ticks.get(order.symbol)
            if series is not None:
                trigger = self._order_trigger(book, order, series, cursor)
                if trigger is not None:
                    yield trigger
        for position in book.positions.values():
            series = ticks.get(position.symbol)
            if series is not None and (position.sl or position.tp):
                stop = self._stops_trigger(book, position, series, cursor)
                if stop is not None:
                    yield stop
        # The scan starts at the cursor too: earlier moments had other positions open.
        scan_from = max(stop_out_from, cursor)
        if book.positions and scan_from <= to_msc:
            moment = self._stop_out_time(book, ticks, scan_from)
            if moment is not None:
                stop_out = functools.partial(self._stop_out, book, moment)
                yield _Event(moment, _STOP_OUT, 0, "", stop_out)

    def _order_trigger(
        self, book: AccountBook, order: SimOrder, series: _Ticks, cursor: int
    ) -> _Event | None:
        start = series.start(cursor)
        buy = _calc.is_buy(order.type)
        prices = (series.ask if buy else series.bid)[start:]
        eps = _price_eps(self._spec(order.symbol))
        if order.type in _LIMIT_TYPES:
            hit = prices <= order.price_open + eps if buy else prices >= order.price_open - eps
        else:
            hit = prices >= order.price_open - eps if buy else prices <= order.price_open + eps
        index = _first(hit)
        if index is None:
            return None
        i = start + index
        at = int(series.time[i])
        if order.type in _STOP_LIMIT_TYPES:
            run = functools.partial(_activate_stop_limit, order)
        else:
            price = float(series.ask[i] if buy else series.bid[i])
            run = functools.partial(self._trigger_pending, book, order.ticket, price, at)
        return _Event(at, _TRIGGER, order.ticket, order.symbol, run)

    def _stops_trigger(
        self, book: AccountBook, position: SimPosition, series: _Ticks, cursor: int
    ) -> _Event | None:
        start = series.start(cursor)
        buy = _position_is_buy(position)
        prices = (series.bid if buy else series.ask)[start:]
        eps = _price_eps(self._spec(position.symbol))
        never = np.zeros(len(prices), dtype=np.bool_)
        sign = 1.0 if buy else -1.0
        # A buy's SL is hit when the bid falls to it, its TP when the bid rises to it; mirrored
        # (on the ask) for a sell.
        sl_hit = sign * (prices - position.sl) <= eps if position.sl else never
        tp_hit = sign * (prices - position.tp) >= -eps if position.tp else never
        index = _first(sl_hit | tp_hit)
        if index is None:
            return None
        i = start + index
        at = int(series.time[i])
        by_sl = bool(sl_hit[index])
        price = float(prices[index])
        run = functools.partial(self._close_by_stop, book, position.ticket, price, at, by_sl)
        return _Event(at, _STOPS, position.ticket, position.symbol, run)

    def _trigger_pending(self, book: AccountBook, ticket: int, price: float, at: int) -> None:
        """A pending order's price was reached: fill it, or reject it if it cannot be afforded."""
        order = book.orders.pop(ticket)
        self._mark(book, at)  # the money check reads the other positions' marks

        def fill(target: AccountBook) -> _Done:
            filled = order if target is book else copy.copy(order)
            deal = self._fill(target, filled, price, at)
            return _Done(c.TRADE_RETCODE_DONE, deal.ticket, filled.ticket)

        netted = None if book.hedging else _net_position(book, order.symbol)
        touches = () if netted is None else (netted.ticket,)
        plan = _Plan(fill, order.symbol, adds_margin=True, touches=touches)
        try:
            self._try(book, plan, at)
        except _Rejected:
            order.state = c.ORDER_STATE_REJECTED
            order.time_done_msc = at
            book.history_orders.append(order)
            return
        plan.apply(book)

    def _close_by_stop(
        self, book: AccountBook, ticket: int, price: float, at: int, by_sl: bool
    ) -> None:
        position = book.positions[ticket]
        level = position.sl if by_sl else position.tp
        digits = self._spec(position.symbol).digits
        tag = "sl" if by_sl else "tp"
        reasons = (c.ORDER_REASON_SL, c.DEAL_REASON_SL) if by_sl else (
            c.ORDER_REASON_TP, c.DEAL_REASON_TP
        )  # fmt: skip
        self._close_position(book, position, price, at, reasons, f"[{tag} {level:.{digits}f}]")

    def _close_position(
        self,
        book: AccountBook,
        position: SimPosition,
        price: float,
        at: int,
        reasons: tuple[int, int],
        comment: str,
    ) -> None:
        """Close all of ``position`` at ``price`` with a server-made order (SL, TP, stop-out)."""
        order = SimOrder(
            ticket=book.next_ticket(),
            symbol=position.symbol,
            type=c.ORDER_TYPE_SELL if _position_is_buy(position) else c.ORDER_TYPE_BUY,
            volume_initial=position.volume,
            volume_current=position.volume,
            price_open=price,
            time_setup_msc=at,
            magic=position.magic,
            position_id=position.identifier,
            reason=reasons[0],
            comment=comment,
        )
        self._fill(book, order, price, at, close=position.ticket, reason=reasons[1])

    def _stop_out_time(
        self, book: AccountBook, ticks: dict[str, _Ticks], from_msc: int
    ) -> int | None:
        """First tick time at or after ``from_msc`` when the margin level is at stop-out.

        Vectorised over the ticks. Each position's profit is extrapolated from its mark
        (``price_current``/``profit``) along its symbol's profit per lot and price unit at
        the rates before ``from_msc``, and the margin is held at its value then; ``_stop_out``
        re-checks exactly before closing anything.
        """
        moving = {
            symbol: (series, start)
            for symbol, series in ticks.items()
            if (start := series.start(from_msc)) < len(series.time)
        }
        if not moving:
            return None
        account = book.account
        quote = self._quotes(from_msc - 1)
        margin = self._margin(book, quote)
        if margin <= 0.0:
            return None
        threshold = (
            account.margin_so_so * margin / 100.0
            if account.margin_so_mode == c.ACCOUNT_STOPOUT_MODE_PERCENT
            else account.margin_so_so
        )
        equity = book.balance + book.credit + sum(p.profit for p in book.positions.values())
        times: list[npt.NDArray[np.int64]] = []
        moves: list[npt.NDArray[np.float64]] = []
        for symbol, positions in _by_symbol(book.positions.values()).items():
            if symbol not in moving:
                continue
            series, start = moving[symbol]
            move = np.zeros(len(series.time) - start, dtype=np.float64)
            for buy, prices in ((True, series.bid[start:]), (False, series.ask[start:])):
                side = [p for p in positions if _position_is_buy(p) == buy]
                if side:
                    # Profit change = slope * sum(volume * (price - mark)).
                    volume = sum(p.volume for p in side)
                    marked = sum(p.volume * p.price_current for p in side)
                    slope = self._profit_slope(book, side[0], quote)
                    move += slope * (volume * prices - marked)
            times.append(series.time[start:])
            moves.append(move)
        if not times:
            return None
        moments, total = _merge_steps(times, moves)
        index = _first(equity + total <= threshold)
        return None if index is None else int(moments[index])

    def _profit_slope(self, book: AccountBook, position: SimPosition, quote: _calc.Quote) -> float:
        """Profit of one lot of ``position``'s type per unit rise of its closing price."""
        spec = self._spec(position.symbol)
        step = max(spec.point * 100.0, abs(position.price_open) * 1e-3)
        base = position.price_current or position.price_open
        profit = _calc.profit(
            spec, position.type, 1.0, base, base + step,
            account_currency=book.account.currency, quote=quote, suffix=self.symbol_suffix,
        )  # fmt: skip
        return 0.0 if profit is None else profit / step

    def _stop_out(self, book: AccountBook, at: int) -> None:
        """Close the worst positions while the margin level is at or below stop-out."""
        account = book.account
        quote = self._quotes(at)
        while book.positions:
            self._mark(book, at, quote)
            figures = self._figures(book, quote)
            level = (
                figures.margin_level
                if account.margin_so_mode == c.ACCOUNT_STOPOUT_MODE_PERCENT
                else figures.equity
            )
            if figures.margin <= 0.0 or level > account.margin_so_so:
                return
            worst = min(book.positions.values(), key=lambda p: (p.profit, p.ticket))
            comment = f"[so {figures.margin_level:.2f}%/{figures.equity:.2f}/{figures.margin:.2f}]"
            self._close_position(
                book, worst, worst.price_current, at, (c.ORDER_REASON_SO, c.DEAL_REASON_SO), comment
            )

    # ================================================================== money
    def _quotes(self, at_msc: int) -> _calc.Quote:
        """``(bid, ask)`` of any symbol at ``at_msc`` (for conversions and marking).

        Memoised for the last few ``at_msc``: a request reads the same quotes many times.
        """
        if len(self._quote_memo) > 4 and at_msc not in self._quote_memo:
            self._quote_memo.clear()
        memo = self._quote_memo.setdefault(at_msc, {})

        def quote(symbol: str) -> tuple[float, float] | None:
            if symbol not in memo:
                tick = self.view.last_tick(symbol, at_msc)
                memo[symbol] = None if tick is None else (tick[1], tick[2])
            return memo[symbol]

        return quote

    def _mark(
        self,
        book: AccountBook,
        now_msc: int,
        quote: _calc.Quote | None = None,
        *,
        only: str | None = None,
    ) -> None:
        """Set the current price and profit of every open position and order (of ``only``)."""
        if not book.positions and not book.orders:
            return
        quote = quote or self._quotes(now_msc)
        positions = book.positions.values()
        self._mark_positions(
            book.account,
            positions if only is None else [p for p in positions if p.symbol == only],
            quote,
        )
        for order in book.orders.values():
            if only is not None and order.symbol != only:
                continue
            prices = quote(order.symbol)
            if prices is not None:
                order.price_current = prices[1] if _calc.is_buy(order.type) else prices[0]

    def _mark_positions(
        self, account: SimAccount, positions: Iterable[SimPosition], quote: _calc.Quote
    ) -> None:
        """Set ``price_current`` (the closing side of the quote) and ``profit`` of positions."""
        for symbol, group in _by_symbol(positions).items():
            prices = quote(symbol)
            if prices is None:
                continue
            spec = self._spec(symbol)
            for position in group:
                close = prices[0] if position.type == c.POSITION_TYPE_BUY else prices[1]
                position.price_current = close
                profit = _calc.profit(
                    spec, position.type, position.volume, position.price_open, close,
                    account_currency=account.currency, quote=quote, suffix=self.symbol_suffix,
                )  # fmt: skip
                position.profit = round(profit or 0.0, account.currency_digits)

    def _figures(self, book: AccountBook, quote: _calc.Quote) -> AccountFigures:
        """The figures from the positions' current marks."""
        return _figures(
            book.account,
            book.balance + book.credit,
            sum((p.profit + p.swap for p in book.positions.values()), 0.0),
            self._margin(book, quote),
        )

    def _margin(self, book: AccountBook, quote: _calc.Quote) -> float:
        """Margin of the open positions of ``book``."""
        return self._margin_of(book, book.positions.values(), quote)

    def _margin_of(
        self, book: AccountBook, positions: Iterable[SimPosition], quote: _calc.Quote
    ) -> float:
        """Margin of ``positions``; hedged volume is charged once (see module docs)."""
        total = 0.0
        for symbol, group in _by_symbol(positions).items():
            spec = self._spec(symbol)
            sides = {True: [0.0, 0.0], False: [0.0, 0.0]}  # buy?: [volume, margin]
            for p in group:
                value = _calc.margin(
                    spec, p.type, p.volume, p.price_open, leverage=book.account.leverage,
                    account_currency=book.account.currency, quote=quote,
                    suffix=self.symbol_suffix,
                )  # fmt: skip
                side = sides[p.type == c.POSITION_TYPE_BUY]
                side[0] += p.volume
                side[1] += value or 0.0
            total += _net_margin(spec, *sides[True], *sides[False])
        return total

    def _spec(self, symbol: str) -> SymbolSpec:
        spec = self.view.spec(symbol)
        if spec is None:
            msg = f"{symbol!r} has open trades but the terminal no longer offers it"
            raise LookupError(msg)
        return spec


# ====================================================================== validation helpers
def _figures(
    account: SimAccount, balance_and_credit: float, profit: float, margin: float
) -> AccountFigures:
    digits = account.currency_digits
    profit = round(profit, digits)
    equity = round(balance_and_credit + profit, digits)
    margin = round(margin, digits)
    level = round(equity / margin * 100.0, 2) if margin > 0.0 else 0.0
    return AccountFigures(profit, equity, margin, round(equity - margin, digits), level)


def _check_result(
    retcode: int, balance: float, figures: AccountFigures, request: Any
) -> StructSequence:
    return OrderCheckResult(
        (retcode, balance, figures.equity, figures.profit, figures.margin,
         figures.margin_free, figures.margin_level,
         _CHECK_DONE if retcode == 0 else _comment(retcode), request)
    )  # fmt: skip


def _comment(retcode: int) -> str:
    return RETCODE_COMMENTS.get(retcode, f"Retcode {retcode}")


def _price_eps(spec: SymbolSpec) -> float:
    """Tolerance when comparing prices that are multiples of the point."""
    return spec.point * 1e-3


def _on_grid(value: float, step: float) -> bool:
    steps = value / step
    return abs(steps - round(steps)) < 1e-6


def _same_price(spec: SymbolSpec, a: float, b: float) -> bool:
    return abs(a - b) <= _price_eps(spec)


def _check_volume(spec: SymbolSpec, volume: float) -> None:
    """10014 unless ``volume`` is within [min, max] and a multiple of the volume step."""
    if (
        not volume > 0.0
        or volume < spec.volume_min - _VOLUME_EPS
        or volume > spec.volume_max + _VOLUME_EPS
        or not _on_grid(volume, spec.volume_step)
    ):
        raise _Rejected(c.TRADE_RETCODE_INVALID_VOLUME)


def _check_trade_mode(spec: SymbolSpec, buy: bool, *, opens: bool) -> None:
    """Long-only, short-only and close-only symbols refuse the trades that open exposure."""
    if not opens:
        return
    if spec.trade_mode == c.SYMBOL_TRADE_MODE_CLOSEONLY:
        raise _Rejected(c.TRADE_RETCODE_CLOSE_ONLY)
    if spec.trade_mode == c.SYMBOL_TRADE_MODE_LONGONLY and not buy:
        raise _Rejected(c.TRADE_RETCODE_LONG_ONLY)
    if spec.trade_mode == c.SYMBOL_TRADE_MODE_SHORTONLY and buy:
        raise _Rejected(c.TRADE_RETCODE_SHORT_ONLY)


def _check_filling(spec: SymbolSpec, filling: int, order_type: int) -> None:
    """10030 unless the symbol's ``filling_mode`` bitmask allows ``filling`` for this order.

    FOK needs bit 1 and IOC bit 2; RETURN is allowed for pending orders and outside market
    execution; BOC (book or cancel) only for limit orders with bit 4.
    """
    pending = order_type in _PENDING_TYPES
    if filling == c.ORDER_FILLING_FOK:
        allowed = bool(spec.filling_mode & _FILLING_FOK)
    elif filling == c.ORDER_FILLING_IOC:
        allowed = bool(spec.filling_mode & _FILLING_IOC)
    elif filling == c.ORDER_FILLING_RETURN:
        allowed = pending or spec.exemode != c.SYMBOL_TRADE_EXECUTION_MARKET
    elif filling == c.ORDER_FILLING_BOC:
        allowed = order_type in _LIMIT_TYPES and bool(spec.filling_mode & _FILLING_BOC)
    else:
        allowed = False
    if not allowed:
        raise _Rejected(c.TRADE_RETCODE_INVALID_FILL)


def _check_stops(spec: SymbolSpec, buy: bool, reference: float, sl: float, tp: float) -> None:
    """10016 unless SL/TP (0 = none) are on the right side of ``reference``, far enough.

    ``reference`` is the price the position would close at now (bid for a buy, ask for a sell)
    or, for a pending order, the price it will open at. The distance is the stops level.
    """
    distance = spec.stops_level * spec.point
    eps = _price_eps(spec)
    for level, below in ((sl, buy), (tp, not buy)):
        if level == 0.0:
            continue
        gap = reference - level if below else level - reference
        if level < 0.0 or gap <= eps or gap < distance - eps or not _on_grid(level, spec.point):
            raise _Rejected(c.TRADE_RETCODE_INVALID_STOPS)


def _check_pending_prices(
    spec: SymbolSpec, order_type: int, price: float, stoplimit: float, bid: float, ask: float
) -> None:
    """10015 unless a pending order's price is on its side of the market, past the stops level.

    Limits wait below the ask (buy) or above the bid (sell), stops above the ask or below the
    bid; a stop-limit's limit price lies at or beyond its stop price on the pullback side.
    """
    eps = _price_eps(spec)
    distance = spec.stops_level * spec.point
    buy = _calc.is_buy(order_type)
    if price <= 0.0 or not _on_grid(price, spec.point):
        raise _Rejected(c.TRADE_RETCODE_INVALID_PRICE)
    market = ask if buy else bid
    # Positive gap: the order is on the side where it waits.
    waits_below = (order_type in _LIMIT_TYPES) == buy
    gap = market - price if waits_below else price - market
    if gap <= eps or gap < distance - eps:
        raise _Rejected(c.TRADE_RETCODE_INVALID_PRICE)
    if order_type in _STOP_LIMIT_TYPES:
        pullback = price - stoplimit if buy else stoplimit - price
        if stoplimit <= 0.0 or not _on_grid(stoplimit, spec.point) or pullback < -eps:
            raise _Rejected(c.TRADE_RETCODE_INVALID_PRICE)


def _check_expiration(spec: SymbolSpec, type_time: int, expiration: int, now_msc: int) -> None:
    """10022 unless the symbol allows ``type_time`` and a given expiration is in the future."""
    bit = _EXPIRATION_BIT.get(type_time)
    if bit is None or not spec.expiration_mode & bit:
        raise _Rejected(c.TRADE_RETCODE_INVALID_EXPIRATION)
    if type_time == c.ORDER_TIME_SPECIFIED and expiration * 1000 <= now_msc:
        raise _Rejected(c.TRADE_RETCODE_INVALID_EXPIRATION)
    if type_time == c.ORDER_TIME_SPECIFIED_DAY and _day_end(expiration * 1000) <= now_msc:
        raise _Rejected(c.TRADE_RETCODE_INVALID_EXPIRATION)


def _check_volume_limit(book: AccountBook, spec: SymbolSpec, buy: bool, volume: float) -> None:
    """10034 when positions and pending orders in one direction would exceed ``volume_limit``."""
    if spec.volume_limit <= 0.0:
        return
    held = sum(
        p.volume
        for p in book.positions.values()
        if p.symbol == spec.name and _position_is_buy(p) == buy
    ) + sum(
        o.volume_current
        for o in book.orders.values()
        if o.symbol == spec.name and _calc.is_buy(o.type) == buy
    )
    if held + volume > spec.volume_limit + _VOLUME_EPS:
        raise _Rejected(c.TRADE_RETCODE_LIMIT_VOLUME)


def _check_fifo(book: AccountBook, position: SimPosition) -> None:
    """10045 when a FIFO account closes a position before an older one of the same symbol."""
    oldest = min(
        (p for p in book.positions.values() if p.symbol == position.symbol),
        key=lambda p: (p.time_msc, p.ticket),
    )
    if oldest.ticket != position.ticket:
        raise _Rejected(c.TRADE_RETCODE_FIFO_CLOSE)


def _frozen(spec: SymbolSpec, market: float, levels: tuple[float, ...]) -> bool:
    """True when a level (order price, SL, TP) is within the freeze level of the market."""
    distance = spec.freeze_level * spec.point
    return distance > 0.0 and any(
        level and abs(market - level) < distance - _price_eps(spec) for level in levels
    )


# ====================================================================== book helpers
def _volume(value: float) -> float:
    return round(value, _VOLUME_DIGITS)


def _position_is_buy(position: SimPosition) -> bool:
    return position.type == c.POSITION_TYPE_BUY


def _net_position(book: AccountBook, symbol: str) -> SimPosition | None:
    return next((p for p in book.positions.values() if p.symbol == symbol), None)


def _by_symbol(positions: Iterable[SimPosition]) -> dict[str, list[SimPosition]]:
    grouped: dict[str, list[SimPosition]] = {}
    for position in positions:
        grouped.setdefault(position.symbol, []).append(position)
    return grouped


def _net_margin(
    spec: SymbolSpec, buy_volume: float, buy_margin: float, sell_volume: float, sell_margin: float
) -> float:
    """A symbol's margin with the overlapping (hedged) volume charged once, at the hedged rate."""
    hedged = min(buy_volume, sell_volume)
    if hedged <= 0.0:
        return buy_margin + sell_margin
    per_buy = buy_margin / buy_volume
    per_sell = sell_margin / sell_volume
    reference = spec.margin_initial or spec.contract_size
    rate = spec.margin_hedged / reference if spec.margin_hedged > 0.0 and reference else 1.0
    return (
        (buy_volume - hedged) * per_buy
        + (sell_volume - hedged) * per_sell
        + hedged * rate * (per_buy + per_sell) / 2.0
    )


def _open_position(book: AccountBook, order: SimOrder, price: float, now_msc: int) -> SimPosition:
    position = SimPosition(
        ticket=order.ticket,
        symbol=order.symbol,
        type=c.POSITION_TYPE_BUY if _calc.is_buy(order.type) else c.POSITION_TYPE_SELL,
        volume=order.volume_current,
        price_open=price,
        time_msc=now_msc,
        time_update_msc=now_msc,
        identifier=order.ticket,
        magic=order.magic,
        reason=order.reason,
        sl=order.sl,
        tp=order.tp,
        price_current=price,
        comment=order.comment,
    )
    book.positions[position.ticket] = position
    return position


def _add_to_position(position: SimPosition, order: SimOrder, price: float, now_msc: int) -> None:
    """Netting: a deal in the position's direction averages into it."""
    volume = _volume(position.volume + order.volume_current)
    position.price_open = (
        position.price_open * position.volume + price * order.volume_current
    ) / volume
    position.volume = volume
    position.time_update_msc = now_msc
    if order.sl:
        position.sl = order.sl
    if order.tp:
        position.tp = order.tp


def _reverse_position(
    book: AccountBook,
    position: SimPosition,
    order: SimOrder,
    volume: float,
    price: float,
    now_msc: int,
) -> None:
    """Netting: the rest of a deal larger than the position opens the other way (same id)."""
    position.type = c.POSITION_TYPE_BUY if _calc.is_buy(order.type) else c.POSITION_TYPE_SELL
    position.volume = volume
    position.price_open = position.price_current = price
    position.time_msc = position.time_update_msc = now_msc
    position.sl, position.tp = order.sl, order.tp
    book.positions[position.ticket] = position


def _to_history(
    book: AccountBook, order: SimOrder, now_msc: int, *, position_id: int, price: float
) -> None:
    """A filled order leaves the active list for the history."""
    order.state = c.ORDER_STATE_FILLED
    order.volume_current = 0.0
    order.time_done_msc = now_msc
    order.position_id = position_id
    order.price_current = price
    book.history_orders.append(order)


def _retire(book: AccountBook, *, ticket: int, state: int, now_msc: int) -> _Done:
    """A pending order leaves unfilled (canceled or expired)."""
    order = book.orders.pop(ticket)
    order.state = state
    order.time_done_msc = now_msc
    book.history_orders.append(order)
    return _Done(c.TRADE_RETCODE_DONE, 0, ticket, order.volume_current, order.price_open)


def _apply_sltp(book: AccountBook, *, ticket: int, sl: float, tp: float, now_msc: int) -> _Done:
    position = book.positions[ticket]
    position.sl, position.tp = sl, tp
    position.time_update_msc = now_msc
    return _Done(c.TRADE_RETCODE_DONE, 0, 0, position.volume, 0.0)


def _apply_modify(book: AccountBook, *, ticket: int, req: _Request, stoplimit: float) -> _Done:
    order = book.orders[ticket]
    order.price_open = req.price
    order.price_stoplimit = stoplimit
    order.sl, order.tp = req.sl, req.tp
    order.type_time = req.type_time
    order.time_expiration = _stored_expiration(req.type_time, req.expiration)
    return _Done(c.TRADE_RETCODE_DONE, 0, ticket, order.volume_current, req.price)


def _activate_stop_limit(order: SimOrder) -> None:
    """A stop-limit's stop price was reached: it becomes a limit order at its limit price."""
    order.type = (
        c.ORDER_TYPE_BUY_LIMIT
        if order.type == c.ORDER_TYPE_BUY_STOP_LIMIT
        else c.ORDER_TYPE_SELL_LIMIT
    )
    order.price_open = order.price_stoplimit
    order.price_stoplimit = 0.0


def _fill_level(order_type: int, price: float, stoplimit: float) -> float:
    """The price a pending order will open at (a stop-limit's limit price)."""
    return stoplimit if order_type in _STOP_LIMIT_TYPES else price


def _day_end(at_msc: int) -> int:
    """Start of the next server day (UTC) after ``at_msc``."""
    return (at_msc // _DAY_MSC + 1) * _DAY_MSC


def _stored_expiration(type_time: int, expiration: int) -> int:
    """``time_expiration`` as the order shows it: given only for the SPECIFIED kinds."""
    return expiration if type_time in (c.ORDER_TIME_SPECIFIED, c.ORDER_TIME_SPECIFIED_DAY) else 0


def _expiry_msc(order: SimOrder) -> int | None:
    """When an active order expires, or None for good-till-cancelled."""
    if order.type_time == c.ORDER_TIME_DAY:
        return _day_end(order.time_setup_msc)
    if order.type_time == c.ORDER_TIME_SPECIFIED:
        return order.time_expiration * 1000
    if order.type_time == c.ORDER_TIME_SPECIFIED_DAY:
        return _day_end(order.time_expiration * 1000)
    return None


def _first(mask: npt.NDArray[np.bool_]) -> int | None:
    """Index of the first True, or None."""
    if not len(mask):
        return None
    index = int(np.argmax(mask))
    return index if mask[index] else None


def _merge_steps(
    times: list[npt.NDArray[np.int64]], values: list[npt.NDArray[np.float64]]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Sum step functions sampled at different times onto their merged timeline.

    Each ``values[k]`` holds from ``times[k][j]`` until its next sample and is 0 before the first.
    """
    if len(times) == 1:
        return times[0], values[0]
    moments = np.unique(np.concatenate(times))
    total = np.zeros(len(moments), dtype=np.float64)
    for when, value in zip(times, values, strict=True):
        index = np.searchsorted(when, moments, side="right") - 1
        total += np.where(index >= 0, value[np.clip(index, 0, None)], 0.0)
    return moments, total
