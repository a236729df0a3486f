"""Margin, profit and tick value per calc mode, converted to the account currency."""

from __future__ import annotations

import dataclasses

import pytest

from aiomt5._mt5 import constants as c
from aiomt5.sim._calc import convert, is_buy, margin, profit, tick_value
from aiomt5.sim._spec import SymbolSpec
from aiomt5.sim._symbols import CATALOGUE, find_spec, with_suffix

BUY, SELL = c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL

#: (bid, ask) of the conversion pairs the examples need; spreads make the side visible.
MARKET = {
    "EURUSD": (1.1600, 1.1602),
    "GBPUSD": (1.3300, 1.3302),
    "USDJPY": (150.00, 150.02),
    "USDMXN": (18.000, 18.010),
    "XAUUSD": (4000.00, 4000.20),
}


def quote(name: str) -> tuple[float, float] | None:
    return MARKET.get(name)


def spec(name: str) -> SymbolSpec:
    found = find_spec(name)
    assert found is not None
    return found


def usd_margin(name: str, volume: float, price: float, order_type: int = BUY) -> float | None:
    return margin(
        spec(name), order_type, volume, price, leverage=100, account_currency="USD", quote=quote
    )


def usd_profit(
    name: str, volume: float, price_open: float, price_close: float, order_type: int = BUY
) -> float | None:
    return profit(
        spec(name), order_type, volume, price_open, price_close,
        account_currency="USD", quote=quote,
    )  # fmt: skip


FUTURE = SymbolSpec(
    name="ESZ6",
    description="E-mini S&P 500 Dec 2026",
    path="Futures\\ESZ6",
    currency_base="USD",
    currency_profit="USD",
    currency_margin="USD",
    digits=2,
    contract_size=50.0,
    calc_mode=c.SYMBOL_CALC_MODE_FUTURES,
    tick_size=0.25,
    tick_price=5.0,  # deliberately not contract x tick size, so the formula is visible
    margin_initial=12_000.0,
)


# ------------------------------------------------------------------ margin per calc mode
def test_forex_margin_of_one_eurusd_lot_at_1_10_with_leverage_100_is_1100_usd() -> None:
    assert usd_margin("EURUSD", 1.0, 1.10) == pytest.approx(1100.0)


def test_forex_margin_converts_base_currency_at_the_given_price_for_sells_too() -> None:
    assert usd_margin("EURUSD", 1.0, 1.10, SELL) == pytest.approx(1100.0)


def test_forex_margin_in_the_account_currency_needs_no_conversion() -> None:
    assert usd_margin("USDJPY", 2.0, 150.0) == pytest.approx(2000.0)


def test_forex_cross_margin_converts_through_the_base_currency_pair_at_ask() -> None:
    # 1000 EUR at EURUSD ask 1.1602 (margins use the side that makes them larger)
    assert usd_margin("EURGBP", 1.0, 0.87) == pytest.approx(1160.2)


def test_forex_margin_rate_multiplies_the_margin() -> None:
    assert spec("USDMXN").margin_rate == 2.0
    assert usd_margin("USDMXN", 1.0, 18.0) == pytest.approx(2000.0)


def test_forex_no_leverage_margin_ignores_leverage() -> None:
    eurusd = dataclasses.replace(spec("EURUSD"), calc_mode=c.SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE)
    value = margin(eurusd, BUY, 1.0, 1.10, leverage=500, account_currency="USD", quote=quote)
    assert value == pytest.approx(110_000.0)


def test_gold_in_forex_mode_margin_is_ounces_over_leverage_times_price() -> None:
    # 1 lot = 100 oz; 100 / 100 = 1 XAU, worth 4000 USD at the order price
    assert usd_margin("XAUUSD", 1.0, 4000.0) == pytest.approx(4000.0)


