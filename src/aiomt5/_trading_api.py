"""The connector's trading methods: each one is its exactly-once ``Trader``'s method.

Kept apart from ``_connector.py`` so the connector module stays about connecting and calling;
``AsyncMT5Connector`` inherits these (and ``MT5Connector`` wraps them). Every method that sends
an order takes the same exactly-once options — ``timeout``, ``exactly_once``,
``reconcile_timeout``, ``resend_if_absent``, ``tag`` — and those that create an order the same
order options (``deviation``, ``magic``, ``comment``, ``type_filling``). Prices, SL and TP are
rounded to the symbol's tick size; volumes are checked against its min/max/step.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from ._types import USE_DEFAULT, TimeoutArg

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._connector import AsyncMT5Connector
    from ._frames import FrameEngine
    from ._trade import Trader
    from ._trade_models import Deal, Order, OrderCheck, OrderResult, Position, TradeRequest

__all__ = ["TradingMethods"]

_SETTLE_IN_TESTING = 0.0
"""No trade server is slow to show an order in tests: decide absence at once."""


class TradingMethods:
    """Trading on ``AsyncMT5Connector``; see ``aiomt5.Trader`` for how exactly-once works.

    Options shared by every order-sending method:

    * ``timeout``: seconds for the send (default ``settings.call_timeout``);
    * ``exactly_once``: tag the request and reconcile an ambiguous outcome (default True);
    * ``reconcile_timeout``: seconds reconciliation may take (default the trader's, 60);
    * ``resend_if_absent``: send again (same tag) when the request provably took no effect;
    * ``tag``: your own client tag (``tag_from_key(signal_id)``).
    """

    _trader_instance: Trader | None = None

    @property
    def trader(self) -> Trader:
        """This connector's exactly-once trader (created on first use)."""
        if self._trader_instance is None:
            from ._trade import Trader

            connector = cast("AsyncMT5Connector", self)
            options: dict[str, Any] = {}
            if connector.settings.testing:
                options["settle"] = _SETTLE_IN_TESTING
            self._trader_instance = Trader(connector, **options)
        return self._trader_instance

    # ------------------------------------------------------------------ sending

    async def order_send(
        self,
        request: TradeRequest | Mapping[str, Any],
        *,
        timeout: TimeoutArg = USE_DEFAULT,
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
        resend_if_absent: bool = False,
        tag: str | None = None,
    ) -> OrderResult:
        """Send a trade request exactly once: tagged, and reconciled after an ambiguous outcome.

        Raises:
            MT5TradeError: The server refused it (retcode, its name, comment, symbol, request).
            MT5TradeOutcomeUnknownError: It may or may not have happened (see ``.tag``).
            MT5OrderNotPlacedError: It failed and provably took no effect.
            MT5InvalidArgumentError: A malformed request, or a volume off the symbol's limits.
        """
        return await self.trader.order_send(
            request, timeout=timeout, exactly_once=exactly_once,
            reconcile_timeout=reconcile_timeout, resend_if_absent=resend_if_absent, tag=tag,
        )  # fmt: skip

    async def order_check(
        self, request: TradeRequest | Mapping[str, Any], *, timeout: TimeoutArg = USE_DEFAULT
    ) -> OrderCheck:
        """Check a trade request (margin, volumes, stops) without sending it."""
        return await self.trader.order_check(request, timeout=timeout)

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
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
        resend_if_absent: bool = False,
        tag: str | None = None,
    ) -> OrderResult:
        """Open (or add to) a long position at the market.

        ``price=None`` uses the current ask where the symbol needs a price; requotes are
        retried up to 3 times (a requote executed nothing).
        """
        return await self.trader.buy(
            symbol, volume, price=price, sl=sl, tp=tp, deviation=deviation, magic=magic,
            comment=comment, type_filling=type_filling, timeout=timeout,
            exactly_once=exactly_once, reconcile_timeout=reconcile_timeout,
            resend_if_absent=resend_if_absent, tag=tag,
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
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
        resend_if_absent: bool = False,
        tag: str | None = None,
    ) -> OrderResult:
        """Open (or add to) a short position at the market; see ``buy``."""
        return await self.trader.sell(
            symbol, volume, price=price, sl=sl, tp=tp, deviation=deviation, magic=magic,
            comment=comment, type_filling=type_filling, timeout=timeout,
            exactly_once=exactly_once, reconcile_timeout=reconcile_timeout,
            resend_if_absent=resend_if_absent, tag=tag,
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
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
        resend_if_absent: bool = False,
        tag: str | None = None,
    ) -> OrderResult:
        """Close a position (or ``volume`` of it) with an opposite market deal.

        ``magic=None`` keeps the position's own magic number.
        """
        return await self.trader.close_position(
            position, volume=volume, price=price, deviation=deviation, magic=magic,
            comment=comment, type_filling=type_filling, timeout=timeout,
            exactly_once=exactly_once, reconcile_timeout=reconcile_timeout,
            resend_if_absent=resend_if_absent, tag=tag,
        )  # fmt: skip

    async def modify_position(
        self,
        position: int | Position,
        *,
        sl: float | None = None,
        tp: float | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
        resend_if_absent: bool = False,
        tag: str | None = None,
    ) -> OrderResult:
        """Change a position's ``sl``/``tp`` (None keeps the current level; 0 removes it)."""
        return await self.trader.modify_position(
            position, sl=sl, tp=tp, timeout=timeout, exactly_once=exactly_once,
            reconcile_timeout=reconcile_timeout, resend_if_absent=resend_if_absent, tag=tag,
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
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
        resend_if_absent: bool = False,
        tag: str | None = None,
    ) -> OrderResult:
        """Place a pending order: ``type`` is ``OrderType.BUY_LIMIT``, ``SELL_STOP``...

        ``expiration`` (aware datetime) makes it good till then; otherwise good till cancelled.
        """
        return await self.trader.place_pending(
            symbol, type, volume, price, stoplimit=stoplimit, sl=sl, tp=tp,
            expiration=expiration, deviation=deviation, magic=magic, comment=comment,
            type_filling=type_filling,
            timeout=timeout, exactly_once=exactly_once, reconcile_timeout=reconcile_timeout,
            resend_if_absent=resend_if_absent, tag=tag,
        )  # fmt: skip

    async def cancel_order(
        self,
        order: int | Order,
        *,
        timeout: TimeoutArg = USE_DEFAULT,
        exactly_once: bool = True,
        reconcile_timeout: float | None = None,
        resend_if_absent: bool = False,
        tag: str | None = None,
    ) -> OrderResult:
        """Remove a pending order."""
        return await self.trader.cancel_order(
            order, timeout=timeout, exactly_once=exactly_once,
            reconcile_timeout=reconcile_timeout, resend_if_absent=resend_if_absent, tag=tag,
        )  # fmt: skip

    # ------------------------------------------------------------------ sizing

    async def normalize_volume(
        self, symbol: str, volume: float, *, timeout: TimeoutArg = USE_DEFAULT
    ) -> float:
        """The valid volume of ``symbol`` nearest to ``volume``: on its step, within min/max."""
        rules = await self.trader.symbol_rules(symbol, timeout=timeout)
        return rules.nearest_volume(volume)

    async def normalize_price(
        self, symbol: str, price: float, *, timeout: TimeoutArg = USE_DEFAULT
    ) -> float:
        """``price`` on ``symbol``'s tick grid, rounded to its digits."""
        rules = await self.trader.symbol_rules(symbol, timeout=timeout)
        return rules.price(price)

    async def volume_for_risk(
        self,
        symbol: str,
        order_type: int,
        price: float,
        sl: float,
        risk: float,
        *,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> float:
        """The largest valid volume whose loss at ``sl`` is at most ``risk`` (account currency).

        The loss is the terminal's own ``order_calc_profit`` from ``price`` to ``sl``.

        Raises:
            MT5InvalidArgumentError: ``sl`` on the wrong side of ``price``, a risk that is not
                positive, or one smaller than the loss of the symbol's minimum volume.
        """
        from ._sizing import volume_for_risk

        rules = await self.trader.symbol_rules(symbol, timeout=timeout)
        connector = cast("AsyncMT5Connector", self)
        return await volume_for_risk(connector, rules, order_type, price, sl, risk, timeout)

    # ------------------------------------------------------------------ reads

    async def positions(
        self,
        symbol: str | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> tuple[Position, ...]:
        """Open positions (all, or by ``symbol``, ``group`` or ``ticket``), as records."""
        return await self.trader.positions(symbol, group=group, ticket=ticket, timeout=timeout)

    async def orders(
        self,
        symbol: str | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> tuple[Order, ...]:
        """Active pending orders (all, or by ``symbol``, ``group`` or ``ticket``), as records."""
        return await self.trader.orders(symbol, group=group, ticket=ticket, timeout=timeout)

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
        return await self.trader.history_orders(
            date_from, date_to, group=group, ticket=ticket, position=position, timeout=timeout
        )

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
        """Deals in ``[date_from, date_to]`` (+ ``group``), by order ``ticket`` or ``position``."""
        return await self.trader.history_deals(
            date_from, date_to, group=group, ticket=ticket, position=position, timeout=timeout
        )

    # ------------------------------------------------------------------ frames

    async def positions_frame(
        self,
        symbol: str | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        engine: FrameEngine | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> Any:
        """``positions()`` as a pandas (default if installed) or polars frame; UTC times,
        enum columns as categories of member names (``type``: ``"BUY"``/``"SELL"``)."""
        from ._trade_models import Position
        from ._trading_frames import records_to_frame

        found = await self.positions(symbol, group=group, ticket=ticket, timeout=timeout)
        return records_to_frame(found, Position, engine)

    async def orders_frame(
        self,
        symbol: str | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        engine: FrameEngine | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> Any:
        """``orders()`` as a frame; see ``positions_frame``."""
        from ._trade_models import Order
        from ._trading_frames import records_to_frame

        found = await self.orders(symbol, group=group, ticket=ticket, timeout=timeout)
        return records_to_frame(found, Order, engine)

    async def history_orders_frame(
        self,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
        engine: FrameEngine | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> Any:
        """``history_orders()`` as a frame; see ``positions_frame``."""
        from ._trade_models import Order
        from ._trading_frames import records_to_frame

        found = await self.history_orders(
            date_from, date_to, group=group, ticket=ticket, position=position, timeout=timeout
        )
        return records_to_frame(found, Order, engine)

    async def history_deals_frame(
        self,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
        engine: FrameEngine | None = None,
        timeout: TimeoutArg = USE_DEFAULT,
    ) -> Any:
        """``history_deals()`` as a frame; see ``positions_frame``."""
        from ._trade_models import Deal
        from ._trading_frames import records_to_frame

        found = await self.history_deals(
            date_from, date_to, group=group, ticket=ticket, position=position, timeout=timeout
        )
        return records_to_frame(found, Deal, engine)
