"""The connector's trading methods: each one is its exactly-once ``Trader``'s method.

Kept apart from ``_connector.py`` so the connector module stays about connecting and calling;
``AsyncMT5Connector`` inherits these. The options of each method (``sl=``, ``deviation=``,
``resend_if_absent=``, ``tag=``, ``timeout=``...) are the ``Trader`` method's, passed through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiomt5._connector import AsyncMT5Connector

    from ._models import Deal, Order, OrderCheck, OrderResult, Position, TradeRequest
    from ._trader import Trader

__all__ = ["TradingMethods"]

_SETTLE_IN_TESTING = 0.0
"""No trade server is slow to show an order in tests: decide absence at once."""


class TradingMethods:
    """Trading on ``AsyncMT5Connector``; see ``aiomt5.Trader`` for the options of each method."""

    _trader_instance: Trader | None = None

    @property
    def trader(self) -> Trader:
        """This connector's exactly-once trader (created on first use)."""
        if self._trader_instance is None:
            from ._trader import Trader

            connector = cast("AsyncMT5Connector", self)
            options: dict[str, Any] = {}
            if connector.settings.testing:
                options["settle"] = _SETTLE_IN_TESTING
            self._trader_instance = Trader(connector, **options)
        return self._trader_instance

    async def order_send(
        self, request: TradeRequest | Mapping[str, Any], **options: Any
    ) -> OrderResult:
        """Send a trade request exactly once: tagged, and reconciled after an ambiguous outcome.

        Raises:
            MT5TradeError: The server refused it (retcode, its name, comment and request).
            MT5TradeOutcomeUnknownError: It may or may not have happened (see ``.tag``).
            MT5OrderNotPlacedError: It failed and provably took no effect.
        """
        return await self.trader.order_send(request, **options)

    async def order_check(
        self, request: TradeRequest | Mapping[str, Any], **options: Any
    ) -> OrderCheck:
        """Check a trade request (margin, volumes, stops) without sending it."""
        return await self.trader.order_check(request, **options)

    async def buy(self, symbol: str, volume: float, **options: Any) -> OrderResult:
        """Open (or add to) a long position at the market."""
        return await self.trader.buy(symbol, volume, **options)

    async def sell(self, symbol: str, volume: float, **options: Any) -> OrderResult:
        """Open (or add to) a short position at the market."""
        return await self.trader.sell(symbol, volume, **options)

    async def close_position(self, position: int | Position, **options: Any) -> OrderResult:
        """Close a position (or ``volume=`` of it) with an opposite market deal."""
        return await self.trader.close_position(position, **options)

    async def modify_position(self, position: int | Position, **options: Any) -> OrderResult:
        """Change a position's ``sl=``/``tp=``."""
        return await self.trader.modify_position(position, **options)

    async def place_pending(
        self, symbol: str, type: int, volume: float, price: float, **options: Any
    ) -> OrderResult:
        """Place a pending order (limit, stop or stop-limit)."""
        return await self.trader.place_pending(symbol, type, volume, price, **options)

    async def cancel_order(self, order: int | Order, **options: Any) -> OrderResult:
        """Remove a pending order."""
        return await self.trader.cancel_order(order, **options)

    async def positions(self, symbol: str | None = None, **options: Any) -> tuple[Position, ...]:
        """Open positions (``symbol``, or ``group=``/``ticket=``), as immutable records."""
        return await self.trader.positions(symbol, **options)

    async def orders(self, symbol: str | None = None, **options: Any) -> tuple[Order, ...]:
        """Active pending orders, as immutable records."""
        return await self.trader.orders(symbol, **options)

    async def history_orders(self, *args: Any, **options: Any) -> tuple[Order, ...]:
        """History orders by date range (+``group=``), ``ticket=`` or ``position=``."""
        return await self.trader.history_orders(*args, **options)

    async def history_deals(self, *args: Any, **options: Any) -> tuple[Deal, ...]:
        """Deals by date range (+``group=``), order ``ticket=`` or ``position=``."""
        return await self.trader.history_deals(*args, **options)