def test_cfd_leverage_margin_of_silver() -> None:
    # 5000 oz * 50 USD / 100
    assert usd_margin("XAGUSD", 1.0, 50.0) == pytest.approx(2500.0)


def test_cfd_index_margin_of_us500() -> None:
    # 1 * 6800 * (0.01 / 0.01) * 0.05
    assert usd_margin("US500", 1.0, 6800.0) == pytest.approx(340.0)


def test_cfd_index_margin_scales_with_tick_price_over_tick_size() -> None:
    us500 = dataclasses.replace(spec("US500"), tick_size=0.25, tick_price=0.5)
    value = margin(us500, BUY, 1.0, 6800.0, leverage=100, account_currency="USD", quote=quote)
    assert value == pytest.approx(680.0)


def test_cfd_margin_of_an_index_in_euros_converts_at_eurusd_ask() -> None:
    # 1 * 24000 * 0.05 = 1200 EUR
    assert usd_margin("GER40", 1.0, 24_000.0) == pytest.approx(1200 * 1.1602)


def test_cfd_leverage_margin_of_an_index_in_yen_divides_by_usdjpy_bid() -> None:
    # 50000 JPY / 100 = 500 JPY; dividing by the bid gives the larger USD amount
    assert usd_margin("JP225", 1.0, 50_000.0) == pytest.approx(500 / 150.00)


def test_exchange_stock_margin_is_fully_paid() -> None:
    assert usd_margin("AAPL", 10.0, 270.0) == pytest.approx(2700.0)


def test_cfd_stock_margin_applies_the_margin_rate() -> None:
    assert usd_margin("NVDA", 10.0, 180.0) == pytest.approx(360.0)


def test_crypto_margin_is_notional_over_leverage_times_rate() -> None:
    # 0.1 * 100000 / 100 * 5
    assert usd_margin("BTCUSD", 0.1, 100_000.0) == pytest.approx(500.0)


def test_futures_margin_is_lots_times_initial_margin() -> None:
    value = margin(FUTURE, SELL, 2.0, 6800.0, leverage=100, account_currency="USD", quote=quote)
    assert value == pytest.approx(24_000.0)


def test_exchange_futures_margin_is_lots_times_initial_margin() -> None:
    future = dataclasses.replace(FUTURE, calc_mode=c.SYMBOL_CALC_MODE_EXCH_FUTURES)
    value = margin(future, BUY, 3.0, 6800.0, leverage=100, account_currency="USD", quote=quote)
    assert value == pytest.approx(36_000.0)


def test_pending_order_margin_equals_market_order_margin() -> None:
    assert usd_margin("EURUSD", 1.0, 1.10, c.ORDER_TYPE_SELL_STOP_LIMIT) == pytest.approx(1100.0)


# ------------------------------------------------------------------ profit per calc mode
def test_forex_profit_in_usd_needs_no_conversion() -> None:
    assert usd_profit("EURUSD", 1.0, 1.1000, 1.1050) == pytest.approx(500.0)


def test_sell_profit_is_negated() -> None:
    assert usd_profit("EURUSD", 1.0, 1.1000, 1.1050, SELL) == pytest.approx(-500.0)


def test_usdjpy_profit_converts_yen_at_the_close_price() -> None:
    # 1.000 * 100000 = 100000 JPY at 151.000
    assert usd_profit("USDJPY", 1.0, 150.0, 151.0) == pytest.approx(100_000 / 151.0)


def test_cross_gain_converts_at_the_smaller_rate() -> None:
    # 0.005 * 100000 = 500 GBP at GBPUSD bid
    assert usd_profit("EURGBP", 1.0, 0.8700, 0.8750) == pytest.approx(500 * 1.3300)


def test_cross_loss_converts_at_the_larger_rate() -> None:
    assert usd_profit("EURGBP", 1.0, 0.8700, 0.8750, SELL) == pytest.approx(-500 * 1.3302)


