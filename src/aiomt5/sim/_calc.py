"""Margin, profit and tick value per ``SYMBOL_CALC_MODE_*``, in the account currency.

The formulas are MQL5's (``ENUM_SYMBOL_CALC_MODE``); ``price`` is the price the caller passes,
as ``order_calc_margin`` does, and stands for the docs' "market price" and "last price":

=====================  ============================================  ===========================
calc mode              margin                                        profit
=====================  ============================================  ===========================
FOREX                  lots * contract / leverage * rate             (close-open) * contract * lots
FOREX_NO_LEVERAGE      lots * contract * rate                        as FOREX
CFD                    lots * contract * price * rate                as FOREX
CFDINDEX               lots * contract * price * tick_price /        as FOREX
                       tick_size * rate
CFDLEVERAGE            lots * contract * price / leverage * rate     as FOREX
EXCH_STOCKS (+MOEX)    lots * contract * price * rate                as FOREX
FUTURES, EXCH_FUTURES  lots * initial_margin * rate                  (close-open) * tick_price /
                                                                     tick_size * lots
=====================  ============================================  ===========================

Amounts without a price in them (FOREX, FOREX_NO_LEVERAGE, FUTURES) are in the margin currency;
price times contract is money in the profit currency, so the price-based margins and every
profit are in the profit currency. Sells negate the profit. Options, bonds and collateral are
not simulated and raise ``ValueError``.

Conversion to the account currency looks for a direct pair, ``CCY`` + ``ACC`` (multiply) or
``ACC`` + ``CCY`` (divide), then crosses through USD. Which side of the conversion pair's spread
is used follows the broker's side of the trade: margins and losses are converted at the rate that
makes them larger, gains at the rate that makes them smaller (hence MT5's
``trade_tick_value_loss`` >= ``trade_tick_value_profit``). When the conversion pair is the
instrument itself (EURUSD margin in EUR, USDJPY profit in JPY) the price of the calculation is
used instead of the market, so ``order_calc_margin(BUY, "EURUSD", 1.0, 1.10)`` on a 1:100 USD
account is exactly 1100.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aiomt5._mt5 import constants as c

from ._spec import SymbolSpec

__all__ = ["Quote", "convert", "is_buy", "margin", "profit", "tick_value"]

Quote = Callable[[str], tuple[float, float] | None]
"""``quote(name)`` gives the current ``(bid, ask)`` of a symbol, or None if it does not exist."""

_BUY_TYPES: Final = frozenset(
    {c.ORDER_TYPE_BUY, c.ORDER_TYPE_BUY_LIMIT, c.ORDER_TYPE_BUY_STOP, c.ORDER_TYPE_BUY_STOP_LIMIT}
)
_SELL_TYPES: Final = frozenset(
    {
        c.ORDER_TYPE_SELL,
        c.ORDER_TYPE_SELL_LIMIT,
        c.ORDER_TYPE_SELL_STOP,
        c.ORDER_TYPE_SELL_STOP_LIMIT,
    }
)
_CONTRACT_PROFIT_MODES: Final = frozenset(
    {
        c.SYMBOL_CALC_MODE_FOREX,
        c.SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE,
        c.SYMBOL_CALC_MODE_CFD,
        c.SYMBOL_CALC_MODE_CFDINDEX,
        c.SYMBOL_CALC_MODE_CFDLEVERAGE,
        c.SYMBOL_CALC_MODE_EXCH_STOCKS,
        c.SYMBOL_CALC_MODE_EXCH_STOCKS_MOEX,
    }
)
_FULL_PRICE_MARGIN_MODES: Final = frozenset(
    {c.SYMBOL_CALC_MODE_CFD, c.SYMBOL_CALC_MODE_EXCH_STOCKS, c.SYMBOL_CALC_MODE_EXCH_STOCKS_MOEX}
)
_TICK_PROFIT_MODES: Final = frozenset({c.SYMBOL_CALC_MODE_FUTURES, c.SYMBOL_CALC_MODE_EXCH_FUTURES})
#: Cross currency when no direct conversion pair exists.
_PIVOT: Final = "USD"


def is_buy(order_type: int) -> bool:
    """Direction of an order type: the BUY family is True, the SELL family False.

    Raises:
        ValueError: ``order_type`` is not a buy or sell type (e.g. ``ORDER_TYPE_CLOSE_BY``).
    """
    if order_type in _BUY_TYPES:
        return True
    if order_type in _SELL_TYPES:
        return False
    msg = f"order type {order_type} has no direction: use ORDER_TYPE_BUY/SELL or a pending type"
    raise ValueError(msg)


def margin(
    spec: SymbolSpec,
    order_type: int,
    volume: float,
    price: float,
    *,
    leverage: float,
    account_currency: str,
    quote: Quote,
    suffix: str = "",
) -> float | None:
    """Margin for ``volume`` lots at ``price``, in the account currency.

    Args:
        spec: The instrument.
        order_type: An ``ORDER_TYPE_*`` with a direction.
        volume: Lots.
        price: Open price of the order.
        leverage: The account's leverage (``100`` for 1:100).
        account_currency: Deposit currency, e.g. ``"USD"``.
        quote: Current ``(bid, ask)`` by symbol name, for conversion pairs.
        suffix: Broker suffix of the symbol names (``".m"``), added to conversion pair names.

    Returns:
        The margin, or None when its currency cannot be converted to the account currency.

    Raises:
        ValueError: Unknown order type or calc mode, or a leverage that is not positive.
    """
    is_buy(order_type)  # validates the type; margin itself does not depend on the direction
    if leverage <= 0:
        msg = f"leverage must be positive (100 for 1:100), got {leverage}"
        raise ValueError(msg)
    mode = spec.calc_mode
    lots = volume * spec.contract_size
    if mode == c.SYMBOL_CALC_MODE_FOREX:
        amount, currency = lots / leverage, spec.currency_margin
    elif mode == c.SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE:
        amount, currency = lots, spec.currency_margin
    elif mode in _TICK_PROFIT_MODES:
        amount, currency = volume * spec.margin_initial, spec.currency_margin
    elif mode in _FULL_PRICE_MARGIN_MODES:
        amount, currency = lots * price, spec.currency_profit
    elif mode == c.SYMBOL_CALC_MODE_CFDINDEX:
        amount = lots * price * spec.trade_tick_price / spec.trade_tick_size
        currency = spec.currency_profit
    elif mode == c.SYMBOL_CALC_MODE_CFDLEVERAGE:
        amount, currency = lots * price / leverage, spec.currency_profit
    else:
        raise _unsupported(spec)
    return convert(
        amount * spec.margin_rate,
        currency,
        account_currency=account_currency,
        quote=_pinned(quote, spec.name, price),
        larger=True,
        suffix=suffix,
    )


def profit(
    spec: SymbolSpec,
    order_type: int,
    volume: float,
    price_open: float,
    price_close: float,
    *,
    account_currency: str,
    quote: Quote,
    suffix: str = "",
) -> float | None:
    """Profit of ``volume`` lots opened at ``price_open`` and closed at ``price_close``.

    Args:
        spec: The instrument.
        order_type: An ``ORDER_TYPE_*`` with a direction; sells gain when the price falls.
        volume: Lots.
        price_open: Open price.
        price_close: Close price; also the rate when the instrument converts its own currency.
        account_currency: Deposit currency, e.g. ``"USD"``.
        quote: Current ``(bid, ask)`` by symbol name, for conversion pairs.
        suffix: Broker suffix of the symbol names, added to conversion pair names.

    Returns:
        The profit (negative for a loss) in the account currency, or None when the profit
        currency cannot be converted.

    Raises:
        ValueError: Unknown order type or calc mode.
    """
    sign = 1.0 if is_buy(order_type) else -1.0
    move = sign * (price_close - price_open) * volume
    amount = move * _profit_per_price_unit(spec)
    return convert(
        amount,
        spec.currency_profit,
        account_currency=account_currency,
        quote=_pinned(quote, spec.name, price_close),
        larger=amount < 0,
        suffix=suffix,
    )


def tick_value(
    spec: SymbolSpec,
    *,
    account_currency: str,
    quote: Quote,
    loss: bool = False,
    suffix: str = "",
) -> float:
    """``SymbolInfo.trade_tick_value``: one ``trade_tick_size`` move of one lot, account currency.

    Args:
        spec: The instrument.
        account_currency: Deposit currency.
        quote: Current ``(bid, ask)`` by symbol name; the instrument's own quote included.
        loss: Value a losing tick (``trade_tick_value_loss``) rather than a gaining one
            (``trade_tick_value`` and ``trade_tick_value_profit``).
        suffix: Broker suffix of the symbol names.

    Returns:
        The tick value, or 0.0 when the profit currency cannot be converted (as a terminal shows
        for a symbol whose conversion pair it does not have).

    Raises:
        ValueError: Unknown calc mode.
    """
    amount = spec.trade_tick_size * _profit_per_price_unit(spec)
    value = convert(
        amount,
        spec.currency_profit,
        account_currency=account_currency,
        quote=quote,
        larger=loss,
        suffix=suffix,
    )
    return 0.0 if value is None else value


def convert(
    amount: float,
    currency: str,
    *,
    account_currency: str,
    quote: Quote,
    larger: bool,
    suffix: str = "",
) -> float | None:
    """Convert ``amount`` of ``currency`` into the account currency.

    Args:
        amount: Money in ``currency`` (any sign).
        currency: Its currency code.
        account_currency: Target currency code.
        quote: Current ``(bid, ask)`` by symbol name.
        larger: Use the side of each pair's spread that gives the larger absolute result.
        suffix: Broker suffix added to pair names (``"EURUSD" + suffix``).

    Returns:
        The converted amount, or None when neither a direct pair nor a cross through USD exists.
    """
    if currency == account_currency:
        return amount
    rate = _direct_rate(currency, account_currency, quote, larger, suffix)
    if rate is None and _PIVOT not in (currency, account_currency):
        first = _direct_rate(currency, _PIVOT, quote, larger, suffix)
        second = _direct_rate(_PIVOT, account_currency, quote, larger, suffix)
        if first is not None and second is not None:
            rate = first * second
    return None if rate is None else amount * rate


def _direct_rate(
    currency: str, target: str, quote: Quote, larger: bool, suffix: str
) -> float | None:
    """Units of ``target`` per unit of ``currency`` through one pair, or None."""
    prices = _usable(quote(currency + target + suffix))
    if prices is not None:
        bid, ask = prices
        return ask if larger else bid
    prices = _usable(quote(target + currency + suffix))
    if prices is not None:
        bid, ask = prices
        return 1.0 / (bid if larger else ask)
    return None


def _usable(prices: tuple[float, float] | None) -> tuple[float, float] | None:
    """A quote a rate can come from: both sides positive (no division by a missing price)."""
    if prices is None or prices[0] <= 0.0 or prices[1] <= 0.0:
        return None
    return prices


def _pinned(quote: Quote, name: str, price: float) -> Quote:
    """``quote`` with the instrument itself priced at the calculation's price."""

    def pinned(symbol: str) -> tuple[float, float] | None:
        return (price, price) if symbol == name else quote(symbol)

    return pinned


def _profit_per_price_unit(spec: SymbolSpec) -> float:
    """Profit currency gained by one lot when the price rises by 1.0."""
    if spec.calc_mode in _CONTRACT_PROFIT_MODES:
        return spec.contract_size
    if spec.calc_mode in _TICK_PROFIT_MODES:
        return spec.trade_tick_price / spec.trade_tick_size
    raise _unsupported(spec)


def _unsupported(spec: SymbolSpec) -> ValueError:
    names = [
        name
        for name, value in c.CONSTANTS.items()
        if name.startswith("SYMBOL_CALC_MODE_") and value == spec.calc_mode
    ]
    mode = names[0] if names else str(spec.calc_mode)
    return ValueError(
        f"{spec.name}: calc mode {mode} is not simulated; use FOREX, FOREX_NO_LEVERAGE, CFD, "
        "CFDINDEX, CFDLEVERAGE, FUTURES, EXCH_STOCKS(_MOEX) or EXCH_FUTURES"
    )
