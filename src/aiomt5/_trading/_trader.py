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

The trader builds, sends and reads; it records late results and hands an ambiguous send to its
``Reconciler`` (``_reconcile``), which does steps 1-3 with only what the trader gives it.

Late results are logged once, by the worker (``aiomt5.worker.late_result``); the trader adds its
parsed fields at DEBUG (``aiomt5.trade.late_result``), whoever is waiting.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
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
    MT5WorkerBusyError,
    trade_error,
)
from aiomt5._core._events import ConnectorEvent, LateResult
from aiomt5._core._log import get_logger
from aiomt5._core._types import USE_DEFAULT, TimeoutArg
from aiomt5._core._worker import tagged
from aiomt5._market._market_hours import market_opens_at

from ._models import (
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    ORDER_TIME_GTC,
    ORDER_TIME_SPECIFIED,
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    PENDING_TYPES,
    SUCCESS_RETCODES,
    SYMBOL_EXECUTION_INSTANT,
    SYMBOL_EXECUTION_REQUEST,
    TRADE_ACTION_CLOSE_BY,
    TRADE_ACTION_DEAL,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_REMOVE,
    TRADE_ACTION_SLTP,
    TRADE_RETCODE_MARKET_CLOSED,
    TRADE_RETCODE_POSITION_CLOSED,
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
from ._reconcile import TAGGED_ACTIONS, WINDOW_BEFORE, Reconciler, Reconciliation
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

_REQUOTES: Final = frozenset({TRADE_RETCODE_REQUOTE, 10020, 10021})
_LATE_KEPT: Final = 256


# --------------------------------------------------------------------------- records


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
        self.max_resends = max_resends
        self._on_event = on_event
        self._late: collections.OrderedDict[str, LateResult] = collections.OrderedDict()
        self._late_waiters: dict[str, asyncio.Event] = {}
        self._reconciler = Reconciler(
            connector,
            self,
            late=self._late,
            late_waiters=self._late_waiters,
            publish=self._publish,
            success=self._success,
            point=self._point,
            retry_interval=float(retry_interval),
            settle=float(settle),
            sleep=sleep,
        )
        connector.add_event_hook(self._on_connector_event)

    @property
    def retry_interval(self) -> float:
        """Seconds between lookups while the terminal cannot be reached."""
        return self._reconciler.retry_interval

    @retry_interval.setter
    def retry_interval(self, value: float) -> None:
        self._reconciler.retry_interval = value

    @property
    def settle(self) -> float:
        """Seconds to wait before the lookup that may declare a request absent."""
        return self._reconciler.settle

    @settle.setter
    def settle(self, value: float) -> None:
        self._reconciler.settle = value

    @property
    def comments_kept(self) -> bool | None:
        """Whether this broker keeps our tags in comments (None: not seen yet)."""
        return self._reconciler.comments_kept

    @comments_kept.setter
    def comments_kept(self, value: bool | None) -> None:
        self._reconciler.comments_kept = value

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
                    outcome = await self._reconciler.reconcile(
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
            if tag_used and result.order and payload["action"] in TAGGED_ACTIONS:
                self._reconciler.last_order = (result.order, tag_used)
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

    def _point(self, symbol: str) -> float:
        """The point of ``symbol`` in this session's facts (0 when not known)."""
        facts = self._symbol_facts.get(symbol)
        return facts.point if facts is not None else 0.0

    # ------------------------------------------------------------------ reconciliation

    async def lookup(
        self,
        tag: str,
        *,
        symbol: str = "",
        since: float | None = None,
        lookback: float = WINDOW_BEFORE,
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
        return await self._reconciler.lookup(
            tag, symbol=symbol, since=since, lookback=lookback, timeout=timeout
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
