"""Trading through a connector, exactly once: ``Trader``.

``Trader`` turns typed requests into ``order_send`` calls, picks what MetaTrader5 needs but users
should not have to know (the broker's symbol name, the symbol in the Market Watch, an allowed
filling mode, floats for volumes and prices) and turns answers into frozen results, raising
``MT5TradeError`` for any retcode that is not success.

**Exactly once.** Every request carries a client tag in its comment (see ``_models``). When
the outcome of a send is ambiguous (a timeout while the terminal ran it, an IPC error, a broken
pipe, a ``None`` reply with a connection code), the trader never re-sends blindly. It reconciles:

1. after a timeout mid-call, it waits for the call's late result (the worker reports it as a
   ``LateResult`` event): that is the real answer;
2. otherwise it looks the tag up in the active orders, the open positions, and the history orders
   and deals of a window around the send (server time, read from the symbol's last tick). Reads
   that cannot reach the terminal are retried once it is connected again (the supervisor, or
   whoever reconnects), all within ``reconcile_timeout``;
3. a request found is reported as done (``OrderResult.reconciled``); a request provably absent is
   re-sent with the same tag only with ``resend_if_absent=True``, otherwise
   ``MT5OrderNotPlacedError`` says it is safe to send again; anything else raises
   ``MT5TradeOutcomeUnknownError`` with what was checked.

"Provably absent" needs two things: the lookups all succeeded (after ``settle`` seconds, so a
request still in flight at the server has time to show up), and this broker is known to keep
comments (some rewrite them): an order of ours with its tag intact has been seen. Modifications
(``SLTP``, ``MODIFY``, ``REMOVE``) create no order; they are reconciled by comparing the position
or order with what was asked.

Late results are logged once, by the worker (``aiomt5.worker.late_result``); the trader adds its
parsed fields at DEBUG (``aiomt5.trade.late_result``), whoever is waiting.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from aiomt5._core._arguments import check_symbol, utc_timestamp
from aiomt5._core._deadline import Deadline, detached, operation, seconds, within
from aiomt5._core._errors import (
    MT5AutoTradingDisabledError,
    MT5ClosedError,
    MT5ConnectionError,
    MT5Error,
    MT5InvalidArgumentError,
    MT5InvalidParamsError,
    MT5NotConnectedError,
    MT5OrderNotPlacedError,
    MT5OutcomeUnknownError,
    MT5TimeoutError,
    MT5TradeError,
    MT5TradeOutcomeUnknownError,
    MT5WorkerBusyError,
    trade_error,
)
from aiomt5._core._events import ConnectorEvent, LateResult
from aiomt5._core._log import get_logger
from aiomt5._core._session import LIVE
from aiomt5._core._types import USE_DEFAULT, ConnectionState, TimeoutArg
from aiomt5._core._worker import tagged
from aiomt5._market._market_hours import market_opens_at

from ._models import (
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    ORDER_STATE_CANCELED,
    ORDER_STATE_FILLED,
    ORDER_STATE_PARTIAL,
    ORDER_TIME_GTC,
    ORDER_TIME_SPECIFIED,
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    PENDING_TYPES,
    SUCCESS_RETCODES,
    SYMBOL_EXECUTION_INSTANT,
    SYMBOL_EXECUTION_REQUEST,
    TAG_RE,
    TRADE_ACTION_CLOSE_BY,
    TRADE_ACTION_DEAL,
    TRADE_ACTION_MODIFY,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_REMOVE,
    TRADE_ACTION_SLTP,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_DONE_PARTIAL,
    TRADE_RETCODE_INVALID_ORDER,
    TRADE_RETCODE_MARKET_CLOSED,
    TRADE_RETCODE_PLACED,
    TRADE_RETCODE_POSITION_CLOSED,
    TRADE_RETCODE_REJECT,
    TRADE_RETCODE_REQUOTE,
    Deal,
    Order,
    OrderCheck,
    OrderResult,
    Position,
    TradeRequest,
    check_tag,
    find_tag,
    new_tag,
    retcode_name,
    tagged_comment,
)
from ._sizing import SymbolRules

if TYPE_CHECKING:
    from aiomt5._connector import AsyncMT5Connector

_SYMBOL_FACTS: Final = "trading.symbol_facts"  # the key of the trader's facts in a Session

__all__ = [
    "Reconciliation",
    "TradeEvent",
    "Trader",
]

log = get_logger("aiomt5.trade")

Sleep = Callable[[float], Awaitable[None]]

_TAGGED_ACTIONS: Final = frozenset({TRADE_ACTION_DEAL, TRADE_ACTION_PENDING, TRADE_ACTION_CLOSE_BY})
_REQUOTES: Final = frozenset({TRADE_RETCODE_REQUOTE, 10020, 10021})
_INT32_MAX: Final = 2**31 - 1
# History window around a send, in server seconds: before it (clock skew, stale ticks) and after
# it (a symbol's last tick may be older than the server's "now").
_WINDOW_BEFORE: Final = 3600
_WINDOW_AFTER: Final = 7 * 86_400
_LATE_KEPT: Final = 256
_GROUP_SPECIAL: Final = frozenset(",*!")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciliation:
    """What a tag lookup found.

    Attributes:
        tag: The client tag looked up.
        orders: Active orders carrying it.
        positions: Open positions carrying it.
        history_orders: History orders carrying it.
        deals: Deals carrying it.
        checked: What was read (function and window).
    """

    tag: str
    orders: tuple[Order, ...] = ()
    positions: tuple[Position, ...] = ()
    history_orders: tuple[Order, ...] = ()
    deals: tuple[Deal, ...] = ()
    checked: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        """True when anything carries the tag."""
        return bool(self.orders or self.positions or self.history_orders or self.deals)


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeEvent:
    """A step of the exactly-once machinery, for ``Trader(on_event=...)`` (alerting, tests).

    ``kind`` is ``"ambiguous"`` (a send's outcome is unknown; ``detail`` says why),
    ``"late_result"``, ``"reconciled"`` (``detail``: found / absent / resend) or ``"unknown"``.
    """

    kind: Literal["ambiguous", "late_result", "reconciled", "unknown"]
    tag: str
    detail: str = ""
    at: float = field(default_factory=time.time)


@dataclass(slots=True)
class _SymbolFacts:
    name: str
    filling: int
    instant: bool  # instant/request execution: a market order needs a current price
    point: float
    rules: SymbolRules


class _Absent:
    """Reconciliation proved the request took no effect."""

    __slots__ = ("checked",)

    def __init__(self, checked: tuple[str, ...]) -> None:
        self.checked = checked


def pick_filling(filling_mode: int) -> int:
    """The filling mode for a symbol's ``filling_mode`` bitmask: FOK, else IOC, else RETURN."""
    if filling_mode & 1:
        return ORDER_FILLING_FOK
    if filling_mode & 2:
        return ORDER_FILLING_IOC
    return ORDER_FILLING_RETURN


def _definitely_not_sent(error: MT5Error) -> bool:
    """True when ``error`` proves the request never reached the terminal."""
    if isinstance(error, MT5OutcomeUnknownError):
        return False
    if isinstance(error, MT5WorkerBusyError | MT5ClosedError | MT5InvalidArgumentError):
        return True  # refused by the connector before the call was queued
    if isinstance(error, MT5NotConnectedError) and error.code is None:
        return True  # the connector itself was not connected
    if isinstance(error, MT5ConnectionError):
        return False
    if isinstance(error, MT5TimeoutError):
        return True  # timed out while still queued: it never ran
    # Invalid arguments, Python trading disabled: the terminal refused before sending.
    return isinstance(error, MT5InvalidParamsError | MT5AutoTradingDisabledError)


# --------------------------------------------------------------------------- trader


class Trader:
    """Exactly-once trading over an ``AsyncMT5Connector``.

    Args:
        connector: The connector to trade through (connected before use).
        reconcile_timeout: Seconds an ambiguous send may spend being reconciled (waiting for a
            late result, for a reconnect, and looking the tag up) before
            ``MT5TradeOutcomeUnknownError``.
        retry_interval: Seconds between lookups while the terminal cannot be reached.
        settle: Seconds to wait before the lookup that may declare a request absent, so one
            still being processed by the trade server shows up (0 in tests on the simulator).
        max_resends: With ``resend_if_absent``, how many times a proven-absent request may be
            sent again.
        on_event: Receives ``TradeEvent`` steps (on the loop thread; errors are logged).
        sleep: How to wait (``asyncio.sleep``); tests pass their own. A wait for the
            terminal to come back is cancelled as soon as the connection state changes.
    """

    def __init__(
        self,
        connector: AsyncMT5Connector,
        *,
        reconcile_timeout: float = 60.0,
        retry_interval: float = 0.5,
        settle: float = 1.0,
        max_resends: int = 3,
        on_event: Callable[[TradeEvent], object] | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        checks: tuple[tuple[str, object], ...] = (
            ("reconcile_timeout", reconcile_timeout),
            ("retry_interval", retry_interval),
            ("settle", settle),
        )
        for name, value in checks:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise MT5InvalidArgumentError(f"{name} must be a number >= 0, got {value!r}")
        self._connector = connector
        self.reconcile_timeout = float(reconcile_timeout)
        self.retry_interval = float(retry_interval)
        self.settle = float(settle)
        self.max_resends = max_resends
        self._on_event = on_event
        self._sleep = sleep
        self._late: collections.OrderedDict[str, LateResult] = collections.OrderedDict()
        self._late_waiters: dict[str, asyncio.Event] = {}
        self._last_order: tuple[int, str] | None = None  # (ticket, tag) of our last order
        self.comments_kept: bool | None = None
        """Whether this broker keeps our tags in comments (None: not seen yet)."""
        connector.add_event_hook(self._on_connector_event)

    def close(self) -> None:
        """Stop listening to the connector's events (the trader cannot reconcile timeouts then)."""
        with contextlib.suppress(ValueError):  # closed twice
            self._connector.remove_event_hook(self._on_connector_event)

    # ------------------------------------------------------------------ events

    def _publish(self, kind: Any, tag: str, detail: str = "") -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(TradeEvent(kind=kind, tag=tag, detail=detail))
        except Exception:  # a broken hook must not break trading
            log.exception("aiomt5.trade.event_hook_failed", kind=kind)

    def _on_connector_event(self, event: ConnectorEvent) -> None:
        if isinstance(event, LateResult) and event.function == "order_send":
            self._record_late(event)

    def _record_late(self, event: LateResult) -> None:
        tag = event.tag
        if tag is None:  # sent without a tag context: the answer's request may still say
            request = getattr(event.result, "request", None)
            tag = find_tag(getattr(request, "comment", "") or "")
        if tag is None:
            return
        retcode = getattr(event.result, "retcode", None)
        # The worker already warned (aiomt5.worker.late_result): one warning per late result.
        log.debug(
            "aiomt5.trade.late_result",
            tag=tag,
            retcode=retcode,
            order=getattr(event.result, "order", None),
            deal=getattr(event.result, "deal", None),
            error=str(event.error) if event.error is not None else None,
            overdue=round(event.overdue, 3),
        )
        self._late[tag] = event
        while len(self._late) > _LATE_KEPT:
            self._late.popitem(last=False)
        waiter = self._late_waiters.get(tag)
        if waiter is not None:
            waiter.set()
        self._publish("late_result", tag, f"retcode={retcode}" if retcode else str(event.error))

    # ------------------------------------------------------------------ reads

    async def positions(
        self,
        symbol: str | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> tuple[Position, ...]:
        """Open positions, all or filtered by one of ``ticket``, ``symbol`` or ``group``."""
        raw = await self._connector.call(
            "positions_get", timeout=timeout, **_filter(symbol, group, ticket)
        )
        return tuple(Position.from_struct(p) for p in raw)

    async def orders(
        self,
        symbol: str | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> tuple[Order, ...]:
        """Active (pending) orders, all or filtered by ``ticket``, ``symbol`` or ``group``."""
        raw = await self._connector.call(
            "orders_get", timeout=timeout, **_filter(symbol, group, ticket)
        )
        return tuple(Order.from_struct(o) for o in raw)

    async def history_orders(
        self,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> tuple[Order, ...]:
        """History orders in ``[date_from, date_to]`` (+ ``group``), or by ticket or position."""
        args, kwargs = _history_query(date_from, date_to, group, ticket, position)
        raw = await self._connector.call("history_orders_get", *args, timeout=timeout, **kwargs)
        return tuple(Order.from_struct(o) for o in raw)

    async def history_deals(
        self,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> tuple[Deal, ...]:
        """Deals: in ``[date_from, date_to]`` (+ ``group``), by order ``ticket`` or ``position``."""
        args, kwargs = _history_query(date_from, date_to, group, ticket, position)
        raw = await self._connector.call("history_deals_get", *args, timeout=timeout, **kwargs)
        return tuple(Deal.from_struct(d) for d in raw)

    # ------------------------------------------------------------------ requests

    async def order_check(
        self, request: TradeRequest | Mapping[str, Any], *, timeout: TimeoutArg = USE_DEFAULT
    ) -> OrderCheck:
        """Check a request without sending it (funds, volume, stops, filling).

        Returns the check even when it fails (``OrderCheck.ok`` is False; the retcode says
        why); only a failed call raises.
        """
        req = _as_request(request)
        with self._operation(timeout):
            payload, _ = await self._prepare(req, "", exactly_once=False, timeout=timeout)
            raw = await self._connector.call("order_check", payload, timeout=timeout)
        return OrderCheck.from_struct(raw, payload)

    async def order_send(
        self,
        request: TradeRequest | Mapping[str, Any],
        *,
        timeout: TimeoutArg = USE_DEFAULT,
        resend_if_absent: bool = False,
        tag: str | None = None,
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
    ) -> OrderResult:
        """Send a trade request, exactly once.

        Args:
            request: A ``TradeRequest`` or an ``order_send`` dict.
            timeout: Seconds for the reads that prepare the request (symbol, filling mode) and
                the send, together (default ``settings.call_timeout``). Reconciling an ambiguous
                outcome has a budget of its own (``reconcile_timeout``); a resend starts a fresh
                ``timeout``.
            resend_if_absent: After an ambiguous outcome, send again (same tag) when the request
                provably took no effect.
            tag: Your own client tag (``tag_from_key(signal_id)``); default a random one.
            exactly_once: False sends the comment as given, with no tag; an ambiguous outcome
                then raises ``MT5OutcomeUnknownError`` at once.
            reconcile_timeout: Overrides the trader's ``reconcile_timeout`` for this request.

        Raises:
            MT5TradeError: The server answered with a retcode that is not success.
            MT5OrderNotPlacedError: The send failed and the request provably took no effect.
            MT5TradeOutcomeUnknownError: The outcome could not be established.
            MT5InvalidArgumentError: The request is malformed; nothing was sent.
        """
        req = _as_request(request)
        chosen = check_tag(tag) if tag is not None else new_tag()
        with self._operation(timeout) as deadline:
            payload, tag_used = await self._prepare(req, chosen, exactly_once, USE_DEFAULT)
        budget = self.reconcile_timeout if reconcile_timeout is None else reconcile_timeout
        attempts = 0
        while True:
            attempts += 1
            sent_at = time.monotonic()
            try:
                with within(deadline), tagged(tag_used or None):
                    raw = await self._connector.call("order_send", payload, timeout=timeout)
            except MT5Error as exc:
                if not exactly_once or _definitely_not_sent(exc):
                    raise
                with detached():  # reconciliation has its own budget
                    outcome = await self._reconcile(
                        payload, tag_used, exc, sent_at, budget, attempts
                    )
                if isinstance(outcome, OrderResult):
                    return outcome
                if resend_if_absent and attempts <= self.max_resends:
                    log.warning("aiomt5.trade.resend", tag=tag_used, attempt=attempts + 1)
                    self._publish("reconciled", tag_used, "resend")
                    deadline.restart()
                    continue
                raise MT5OrderNotPlacedError(
                    f"the send failed ({type(exc).__name__}) and reconciliation proved the "
                    "request took no effect; sending it again is safe",
                    request=payload,
                    tag=tag_used,
                    checked=outcome.checked,
                ) from exc
            result = self._success(raw, payload, tag_used, attempts)
            if tag_used and result.order and payload["action"] in _TAGGED_ACTIONS:
                self._last_order = (result.order, tag_used)
            return result

    def _success(
        self, raw: Any, payload: Mapping[str, Any], tag: str, attempts: int, *, late: bool = False
    ) -> OrderResult:
        result = OrderResult.from_struct(raw, payload, tag, attempts=attempts)
        if late:
            result = dataclasses.replace(result, reconciled=True)
        if result.retcode not in SUCCESS_RETCODES:
            symbol = str(payload.get("symbol", ""))
            raise trade_error(
                f"the trade server refused the request for {symbol or '?'}",
                retcode=result.retcode,
                symbol=symbol,
                opens_at=(
                    market_opens_at(self._connector.backend, symbol)
                    if result.retcode == TRADE_RETCODE_MARKET_CLOSED
                    else None
                ),
                retcode_name=result.retcode_name,
                comment=result.comment,
                request=payload,
                result=raw,
                args_summary=f"order_send(tag={tag})" if tag else None,
            )
        return result

    # ------------------------------------------------------------------ helpers

    def _operation(self, timeout: TimeoutArg) -> contextlib.AbstractContextManager[Deadline]:
        """One deadline for a request's reads and send (``timeout``, default ``call_timeout``)."""
        return operation(seconds(timeout, self._connector.settings.call_timeout))

    async def buy(
        self,
        symbol: str,
        volume: float,
        *,
        price: float | None = None,
        sl: float = 0.0,
        tp: float = 0.0,
        deviation: int = 20,
        magic: int = 0,
        comment: str = "",
        type_filling: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
        resend_if_absent: bool = False,
        tag: str | None = None,
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
    ) -> OrderResult:
        """Open (or add to) a long position at the market.

        With ``price=None`` the current ask is used where the symbol needs a price (instant or
        request execution), and requotes are retried up to 3 times (a requote executed nothing).
        """
        return await self._market(
            ORDER_TYPE_BUY, symbol, volume, price, sl, tp, deviation, magic, comment,
            type_filling, 0, timeout, resend_if_absent, tag, exactly_once, reconcile_timeout,
        )  # fmt: skip

    async def sell(
        self,
        symbol: str,
        volume: float,
        *,
        price: float | None = None,
        sl: float = 0.0,
        tp: float = 0.0,
        deviation: int = 20,
        magic: int = 0,
        comment: str = "",
        type_filling: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
        resend_if_absent: bool = False,
        tag: str | None = None,
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
    ) -> OrderResult:
        """Open (or add to) a short position at the market; see ``buy``."""
        return await self._market(
            ORDER_TYPE_SELL, symbol, volume, price, sl, tp, deviation, magic, comment,
            type_filling, 0, timeout, resend_if_absent, tag, exactly_once, reconcile_timeout,
        )  # fmt: skip

    async def close_position(
        self,
        position: int | Position,
        *,
        volume: float | None = None,
        price: float | None = None,
        deviation: int = 20,
        magic: int | None = None,
        comment: str = "",
        type_filling: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
        resend_if_absent: bool = False,
        tag: str | None = None,
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
    ) -> OrderResult:
        """Close a position (or ``volume`` of it) with an opposite market deal.

        Raises:
            MT5TradeError: The position does not exist (retcode ``POSITION_CLOSED``), or the
                server refused.
        """
        with self._operation(timeout):
            current = await self._position(position, timeout)
            kind = ORDER_TYPE_SELL if current.is_buy else ORDER_TYPE_BUY
            return await self._market(
                kind, current.symbol, current.volume if volume is None else volume, price, 0.0,
                0.0, deviation, current.magic if magic is None else magic, comment, type_filling,
                current.ticket, timeout, resend_if_absent, tag, exactly_once, reconcile_timeout,
            )  # fmt: skip

    async def modify_position(
        self,
        position: int | Position,
        *,
        sl: float | None = None,
        tp: float | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
        resend_if_absent: bool = False,
        tag: str | None = None,
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
    ) -> OrderResult:
        """Set a position's stop loss and/or take profit (None keeps the current level; 0 removes).

        Raises:
            MT5TradeError: The position does not exist, or the server refused the levels.
        """
        with self._operation(timeout):
            current = await self._position(position, timeout)
            request = TradeRequest(
                action=TRADE_ACTION_SLTP,
                symbol=current.symbol,
                position=current.ticket,
                sl=current.sl if sl is None else sl,
                tp=current.tp if tp is None else tp,
                magic=current.magic,
            )
            return await self.order_send(
                request, timeout=timeout, resend_if_absent=resend_if_absent, tag=tag,
                exactly_once=exactly_once, reconcile_timeout=reconcile_timeout,
            )  # fmt: skip

    async def place_pending(
        self,
        symbol: str,
        type: int,
        volume: float,
        price: float,
        *,
        stoplimit: float = 0.0,
        sl: float = 0.0,
        tp: float = 0.0,
        expiration: datetime | None = None,
        deviation: int = 0,
        magic: int = 0,
        comment: str = "",
        type_filling: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
        resend_if_absent: bool = False,
        tag: str | None = None,
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
    ) -> OrderResult:
        """Place a limit, stop or stop-limit order (``ORDER_TYPE_BUY_LIMIT``...).

        ``expiration`` (aware datetime) makes it good till then; otherwise good till cancelled.
        """
        if type not in PENDING_TYPES:
            raise MT5InvalidArgumentError(
                f"type={type!r} is not a pending order type (ORDER_TYPE_BUY_LIMIT=2 .. "
                "ORDER_TYPE_SELL_STOP_LIMIT=7)"
            )
        request = TradeRequest(
            action=TRADE_ACTION_PENDING,
            symbol=symbol,
            type=type,
            volume=volume,
            price=price,
            stoplimit=stoplimit,
            sl=sl,
            tp=tp,
            type_time=ORDER_TIME_GTC if expiration is None else ORDER_TIME_SPECIFIED,
            expiration=expiration,
            deviation=deviation,
            magic=magic,
            comment=comment,
            type_filling=type_filling,
        )
        return await self.order_send(
            request, timeout=timeout, resend_if_absent=resend_if_absent, tag=tag,
            exactly_once=exactly_once, reconcile_timeout=reconcile_timeout,
        )  # fmt: skip

    async def cancel_order(
        self,
        order: int | Order,
        *,
        timeout: TimeoutArg = USE_DEFAULT,
        resend_if_absent: bool = False,
        tag: str | None = None,
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
    ) -> OrderResult:
        """Delete a pending order.

        Raises:
            MT5TradeError: The order is not active any more, or the server refused.
        """
        ticket = order.ticket if isinstance(order, Order) else order
        request = TradeRequest(action=TRADE_ACTION_REMOVE, order=ticket)
        return await self.order_send(
            request, timeout=timeout, resend_if_absent=resend_if_absent, tag=tag,
            exactly_once=exactly_once, reconcile_timeout=reconcile_timeout,
        )  # fmt: skip

    async def _market(
        self,
        kind: int,
        symbol: str,
        volume: float,
        price: float | None,
        sl: float,
        tp: float,
        deviation: int,
        magic: int,
        comment: str,
        type_filling: int | None,
        position: int,
        timeout: TimeoutArg,
        resend_if_absent: bool,
        tag: str | None,
        exactly_once: bool,
        reconcile_timeout: float | None,
    ) -> OrderResult:
        with self._operation(timeout):
            facts = await self._symbol(check_symbol(symbol), USE_DEFAULT)
            tag = check_tag(tag) if tag is not None else new_tag()
            requotes = 0
            while True:
                quote = price
                if quote is None and facts.instant:
                    tick = await self._connector.call("symbol_info_tick", facts.name)
                    quote = tick.ask if kind == ORDER_TYPE_BUY else tick.bid
                request = TradeRequest(
                    action=TRADE_ACTION_DEAL, symbol=facts.name, volume=volume, type=kind,
                    price=quote or 0.0, sl=sl, tp=tp, deviation=deviation, magic=magic,
                    comment=comment, type_filling=type_filling, position=position,
                )  # fmt: skip
                try:
                    return await self.order_send(
                        request, timeout=timeout, resend_if_absent=resend_if_absent, tag=tag,
                        exactly_once=exactly_once, reconcile_timeout=reconcile_timeout,
                    )  # fmt: skip
                except MT5TradeError as exc:
                    # A requote executed nothing: retrying with a fresh price cannot duplicate.
                    if price is not None or exc.retcode not in _REQUOTES or requotes >= 3:
                        raise
                    requotes += 1

    async def _position(self, position: int | Position, timeout: TimeoutArg) -> Position:
        ticket: object = position.ticket if isinstance(position, Position) else position
        if isinstance(ticket, bool) or not isinstance(ticket, int) or ticket <= 0:
            raise MT5InvalidArgumentError(
                f"position must be a ticket or a Position, got {ticket!r}"
            )
        found = await self.positions(ticket=ticket, timeout=timeout)
        if not found:
            raise MT5TradeError(
                f"position {ticket} is not open",
                retcode=TRADE_RETCODE_POSITION_CLOSED,
                retcode_name=retcode_name(TRADE_RETCODE_POSITION_CLOSED),
            )
        return found[0]

    # ------------------------------------------------------------------ preparation

    @property
    def _symbol_facts(self) -> dict[str, _SymbolFacts]:
        """Symbol facts of the current session (a reconnect starts afresh: the Market Watch and
        the broker's symbols may differ on the new link)."""
        session = self._connector.session
        if session is None:
            return {}
        facts: dict[str, _SymbolFacts] = session.facts.setdefault(_SYMBOL_FACTS, {})
        return facts

    async def _symbol(self, symbol: str, timeout: TimeoutArg) -> _SymbolFacts:
        """The broker's name, selected in the Market Watch, with its filling mode (cached)."""
        facts = self._symbol_facts.get(symbol)
        if facts is not None:
            return facts
        name = await self._connector.find_symbol(symbol, timeout=timeout)
        info = await self._connector.get_symbol_info(name, timeout=timeout)
        if not info.select:
            await self._connector.call("symbol_select", name, True, timeout=timeout)
        facts = _SymbolFacts(
            name=name,
            filling=pick_filling(info.filling_mode),
            instant=info.trade_exemode in (SYMBOL_EXECUTION_INSTANT, SYMBOL_EXECUTION_REQUEST),
            point=info.point,
            rules=SymbolRules.from_info(info),
        )
        cache = self._symbol_facts
        cache[symbol] = cache[name] = facts
        return facts

    async def symbol_rules(self, symbol: str, *, timeout: TimeoutArg = USE_DEFAULT) -> SymbolRules:
        """The price grid and volume limits of ``symbol`` (resolved and selected; cached)."""
        return (await self._symbol(check_symbol(symbol), timeout)).rules

    async def _prepare(
        self, req: TradeRequest, tag: str, exactly_once: bool, timeout: TimeoutArg
    ) -> tuple[dict[str, Any], str]:
        symbol = req.symbol
        if not symbol and req.action == TRADE_ACTION_CLOSE_BY and req.position:
            symbol = (await self._position(req.position, timeout)).symbol
        filling = req.type_filling
        rules: SymbolRules | None = None
        if symbol:
            facts = await self._symbol(symbol, timeout)
            symbol, rules = facts.name, facts.rules
            if filling is None:
                filling = facts.filling
        elif req.action in (TRADE_ACTION_DEAL, TRADE_ACTION_PENDING):
            raise MT5InvalidArgumentError("symbol is required for deals and pending orders")
        comment = tagged_comment(tag, req.comment) if exactly_once else req.comment
        payload = req.payload(comment, ORDER_FILLING_FOK if filling is None else filling)
        payload["symbol"] = symbol
        if (
            symbol
            and req.action == TRADE_ACTION_DEAL
            and req.type in (ORDER_TYPE_BUY, ORDER_TYPE_SELL)
            and not req.price
            and self._symbol_facts[symbol].instant
        ):
            # Instant and request execution need the price the order is for; market execution
            # takes 0. A deal with none gets the current one, as buy() and sell() do.
            tick = await self._connector.call("symbol_info_tick", symbol, timeout=timeout)
            payload["price"] = tick.ask if req.type == ORDER_TYPE_BUY else tick.bid
        if rules is not None:
            # MT5 refuses prices off the tick grid (``sl=1.3178999999999998``): round them.
            for key in ("price", "sl", "tp", "stoplimit"):
                payload[key] = rules.price(payload[key])
            if req.action in (TRADE_ACTION_DEAL, TRADE_ACTION_PENDING):
                payload["volume"] = rules.check_volume(payload["volume"])
        return payload, tag if exactly_once else ""

    # ------------------------------------------------------------------ reconciliation

    async def _reconcile(
        self,
        payload: dict[str, Any],
        tag: str,
        error: MT5Error,
        sent_at: float,
        budget: float,
        attempts: int,
    ) -> OrderResult | _Absent:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        started = time.perf_counter()
        log.warning(
            "aiomt5.trade.ambiguous_outcome", tag=tag, error=type(error).__name__, code=error.code
        )
        self._publish("ambiguous", tag, type(error).__name__)
        checked: list[str] = [f"send failed: {type(error).__name__}: {error.message}"]
        if isinstance(error, MT5OutcomeUnknownError):
            late = await self._await_late(tag, deadline)
            if late is None:
                checked.append("late result: still running in the terminal")
                raise self._unknown(payload, tag, checked, None, budget, error)
            if late.error is None:
                checked.append("late result: the terminal answered")
                self._publish("reconciled", tag, "late result")
                return self._success(late.result, payload, tag, attempts, late=True)
            checked.append(f"late result: {type(late.error).__name__}")
        settled = self.settle <= 0
        last: Reconciliation | None = None
        while True:
            session = self._connector.sessions.count
            try:
                outcome = await self._look(payload, tag, sent_at, deadline, attempts)
                if isinstance(outcome, OrderResult):
                    self._reconciled(tag, started, "found")
                    return outcome
                last = outcome
                checked.extend(outcome.checked)
                if not settled:
                    settled = True
                    await self._sleep(min(self.settle, max(deadline - loop.time(), 0.0)))
                    continue
                tagged = payload["action"] in _TAGGED_ACTIONS
                if tagged and not await self._comments_proven(checked):
                    checked.append("absence unproven: no order of ours seen with its tag intact")
                    raise self._unknown(payload, tag, checked, last, budget, error)
            except (MT5ClosedError, MT5InvalidArgumentError, MT5TradeError, MT5OutcomeUnknownError):
                raise  # final answers, or the connector is gone for good
            except MT5Error as exc:
                # A read failed (pipe down, trade server down: -1, a timeout). Never report that
                # as the send's outcome; wait for the terminal to come back and look again.
                checked.append(f"lookup failed: {type(exc).__name__}")
                if not await self._wait_usable(deadline, session):
                    raise self._unknown(payload, tag, checked, last, budget, error) from exc
                continue
            self._reconciled(tag, started, "absent")
            return _Absent(tuple(checked))

    async def _comments_proven(self, checked: list[str]) -> bool:
        """Whether the broker keeps our tags: from lookups so far, else from our last order."""
        if self.comments_kept is not None or self._last_order is None:
            return bool(self.comments_kept)
        ticket, tag = self._last_order
        call = self._connector.call
        orders = await call("history_orders_get", ticket=ticket) or await call(
            "orders_get", ticket=ticket
        )
        if orders:
            # One order with its tag intact proves it; one without proves the opposite.
            self.comments_kept = tag in orders[0].comment
            checked.append(f"order {ticket} comment {orders[0].comment!r}: tag kept")
        return bool(self.comments_kept)

    def _reconciled(self, tag: str, started: float, outcome: str) -> None:
        log.info(
            "aiomt5.trade.reconciled",
            tag=tag,
            outcome=outcome,
            seconds=round(time.perf_counter() - started, 6),
        )
        self._publish("reconciled", tag, outcome)

    def _unknown(
        self,
        payload: Mapping[str, Any],
        tag: str,
        checked: list[str],
        last: Reconciliation | None,
        budget: float,
        error: MT5Error,
    ) -> MT5TradeOutcomeUnknownError:
        log.error("aiomt5.trade.outcome_unknown", tag=tag, checked=checked)
        self._publish("unknown", tag, checked[-1])
        unknown = MT5TradeOutcomeUnknownError(
            f"could not establish whether the request with tag {tag} took effect within "
            f"{budget}s ({checked[-1]}); do not resend blindly: look it up later with "
            "trader.lookup(tag)",
            request=payload,
            tag=tag,
            checked=checked,
            reconciliation=last,
        )
        unknown.__cause__ = error
        return unknown

    async def _await_late(self, tag: str, deadline: float) -> LateResult | None:
        """The late result of the send with ``tag``, once the worker reports it (or None)."""
        # Popped when taken: a re-send with the same tag must wait for its own late result.
        late = self._late.pop(tag, None)
        if late is not None:
            return late
        waiter = self._late_waiters.setdefault(tag, asyncio.Event())
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline if deadline > loop.time() else loop.time()):
                await waiter.wait()
        except TimeoutError:
            return None
        finally:
            self._late_waiters.pop(tag, None)
        return self._late.pop(tag, None)

    async def _wait_usable(self, deadline: float, session: int) -> bool:
        """Wait until the terminal may answer again; False when the deadline passes first.

        ``session`` is the id of the session the failed lookup began on: a newer session is a
        fresh link, worth looking again at once.
        """
        sessions = self._connector.sessions
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        if sessions.state is ConnectionState.CLOSED:
            raise MT5ClosedError("the connector was closed while a trade was being reconciled")
        if sessions.state in LIVE:
            if sessions.count != session:
                return True
            # The pipe failed but the supervisor has not decided yet (the failed call told it):
            # look again as soon as the state moves, or after retry_interval if it does not.
            if not await sessions.pause(min(self.retry_interval, remaining), self._sleep):
                return loop.time() < deadline or self.retry_interval == 0
        try:
            await sessions.wait_usable("order_send", deadline - loop.time(), always_wait=True)
        except MT5ClosedError:
            raise
        except MT5Error:
            return False  # not back in time (or the supervisor gave up): reconcile says so
        return True

    async def _look(
        self,
        payload: Mapping[str, Any],
        tag: str,
        sent_at: float,
        deadline: float,
        attempts: int,
    ) -> OrderResult | Reconciliation:
        """One reconciliation pass: an ``OrderResult`` when the request took effect."""
        timeout = max(deadline - asyncio.get_running_loop().time(), 0.001)
        action = payload["action"]
        if action == TRADE_ACTION_SLTP:
            return await self._look_sltp(payload, tag, timeout, attempts)
        if action == TRADE_ACTION_MODIFY:
            return await self._look_modify(payload, tag, timeout, attempts)
        if action == TRADE_ACTION_REMOVE:
            return await self._look_remove(payload, tag, timeout, attempts)
        found = await self.lookup(tag, symbol=payload["symbol"], since=sent_at, timeout=timeout)
        if not found.found:
            return found
        return self._from_found(found, payload, tag, attempts)

    async def lookup(
        self,
        tag: str,
        *,
        symbol: str = "",
        since: float | None = None,
        lookback: float = _WINDOW_BEFORE,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> Reconciliation:
        """Find everything carrying ``tag``: active orders, positions, history orders and deals.

        The history window is in the terminal's (server) time, from the last tick of ``symbol``
        (default: of the first symbol in the Market Watch): back ``lookback`` seconds plus the time
        since ``since`` (a ``time.monotonic()`` reading), forward a week.

        Args:
            tag: The client tag.
            symbol: The order's symbol (narrows the reads).
            since: When the request was sent (``time.monotonic()``).
            lookback: Extra seconds of history before the send.
            timeout: Per read.
        """
        check_tag(tag)
        call = self._connector.call
        group = {"group": symbol} if symbol and not _GROUP_SPECIAL & set(symbol) else {}
        raw_orders = await call("orders_get", timeout=timeout, **group)
        raw_positions = await call("positions_get", timeout=timeout, **group)
        now = await self._server_time(symbol, timeout)
        elapsed = time.monotonic() - since if since is not None else 0.0
        start = max(int(now - elapsed - lookback), 1)
        end = min(now + _WINDOW_AFTER, _INT32_MAX)
        raw_history = await call("history_orders_get", start, end, timeout=timeout, **group)
        ours = next((o for o in raw_history if tag in o.comment), None)
        if ours is not None:  # found: its deals by ticket are cheaper than the whole window
            raw_deals = await call("history_deals_get", ticket=ours.ticket, timeout=timeout)
        else:
            raw_deals = await call("history_deals_get", start, end, timeout=timeout, **group)
        if self.comments_kept is None and any(
            TAG_RE.search(o.comment) for o in (*raw_history, *raw_orders)
        ):
            self.comments_kept = True
        where = f" group={symbol}" if group else ""
        found = Reconciliation(
            tag=tag,
            orders=tuple(Order.from_struct(o) for o in raw_orders if tag in o.comment),
            positions=tuple(Position.from_struct(p) for p in raw_positions if tag in p.comment),
            history_orders=tuple(Order.from_struct(o) for o in raw_history if tag in o.comment),
            deals=tuple(Deal.from_struct(d) for d in raw_deals if tag in d.comment),
            checked=(
                f"orders_get{where}: {len(raw_orders)} orders",
                f"positions_get{where}: {len(raw_positions)} positions",
                f"history_orders_get [{start}, {end}]{where}: {len(raw_history)} orders",
                (
                    f"history_deals_get ticket={ours.ticket}: {len(raw_deals)} deals"
                    if ours is not None
                    else f"history_deals_get [{start}, {end}]{where}: {len(raw_deals)} deals"
                ),
            ),
        )
        if found.found:
            self.comments_kept = True
        return found

    async def _server_time(self, symbol: str, timeout: TimeoutArg) -> int:
        """The terminal's "now" in server seconds, from the last tick of ``symbol``."""
        if not symbol:
            names = await self._connector.call("symbols_get", timeout=timeout)
            symbol = next((s.name for s in names if s.select), names[0].name if names else "")
        tick = await self._connector.call("symbol_info_tick", symbol, timeout=timeout)
        return int(tick.time)

    def _from_found(
        self, found: Reconciliation, payload: Mapping[str, Any], tag: str, attempts: int
    ) -> OrderResult:
        """The ``OrderResult`` a request that was found would have had."""
        orders = found.orders + found.history_orders
        order = orders[0] if orders else None
        ticket = order.ticket if order is not None else found.positions[0].identifier
        deals = [d for d in found.deals if d.order == ticket] or list(found.deals)
        if len({o.ticket for o in orders}) > 1:
            log.error("aiomt5.trade.duplicate_tag", tag=tag, orders=[o.ticket for o in orders])
        if payload["action"] == TRADE_ACTION_PENDING:
            assert order is not None or not found.positions  # a position implies its order
            return _reconciled_result(
                payload, tag, attempts, TRADE_RETCODE_PLACED, order=ticket, deal=0,
                volume=order.volume_initial if order else payload["volume"],
                price=order.price_open if order else payload["price"],
            )  # fmt: skip
        if deals:
            volume = round(sum(d.volume for d in deals), 8)
            price = sum(d.price * d.volume for d in deals) / volume if volume else 0.0
            partial = order is not None and order.state == ORDER_STATE_PARTIAL
            return _reconciled_result(
                payload, tag, attempts,
                TRADE_RETCODE_DONE_PARTIAL if partial else TRADE_RETCODE_DONE,
                order=ticket, deal=deals[0].ticket, volume=volume, price=price,
            )  # fmt: skip
        if order is not None and order.state not in (ORDER_STATE_FILLED, ORDER_STATE_PARTIAL):
            if order in found.orders:  # still being processed by the server
                return _reconciled_result(
                    payload, tag, attempts, TRADE_RETCODE_PLACED, order=ticket, deal=0,
                    volume=order.volume_initial, price=order.price_open,
                )  # fmt: skip
            raise MT5TradeError(
                f"reconciliation found order {ticket} {order.state_name}: it was not executed",
                retcode=TRADE_RETCODE_REJECT,
                retcode_name=retcode_name(TRADE_RETCODE_REJECT),
                comment=order.comment,
                request=payload,
            )
        position = found.positions[0] if found.positions else None
        return _reconciled_result(
            payload, tag, attempts, TRADE_RETCODE_DONE, order=ticket, deal=0,
            volume=position.volume if position else payload["volume"],
            price=position.price_open if position else payload["price"],
        )  # fmt: skip

    def _same_price(self, symbol: str, a: float, b: float) -> bool:
        facts = self._symbol_facts.get(symbol)
        tolerance = facts.point / 2 if facts is not None and facts.point > 0 else 1e-9
        return abs(a - b) <= tolerance

    async def _look_sltp(
        self, payload: Mapping[str, Any], tag: str, timeout: float, attempts: int
    ) -> OrderResult | Reconciliation:
        ticket = payload["position"]
        found = await self.positions(ticket=ticket, timeout=timeout)
        checked = (f"positions_get ticket={ticket}: {len(found)} positions",)
        if not found:
            raise MT5TradeError(
                f"position {ticket} closed while its SL/TP change was being reconciled",
                retcode=TRADE_RETCODE_POSITION_CLOSED,
                retcode_name=retcode_name(TRADE_RETCODE_POSITION_CLOSED),
                request=payload,
            )
        position = found[0]
        symbol = payload["symbol"]
        if self._same_price(symbol, position.sl, payload["sl"]) and self._same_price(
            symbol, position.tp, payload["tp"]
        ):
            return _reconciled_result(
                payload, tag, attempts, TRADE_RETCODE_DONE, order=0, deal=0,
                volume=position.volume, price=position.price_open,
            )  # fmt: skip
        return Reconciliation(tag=tag, positions=(), checked=checked)

    async def _look_modify(
        self, payload: Mapping[str, Any], tag: str, timeout: float, attempts: int
    ) -> OrderResult | Reconciliation:
        ticket = payload["order"]
        found = await self.orders(ticket=ticket, timeout=timeout)
        checked = (f"orders_get ticket={ticket}: {len(found)} orders",)
        if not found:
            raise MT5TradeError(
                f"order {ticket} is no longer active; its modification cannot apply",
                retcode=TRADE_RETCODE_INVALID_ORDER,
                retcode_name=retcode_name(TRADE_RETCODE_INVALID_ORDER),
                request=payload,
            )
        order = found[0]
        same = self._same_price
        symbol = order.symbol
        if (
            same(symbol, order.price_open, payload["price"])
            and same(symbol, order.sl, payload["sl"])
            and same(symbol, order.tp, payload["tp"])
        ):
            return _reconciled_result(
                payload, tag, attempts, TRADE_RETCODE_DONE, order=ticket, deal=0,
                volume=order.volume_current, price=order.price_open,
            )  # fmt: skip
        return Reconciliation(tag=tag, checked=checked)

    async def _look_remove(
        self, payload: Mapping[str, Any], tag: str, timeout: float, attempts: int
    ) -> OrderResult | Reconciliation:
        ticket = payload["order"]
        active = await self.orders(ticket=ticket, timeout=timeout)
        if active:
            return Reconciliation(tag=tag, checked=(f"orders_get ticket={ticket}: still active",))
        history = await self.history_orders(ticket=ticket, timeout=timeout)
        if history and history[0].state == ORDER_STATE_CANCELED:
            return _reconciled_result(
                payload, tag, attempts, TRADE_RETCODE_DONE, order=ticket, deal=0,
                volume=history[0].volume_initial, price=history[0].price_open,
            )  # fmt: skip
        state = history[0].state_name if history else "unknown"
        raise MT5TradeError(
            f"order {ticket} ended {state}, not cancelled by this request",
            retcode=TRADE_RETCODE_INVALID_ORDER,
            retcode_name=retcode_name(TRADE_RETCODE_INVALID_ORDER),
            request=payload,
        )


# --------------------------------------------------------------------------- small helpers


def _as_request(request: TradeRequest | Mapping[str, Any]) -> TradeRequest:
    if isinstance(request, TradeRequest):
        return request
    if isinstance(request, Mapping):
        return TradeRequest.from_mapping(request)
    raise MT5InvalidArgumentError(
        f"request must be a TradeRequest or a dict, got {type(request).__name__}"
    )


def _reconciled_result(
    payload: Mapping[str, Any],
    tag: str,
    attempts: int,
    retcode: int,
    *,
    order: int,
    deal: int,
    volume: float,
    price: float,
) -> OrderResult:
    return OrderResult(
        retcode=retcode,
        retcode_name=retcode_name(retcode),
        deal=deal,
        order=order,
        volume=volume,
        price=price,
        bid=0.0,
        ask=0.0,
        comment="reconciled",
        request_id=0,
        retcode_external=0,
        request=types.MappingProxyType(dict(payload)),
        tag=tag,
        reconciled=True,
        attempts=attempts,
    )


def _filter(symbol: str | None, group: str | None, ticket: int | None) -> dict[str, Any]:
    given = {
        k: v for k, v in (("ticket", ticket), ("symbol", symbol), ("group", group)) if v is not None
    }
    if len(given) > 1:
        raise MT5InvalidArgumentError(
            f"give one of ticket, symbol or group, not {', '.join(sorted(given))}"
        )
    if "symbol" in given:
        check_symbol(symbol)
    return given


def _history_query(
    date_from: datetime | None,
    date_to: datetime | None,
    group: str | None,
    ticket: int | None,
    position: int | None,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if ticket is not None or position is not None:
        if date_from is not None or date_to is not None or group is not None:
            raise MT5InvalidArgumentError("give dates (and group) or ticket or position, not both")
        if ticket is not None and position is not None:
            raise MT5InvalidArgumentError("give ticket or position, not both")
        return (), ({"ticket": ticket} if ticket is not None else {"position": position})
    if date_from is None or date_to is None:
        raise MT5InvalidArgumentError("history needs date_from and date_to, or ticket/position")
    start = utc_timestamp("date_from", date_from)
    end = utc_timestamp("date_to", date_to)
    if end < start:
        raise MT5InvalidArgumentError("date_to is before date_from")
    return (start, end), ({"group": group} if group is not None else {})
