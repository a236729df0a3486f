"""The Python helpers of MetaTrader5's ``__init__.py``: ``Buy``, ``Sell``, ``Close``, ``_RawOrder``.

The official package defines them in Python over its C functions (``order_send``,
``symbol_info_tick``, ``positions_get``), with their quirks: a market order is re-priced and sent
again while the server requotes (10 times at most), ``_RawOrder`` uses a deviation of 10, ``Close``
prices every position from ``symbol`` and answers True, ``"Partially"`` or False, and a missing
tick raises ``AttributeError`` (the helpers do not check for None). ``MetaTrader5Helpers`` is that
code once, for anything with the three functions: the simulator and ``aiomt5.compat``.
"""

from __future__ import annotations

from typing import Any, Protocol

from . import constants as c

__all__ = ["MetaTrader5Helpers"]


class _Functions(Protocol):
    """The C functions the helpers are written over."""

    def order_send(self, *args: Any, **kwargs: Any) -> Any: ...
    def symbol_info_tick(self, *args: Any) -> Any: ...
    def positions_get(self, *args: Any, **kwargs: Any) -> Any: ...
    def _RawOrder(
        self, order_type: int, symbol: str, volume: float, price: float,
        comment: str | None = None, ticket: int | None = None,
    ) -> Any: ...  # fmt: skip
    def _market_order(
        self: _Functions, order_type: int, symbol: str, volume: float, price: float | None,
        comment: str | None, ticket: int | None,
    ) -> Any: ...  # fmt: skip


class MetaTrader5Helpers:
    """``Buy``/``Sell``/``Close``/``_RawOrder`` for a class with ``order_send``,
    ``symbol_info_tick`` and ``positions_get``."""

    def _RawOrder(
        self: _Functions,
        order_type: int,
        symbol: str,
        volume: float,
        price: float,
        comment: str | None = None,
        ticket: int | None = None,
    ) -> Any:
        """Send a market deal as MetaTrader5's private helper does (deviation 10)."""
        request: dict[str, Any] = {
            "action": c.TRADE_ACTION_DEAL,
            "symbol": symbol,
            "volume": volume,
            "type": order_type,
            "price": price,
            "deviation": 10,
        }
        if comment is not None:
            request["comment"] = comment
        if ticket is not None:
            request["position"] = ticket
        return self.order_send(request)

    def _market_order(
        self: _Functions, order_type: int, symbol: str, volume: float, price: float | None,
        comment: str | None, ticket: int | None,
    ) -> Any:  # fmt: skip
        if price is not None:
            return self._RawOrder(order_type, symbol, volume, price, comment, ticket)
        result = None
        for _ in range(10):  # re-priced while the server requotes, like the official helper
            tick = self.symbol_info_tick(symbol)
            # The official helper reads .ask/.bid without a None check: AttributeError on None.
            current = tick.ask if order_type == c.ORDER_TYPE_BUY else tick.bid
            result = self._RawOrder(order_type, symbol, volume, current, comment, ticket)
            if result is None:
                return None
            if result.retcode not in (c.TRADE_RETCODE_REQUOTE, c.TRADE_RETCODE_PRICE_OFF):
                break
        return result

    def Buy(
        self: _Functions, symbol: str, volume: float, price: float | None = None, *,
        comment: str | None = None, ticket: int | None = None,
    ) -> Any:  # fmt: skip
        """Market buy (MetaTrader5's ``Buy`` helper)."""
        return self._market_order(c.ORDER_TYPE_BUY, symbol, volume, price, comment, ticket)

    def Sell(
        self: _Functions, symbol: str, volume: float, price: float | None = None, *,
        comment: str | None = None, ticket: int | None = None,
    ) -> Any:  # fmt: skip
        """Market sell (MetaTrader5's ``Sell`` helper)."""
        return self._market_order(c.ORDER_TYPE_SELL, symbol, volume, price, comment, ticket)

    def Close(
        self: _Functions, symbol: str, *, comment: str | None = None, ticket: int | None = None
    ) -> Any:
        """Close positions of ``symbol`` (or position ``ticket``): True, "Partially" or False."""
        positions = (
            self.positions_get(ticket=ticket) if ticket is not None
            else self.positions_get(symbol=symbol)
        )  # fmt: skip
        tried = done = 0
        for position in positions:  # TypeError on None, as the official helper
            if position.type not in (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL):
                continue
            tried += 1
            for _ in range(10):
                tick = self.symbol_info_tick(symbol)  # priced from `symbol`, even with a ticket
                if tick is None:
                    return None
                buy = position.type == c.ORDER_TYPE_BUY
                closing = c.ORDER_TYPE_SELL if buy else c.ORDER_TYPE_BUY
                price = tick.bid if buy else tick.ask
                result = self._RawOrder(
                    closing, symbol, position.volume, price, comment, position.ticket
                )
                if result is None:
                    return None
                if result.retcode not in (c.TRADE_RETCODE_REQUOTE, c.TRADE_RETCODE_PRICE_OFF):
                    done += result.retcode == c.TRADE_RETCODE_DONE
                    break
        if done:
            return True if done == tried else "Partially"
        return False