def test_yen_cross_gain_divides_by_usdjpy_ask() -> None:
    assert usd_profit("EURJPY", 1.0, 170.0, 171.0) == pytest.approx(100_000 / 150.02)


def test_gold_profit_is_ounces_times_move() -> None:
    assert usd_profit("XAUUSD", 0.5, 4000.0, 4010.0) == pytest.approx(500.0)


def test_index_profit_in_euros_converts_at_eurusd_bid() -> None:
    assert usd_profit("GER40", 2.0, 24_000.0, 24_010.0) == pytest.approx(20 * 1.1600)


def test_index_profit_in_usd_is_points_times_lots() -> None:
    assert usd_profit("US30", 0.5, 47_000.0, 47_100.0) == pytest.approx(50.0)


def test_stock_profit_is_shares_times_move() -> None:
    assert usd_profit("AAPL", 10.0, 270.0, 275.0) == pytest.approx(50.0)


def test_futures_profit_uses_tick_price_over_tick_size() -> None:
    # 10 / 0.25 ticks * 5 USD
    value = profit(FUTURE, BUY, 1.0, 6800.0, 6810.0, account_currency="USD", quote=quote)
    assert value == pytest.approx(200.0)


def test_buy_limit_profits_when_price_rises() -> None:
    assert usd_profit("EURUSD", 1.0, 1.10, 1.11, c.ORDER_TYPE_BUY_LIMIT) == pytest.approx(1000.0)


def test_sell_stop_loses_when_price_rises() -> None:
    assert usd_profit("EURUSD", 1.0, 1.10, 1.11, c.ORDER_TYPE_SELL_STOP) == pytest.approx(-1000.0)


def test_zero_move_is_zero_profit() -> None:
    assert usd_profit("EURGBP", 1.0, 0.87, 0.87) == 0.0


# ------------------------------------------------------------------ conversion
def test_unknown_profit_currency_gives_none() -> None:
    odd = dataclasses.replace(spec("EURUSD"), name="EURSEK", currency_profit="SEK")
    assert profit(odd, BUY, 1.0, 11.0, 11.1, account_currency="USD", quote=quote) is None


def test_instrument_converts_its_own_base_currency_without_other_pairs() -> None:
    sekusd = dataclasses.replace(spec("EURUSD"), name="SEKUSD", currency_margin="SEK")
    value = margin(sekusd, BUY, 1.0, 0.1, leverage=100, account_currency="USD", quote=quote)
    assert value == pytest.approx(100.0)


def test_unknown_margin_currency_gives_none() -> None:
    odd = dataclasses.replace(spec("EURUSD"), name="ODD", currency_margin="SEK")
    assert margin(odd, BUY, 1.0, 0.1, leverage=100, account_currency="USD", quote=quote) is None


def test_conversion_pair_without_a_quote_gives_none() -> None:
    assert margin(
        spec("EURGBP"), BUY, 1.0, 0.87, leverage=100, account_currency="USD",
        quote=lambda name: None,
    ) is None  # fmt: skip


def test_conversion_pair_with_a_zero_price_is_unusable() -> None:
    assert convert(1.0, "GBP", account_currency="USD", quote=lambda n: (0.0, 0.0), larger=True) is (
        None
    )


def test_euro_account_needs_no_conversion_for_euro_margin() -> None:
    value = margin(
        spec("EURUSD"), BUY, 1.0, 1.10, leverage=100, account_currency="EUR", quote=quote
    )
    assert value == pytest.approx(1000.0)


def test_euro_account_converts_usd_profit_through_the_instrument_itself() -> None:
    value = profit(spec("EURUSD"), BUY, 1.0, 1.10, 1.25, account_currency="EUR", quote=quote)
    assert value == pytest.approx(15_000 / 1.25)


def test_euro_account_crosses_through_usd_without_a_direct_pair() -> None:
    # 1000 MXN -> USD by dividing by the USDMXN ask, then USD -> EUR by dividing by EURUSD ask
    value = convert(1000.0, "MXN", account_currency="EUR", quote=quote, larger=False)
    assert value == pytest.approx(1000 / 18.010 / 1.1602)


