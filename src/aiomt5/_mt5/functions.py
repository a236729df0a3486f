"""The functions of MetaTrader5 5.0.6231: the C functions and the ``__init__.py`` helpers."""

from __future__ import annotations

from typing import Final

__all__ = ["API_FUNCTIONS", "CONNECTION_FUNCTIONS", "HELPER_FUNCTIONS"]

API_FUNCTIONS: Final = (
    "initialize", "login", "shutdown", "version", "last_error", "terminal_info", "account_info",
    "symbols_total", "symbols_get", "symbol_info", "symbol_info_tick", "symbol_select",
    "market_book_add", "market_book_get", "market_book_release",
    "copy_rates_from", "copy_rates_from_pos", "copy_rates_range",
    "copy_ticks_from", "copy_ticks_range",
    "orders_total", "orders_get", "positions_total", "positions_get",
    "history_orders_total", "history_orders_get", "history_deals_total", "history_deals_get",
    "order_calc_margin", "order_calc_profit", "order_check", "order_send",
    "Buy", "Sell", "Close", "_RawOrder",
)  # fmt: skip
"""Every function of the MetaTrader5 module, in the module's order."""

CONNECTION_FUNCTIONS: Final = frozenset({"initialize", "shutdown", "last_error"})
"""The functions about the connection itself rather than the terminal's data."""

HELPER_FUNCTIONS: Final = frozenset({"Buy", "Sell", "Close", "_RawOrder"})
"""The functions the package writes in Python over the others (see ``helpers``)."""
