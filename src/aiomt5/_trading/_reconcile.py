"""Reconciling an ambiguous send: ``Reconciler`` (and what it finds: ``Reconciliation``).

When the outcome of an ``order_send`` is unknown (see ``_trader``), the ``Trader`` hands the
request to its ``Reconciler``, which establishes what happened without ever sending:

1. after a timeout mid-call, it waits for the call's late result (recorded by the trader from
   the worker's ``LateResult`` events): that is the real answer;
2. otherwise it looks the tag up in the active orders, the open positions, and the history orders
   and deals of a window around the send (server time, read from the symbol's last tick). Reads
   that cannot reach the terminal are retried once it is connected again (the supervisor, or
   whoever reconnects), all within the reconcile budget;
3. a request found becomes an ``OrderResult`` (``reconciled=True``); a request provably absent is
   reported as ``_Absent`` (the trader re-sends or raises ``MT5OrderNotPlacedError``); anything
   else raises ``MT5TradeOutcomeUnknownError`` with what was checked.

Modifications (``SLTP``, ``MODIFY``, ``REMOVE``) create no order; they are reconciled by comparing
the position or order with what was asked.

The ``Reconciler`` sees the trader only through what it is given: the connector (reads and the
session wait), the trader's public reads (``Reads``), the late-result records, and callables to
publish events, build a result from a late answer and know a symbol's point.
"""

from __future__ import annotations

import asyncio
import collections
import time
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from aiomt5._core._errors import (
    MT5ClosedError,
    MT5Error,
    MT5InvalidArgumentError,
    MT5OutcomeUnknownError,
    MT5TradeError,
    MT5TradeOutcomeUnknownError,
)
from aiomt5._core._events import LateResult
from aiomt5._core._log import get_logger
from aiomt5._core._session import LIVE
from aiomt5._core._types import USE_DEFAULT, ConnectionState, TimeoutArg

from ._models import (
    ORDER_STATE_CANCELED,
    ORDER_STATE_FILLED,
    ORDER_STATE_PARTIAL,
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
    TRADE_RETCODE_PLACED,
    TRADE_RETCODE_POSITION_CLOSED,
    TRADE_RETCODE_REJECT,
    Deal,
    Order,
    OrderResult,
    Position,
    check_tag,
    retcode_name,
)

if TYPE_CHECKING:
    from aiomt5._connector import AsyncMT5Connector

__all__ = [
    "Reads",
    "Reconciler",
    "Reconciliation",
]

log = get_logger("aiomt5.trade")

Sleep = Callable[[float], Awaitable[None]]

TAGGED_ACTIONS: Final = frozenset({TRADE_ACTION_DEAL, TRADE_ACTION_PENDING, TRADE_ACTION_CLOSE_BY})
_INT32_MAX: Final = 2**31 - 1
# History window around a send, in server seconds: before it (clock skew, stale ticks) and after
# it (a symbol's last tick may be older than the server's "now").
WINDOW_BEFORE: Final = 3600
_WINDOW_AFTER: Final = 7 * 86_400
_GROUP_SPECIAL: Final = frozenset(",*!")


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


class _Absent:
    """Reconciliation proved the request took no effect."""

    __slots__ = ("checked",)

    def __init__(self, checked: tuple[str, ...]) -> None:
        self.checked = checked


class Reads(Protocol):
    """The trader's reads a reconciliation uses (``Trader`` has them)."""

    async def positions(
        self, *, ticket: int | None = None, timeout: TimeoutArg = USE_DEFAULT
    ) -> tuple[Position, ...]: ...

    async def orders(
        self, *, ticket: int | None = None, timeout: TimeoutArg = USE_DEFAULT
    ) -> tuple[Order, ...]: ...

    async def history_orders(
        self, *, ticket: int | None = None, timeout: TimeoutArg = USE_DEFAULT
    ) -> tuple[Order, ...]: ...


class Reconciler:
    """Establishes the outcome of ambiguous sends, for one ``Trader``.

    Args:
        connector: The connector (its ``call`` and ``sessions``).
        reads: The trader's reads (positions, orders, history orders by ticket).
        late: Late results of ``order_send`` by tag, as the trader records them (shared).
        late_waiters: Events set by the trader when a late result for a tag arrives (shared).
        publish: Publishes a ``TradeEvent`` (kind, tag, detail).
        success: Turns a late answer into an ``OrderResult`` (or raises its trade error).
        point: A symbol's point (0 when unknown), to compare prices.
        retry_interval: Seconds between lookups while the terminal cannot be reached.
        settle: Seconds to wait before the lookup that may declare a request absent.
        sleep: How to wait.
    """

    def __init__(
        self,
        connector: AsyncMT5Connector,
        reads: Reads,
        *,
        late: collections.OrderedDict[str, LateResult],
        late_waiters: dict[str, asyncio.Event],
        publish: Callable[[Any, str, str], None],
        success: Callable[..., OrderResult],
        point: Callable[[str], float],
        retry_interval: float,
        settle: float,
        sleep: Sleep,
    ) -> None:
        self._connector = connector
        self._reads = reads
        self._late = late
        self._late_waiters = late_waiters
        self._publish = publish
        self._success = success
        self._point = point
        self.retry_interval = retry_interval
        self.settle = settle
        self._sleep = sleep
        self.last_order: tuple[int, str] | None = None  # (ticket, tag) of our last order
        self.comments_kept: bool | None = None
        """Whether this broker keeps our tags in comments (None: not seen yet)."""

    async def reconcile(
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
                tagged = payload["action"] in TAGGED_ACTIONS
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
        if self.comments_kept is not None or self.last_order is None:
            return bool(self.comments_kept)
        ticket, tag = self.last_order
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
        point = self._point(symbol)
        tolerance = point / 2 if point > 0 else 1e-9
        return abs(a - b) <= tolerance

    async def _look_sltp(
        self, payload: Mapping[str, Any], tag: str, timeout: float, attempts: int
    ) -> OrderResult | Reconciliation:
        ticket = payload["position"]
        found = await self._reads.positions(ticket=ticket, timeout=timeout)
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
        found = await self._reads.orders(ticket=ticket, timeout=timeout)
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
        active = await self._reads.orders(ticket=ticket, timeout=timeout)
        if active:
            return Reconciliation(tag=tag, checked=(f"orders_get ticket={ticket}: still active",))
        history = await self._reads.history_orders(ticket=ticket, timeout=timeout)
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