def test_suffixed_symbols_convert_through_suffixed_pairs() -> None:
    renamed = {s.name: s for s in with_suffix(CATALOGUE, ".m")}
    suffixed = {name + ".m": prices for name, prices in MARKET.items()}.get
    value = margin(
        renamed["EURGBP.m"], BUY, 1.0, 0.87, leverage=100, account_currency="USD",
        quote=suffixed, suffix=".m",
    )  # fmt: skip
    assert value == pytest.approx(1160.2)


# ------------------------------------------------------------------ tick value
def test_tick_value_of_a_usd_quoted_pair_is_one_dollar() -> None:
    assert tick_value(spec("EURUSD"), account_currency="USD", quote=quote) == pytest.approx(1.0)


def test_tick_value_of_usdjpy_converts_100_yen_at_the_ask() -> None:
    value = tick_value(spec("USDJPY"), account_currency="USD", quote=quote)
    assert value == pytest.approx(100 / 150.02)


def test_losing_tick_value_is_at_least_the_gaining_one() -> None:
    gain = tick_value(spec("USDJPY"), account_currency="USD", quote=quote)
    loss = tick_value(spec("USDJPY"), account_currency="USD", quote=quote, loss=True)
    assert loss == pytest.approx(100 / 150.00)
    assert loss > gain


def test_tick_value_of_gold_is_one_dollar_per_cent() -> None:
    assert tick_value(spec("XAUUSD"), account_currency="USD", quote=quote) == pytest.approx(1.0)


def test_tick_value_of_a_euro_index_converts_at_eurusd_bid() -> None:
    value = tick_value(spec("GER40"), account_currency="USD", quote=quote)
    assert value == pytest.approx(0.01 * 1.1600)


def test_tick_value_of_a_future_is_its_tick_price() -> None:
    assert tick_value(FUTURE, account_currency="USD", quote=quote) == pytest.approx(5.0)


def test_tick_value_without_conversion_is_zero() -> None:
    odd = dataclasses.replace(spec("EURUSD"), name="EURSEK", currency_profit="SEK")
    assert tick_value(odd, account_currency="USD", quote=quote) == 0.0


# ------------------------------------------------------------------ bad input
def test_close_by_has_no_direction() -> None:
    with pytest.raises(ValueError, match="no direction"):
        is_buy(c.ORDER_TYPE_CLOSE_BY)


def test_buy_family_order_types_are_buys() -> None:
    buys = [c.ORDER_TYPE_BUY, c.ORDER_TYPE_BUY_LIMIT, c.ORDER_TYPE_BUY_STOP]
    assert all(is_buy(t) for t in [*buys, c.ORDER_TYPE_BUY_STOP_LIMIT])


def test_sell_family_order_types_are_sells() -> None:
    sells = [c.ORDER_TYPE_SELL, c.ORDER_TYPE_SELL_LIMIT, c.ORDER_TYPE_SELL_STOP]
    assert not any(is_buy(t) for t in [*sells, c.ORDER_TYPE_SELL_STOP_LIMIT])


def test_margin_rejects_non_positive_leverage() -> None:
    with pytest.raises(ValueError, match="leverage"):
        margin(spec("EURUSD"), BUY, 1.0, 1.1, leverage=0, account_currency="USD", quote=quote)


def test_unsimulated_calc_mode_is_named_in_the_error() -> None:
    bond = dataclasses.replace(spec("AAPL"), calc_mode=c.SYMBOL_CALC_MODE_EXCH_BONDS)
    with pytest.raises(ValueError, match="SYMBOL_CALC_MODE_EXCH_BONDS"):
        profit(bond, BUY, 1.0, 100.0, 101.0, account_currency="USD", quote=quote)
