"""The connector's trading methods: each one is its exactly-once ``Trader``'s method.

Kept apart from ``_connector.py`` so the connector module stays about connecting and calling;
``AsyncMT5Connector`` inherits these (and ``MT5Connector`` wraps them). Every method that sends
an order takes the same exactly-once options — ``timeout``, ``exactly_once``,
``reconcile_timeout``, ``resend_if_absent``, ``tag`` — and those that create an order the same
order options (``deviation``, ``magic``, ``comment``, ``type_filling``). Prices, SL and TP are
rounded to the symbol's tick size; volumes are checked against its min/max/step.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from aiomt5._core._types import USE_DEFAULT, TimeoutArg

from ._trader import Trader

if TYPE_CHECKING:
    from aiomt5._connector import AsyncMT5Connector
    from aiomt5._market._frames import FrameEngine

__all__ = ["TradingMethods"]

_SETTLE_IN_TESTING = 0.0
"""No trade server is slow to show an order in tests: decide absence at once."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _trader_method(
    method: Callable[Concatenate[Trader, _P], Awaitable[_R]],
) -> Callable[Concatenate[Any, _P], Coroutine[Any, Any, _R]]:
    """The connector's twin of ``Trader.<method>``: same signature, docstring and errors."""
    name = method.__name__

    async def run(self: TradingMethods, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        bound: Callable[_P, Awaitable[_R]] = getattr(self.trader, name)
        return await bound(*args, **kwargs)

    functools.update_wrapper(run, method)
    run.__qualname__ = f"AsyncMT5Connector.{name}"
    return run


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
            connector = cast("AsyncMT5Connector", self)
            options: dict[str, Any] = {}
            if connector.settings.testing:
                options["settle"] = _SETTLE_IN_TESTING
            self._trader_instance = Trader(connector, **options)
        return self._trader_instance

    # ------------------------------------------------------------------ the trader's methods
    # Each is the Trader method of the same name: one signature, one docstring, one place.

    order_send = _trader_method(Trader.order_send)
    """Send a raw request, exactly once.

    The connector's twin of
    [`Trader.order_send`][aiomt5.Trader.order_send], with the same signature and errors.
    """

    order_check = _trader_method(Trader.order_check)
    """Check a request without sending it.

    The connector's twin of
    [`Trader.order_check`][aiomt5.Trader.order_check], with the same signature and errors.
    """

    buy = _trader_method(Trader.buy)
    """Buy at market, exactly once.

    The connector's twin of
    [`Trader.buy`][aiomt5.Trader.buy], with the same signature and errors.
    """

    sell = _trader_method(Trader.sell)
    """Sell at market, exactly once.

    The connector's twin of
    [`Trader.sell`][aiomt5.Trader.sell], with the same signature and errors.
    """

    close_position = _trader_method(Trader.close_position)
    """Close a position (or part of it), exactly once.

    The connector's twin of
    [`Trader.close_position`][aiomt5.Trader.close_position], with the same signature and errors.
    """

    modify_position = _trader_method(Trader.modify_position)
    """Change a position's SL/TP, reconciled by state.

    The connector's twin of
    [`Trader.modify_position`][aiomt5.Trader.modify_position], with the same signature and errors.
    """

    place_pending = _trader_method(Trader.place_pending)
    """Place a pending order, exactly once.

    The connector's twin of
    [`Trader.place_pending`][aiomt5.Trader.place_pending], with the same signature and errors.
    """

    cancel_order = _trader_method(Trader.cancel_order)
    """Cancel a pending order, reconciled by state.

    The connector's twin of
    [`Trader.cancel_order`][aiomt5.Trader.cancel_order], with the same signature and errors.
    """

    positions = _trader_method(Trader.positions)
    """Open positions as frozen `Position` records.

    The connector's twin of
    [`Trader.positions`][aiomt5.Trader.positions], with the same signature and errors.
    """

    orders = _trader_method(Trader.orders)
    """Pending orders as frozen `Order` records.

    The connector's twin of
    [`Trader.orders`][aiomt5.Trader.orders], with the same signature and errors.
    """

    history_orders = _trader_method(Trader.history_orders)
    """Orders of the history window.

    The connector's twin of
    [`Trader.history_orders`][aiomt5.Trader.history_orders], with the same signature and errors.
    """

    history_deals = _trader_method(Trader.history_deals)
    """Deals of the history window.

    The connector's twin of
    [`Trader.history_deals`][aiomt5.Trader.history_deals], with the same signature and errors.
    """

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
        from ._frames import records_to_frame
        from ._models import Position

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
        from ._frames import records_to_frame
        from ._models import Order

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
        from ._frames import records_to_frame
        from ._models import Order

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
        from ._frames import records_to_frame
        from ._models import Deal

        found = await self.history_deals(
            date_from, date_to, group=group, ticket=ticket, position=position, timeout=timeout
        )
        return records_to_frame(found, Deal, engine)
