"""The simulated broker's instrument catalogue."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest

from aiomt5._mt5 import constants as c
from aiomt5.sim._calc import Quote, margin, profit
from aiomt5.sim._spec import SymbolSpec
from aiomt5.sim._symbols import CATALOGUE, find_spec, with_suffix

MAJORS = ("EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD", "USDCAD", "NZDUSD")
PRICE_BASED_MODES = {
    c.SYMBOL_CALC_MODE_CFD,
    c.SYMBOL_CALC_MODE_CFDINDEX,
    c.SYMBOL_CALC_MODE_CFDLEVERAGE,
    c.SYMBOL_CALC_MODE_EXCH_STOCKS,
}


def spec(name: str) -> SymbolSpec:
    found = find_spec(name)
    assert found is not None, name
    return found


def is_open(name: str, when: str) -> bool:
    """Whether ``name`` trades during the minute starting at ``when`` (UTC server time)."""
    minute = int(datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()) // 60
    return bool(spec(name).hours.is_open(np.array([minute], dtype=np.int64))[0])


def base_quote(specs: tuple[SymbolSpec, ...] = CATALOGUE) -> Quote:
    """Quotes at every instrument's base price with its typical spread."""
    book = {s.name: (s.base_price, s.base_price + s.spread * s.point) for s in specs}
    return book.get


def category(s: SymbolSpec) -> str:
    return s.path.split("\\")[0]


def test_catalogue_has_at_least_thirty_instruments() -> None:
    assert len(CATALOGUE) >= 30


def test_names_are_unique() -> None:
    assert [n for n, k in Counter(s.name for s in CATALOGUE).items() if k > 1] == []


def test_every_asset_class_is_present() -> None:
    assert {category(s) for s in CATALOGUE} == {
        "Forex", "Metals", "Energies", "Indices", "Crypto", "Stocks",
    }  # fmt: skip


def test_category_field_names_the_asset_class() -> None:
    assert all(s.category == category(s) for s in CATALOGUE)


def test_forex_majors_are_present_and_fully_tradable() -> None:
    assert all(spec(n).trade_mode == c.SYMBOL_TRADE_MODE_FULL for n in MAJORS)


def test_forex_majors_live_under_the_majors_folder() -> None:
    assert [spec(n).path for n in MAJORS] == [f"Forex\\Majors\\{n}" for n in MAJORS]


def test_at_least_fifteen_forex_crosses() -> None:
    assert sum(s.path.startswith("Forex\\Minors\\") for s in CATALOGUE) >= 15


def test_path_ends_with_the_symbol_name() -> None:
    assert all(s.path.endswith("\\" + s.name) for s in CATALOGUE)


def test_forex_pairs_are_named_after_their_currencies() -> None:
    fx = [s for s in CATALOGUE if category(s) == "Forex"]
    assert all(s.name == s.currency_base + s.currency_profit for s in fx)
    assert all(s.currency_margin == s.currency_base for s in fx)


def test_forex_digits_are_three_for_yen_and_five_otherwise() -> None:
    fx = [s for s in CATALOGUE if category(s) == "Forex" and s.currency_profit != "RUB"]
    assert all(s.digits == (3 if s.currency_profit == "JPY" else 5) for s in fx)


def test_forex_contract_is_100000_units() -> None:
    assert all(s.contract_size == 100_000 for s in CATALOGUE if category(s) == "Forex")


def test_gold_and_silver_contracts_and_digits() -> None:
    gold, silver = spec("XAUUSD"), spec("XAGUSD")
    assert (gold.digits, gold.contract_size) == (2, 100)
    assert (silver.digits, silver.contract_size) == (3, 5000)


def test_crosses_are_consistent_with_majors() -> None:
    eurjpy = spec("EURUSD").base_price * spec("USDJPY").base_price
    assert spec("EURJPY").base_price == pytest.approx(eurjpy, rel=1e-4)
    eurgbp = spec("EURUSD").base_price / spec("GBPUSD").base_price
    assert spec("EURGBP").base_price == pytest.approx(eurgbp, rel=1e-4)


def test_base_price_is_on_the_price_grid() -> None:
    off = [s.name for s in CATALOGUE if round(s.base_price, s.digits) != s.base_price]
    assert off == []


def test_point_is_ten_to_minus_digits() -> None:
    assert all(math.isclose(s.point, 10.0**-s.digits) for s in CATALOGUE)


def test_tick_size_is_a_whole_number_of_points() -> None:
    ratios = [s.trade_tick_size / s.point for s in CATALOGUE]
    assert all(r >= 1 and math.isclose(r, round(r)) for r in ratios)


def test_typical_spread_is_below_half_a_percent_of_price() -> None:
    wide = [s.name for s in CATALOGUE if not 0 < s.spread * s.point < 0.005 * s.base_price]
    assert wide == []


def test_volume_limits_are_consistent() -> None:
    bad = [
        s.name
        for s in CATALOGUE
        if not (0 < s.volume_step <= s.volume_min <= s.volume_max)
        or not math.isclose(s.volume_min / s.volume_step, round(s.volume_min / s.volume_step))
    ]
    assert bad == []


def test_filling_bitmasks_are_fok_ioc_or_both() -> None:
    assert {s.filling_mode for s in CATALOGUE} == {1, 2, 3}


def test_some_symbols_use_instant_and_exchange_execution() -> None:
    modes = Counter(s.exemode for s in CATALOGUE)
    assert modes[c.SYMBOL_TRADE_EXECUTION_INSTANT] >= 2
    assert modes[c.SYMBOL_TRADE_EXECUTION_EXCHANGE] >= 1
    assert modes[c.SYMBOL_TRADE_EXECUTION_MARKET] > len(CATALOGUE) // 2


def test_restricted_trade_modes_exist_for_tests() -> None:
    modes = {s.trade_mode for s in CATALOGUE}
    assert {c.SYMBOL_TRADE_MODE_CLOSEONLY, c.SYMBOL_TRADE_MODE_LONGONLY} <= modes


def test_exchange_stock_prints_last_prices() -> None:
    aapl = spec("AAPL")
    assert aapl.has_last
    assert aapl.chart_mode == c.SYMBOL_CHART_MODE_LAST
    assert aapl.calc_mode == c.SYMBOL_CALC_MODE_EXCH_STOCKS
    assert (aapl.contract_size, aapl.volume_min, aapl.volume_step) == (1, 1, 1)
    assert aapl.path == "Stocks\\NASDAQ\\AAPL"


def test_only_exchange_traded_instruments_have_last_prices() -> None:
    assert all(s.has_last == (s.calc_mode == c.SYMBOL_CALC_MODE_EXCH_STOCKS) for s in CATALOGUE)


def test_index_cfds_use_index_calc_modes_and_their_own_currency() -> None:
    indices = {s.name: s for s in CATALOGUE if category(s) == "Indices"}
    assert {"US30", "US500", "NAS100", "GER40", "UK100", "JP225"} <= indices.keys()
    assert indices["GER40"].currency_profit == "EUR"
    assert indices["UK100"].currency_profit == "GBP"
    assert indices["JP225"].currency_profit == "JPY"
    assert {s.calc_mode for s in indices.values()} <= PRICE_BASED_MODES


def test_price_based_margins_are_in_the_profit_currency() -> None:
    bad = [
        s.name
        for s in CATALOGUE
        if s.calc_mode in PRICE_BASED_MODES and s.currency_margin != s.currency_profit
    ]
    assert bad == []


@pytest.mark.parametrize("s", CATALOGUE, ids=lambda s: s.name)
def test_margin_and_profit_convert_to_usd(s: SymbolSpec) -> None:
    quote = base_quote()
    price = s.base_price
    required = margin(
        s, c.ORDER_TYPE_BUY, s.volume_min, price, leverage=100, account_currency="USD", quote=quote
    )
    gained = profit(
        s, c.ORDER_TYPE_BUY, s.volume_min, price, price * 1.01,
        account_currency="USD", quote=quote,
    )  # fmt: skip
    assert required is not None
    assert required > 0
    assert gained is not None
    assert gained > 0


def test_forex_is_open_midweek() -> None:
    assert is_open("EURUSD", "2026-03-04T12:00")


def test_forex_is_closed_on_saturday() -> None:
    assert not is_open("EURUSD", "2026-03-07T12:00")


def test_forex_opens_monday_midnight_and_closes_friday_midnight() -> None:
    assert not is_open("EURUSD", "2026-03-01T23:59")
    assert is_open("EURUSD", "2026-03-02T00:00")
    assert is_open("EURUSD", "2026-03-06T23:59")
    assert not is_open("EURUSD", "2026-03-07T00:00")


def test_crypto_is_open_on_saturday() -> None:
    assert is_open("BTCUSD", "2026-03-07T12:00")
    assert is_open("ETHUSD", "2026-03-08T03:00")


def test_everything_but_crypto_is_closed_on_saturday() -> None:
    minute = int(datetime(2026, 3, 7, 12, tzinfo=UTC).timestamp()) // 60
    open_names = {
        s.name for s in CATALOGUE if s.hours.is_open(np.array([minute], dtype=np.int64))[0]
    }
    assert open_names == {s.name for s in CATALOGUE if category(s) == "Crypto"}


def test_metals_pause_for_an_hour_before_midnight() -> None:
    assert is_open("XAUUSD", "2026-03-03T22:59")
    assert not is_open("XAUUSD", "2026-03-03T23:00")
    assert not is_open("XAUUSD", "2026-03-03T23:59")
    assert is_open("XAUUSD", "2026-03-04T00:00")


def test_us_index_halts_between_22_and_23_utc() -> None:
    assert is_open("US500", "2026-03-03T21:59")
    assert not is_open("US500", "2026-03-03T22:30")
    assert is_open("US500", "2026-03-03T23:00")


def test_us_index_reopens_sunday_evening() -> None:
    assert not is_open("US500", "2026-03-08T22:59")
    assert is_open("US500", "2026-03-08T23:00")


def test_german_index_is_closed_overnight() -> None:
    assert not is_open("GER40", "2026-03-03T00:30")
    assert is_open("GER40", "2026-03-03T08:00")


def test_stock_trades_only_during_nasdaq_hours() -> None:
    assert not is_open("AAPL", "2026-03-03T14:29")
    assert is_open("AAPL", "2026-03-03T14:30")
    assert is_open("AAPL", "2026-03-03T20:59")
    assert not is_open("AAPL", "2026-03-03T21:00")


def test_sessions_are_well_formed() -> None:
    bad = [
        s.name
        for s in CATALOGUE
        for day, start, end in s.hours.sessions
        if not (0 <= day <= 6 and 0 <= start < end <= 1440)
    ]
    assert bad == []


def test_volatility_is_higher_for_crypto_than_for_forex_majors() -> None:
    assert max(spec(n).volatility for n in MAJORS) < 0.15 < spec("BTCUSD").volatility


def test_find_spec_returns_none_for_unknown_names() -> None:
    assert find_spec("EURUSD.m") is None
    assert find_spec("eurusd") is None


def test_find_spec_searches_given_specs() -> None:
    renamed = with_suffix(CATALOGUE, ".m")
    found = find_spec("EURUSD.m", renamed)
    assert found is not None
    assert found.currency_base == "EUR"


def test_suffix_renames_every_name() -> None:
    assert [s.name for s in with_suffix(CATALOGUE, ".m")] == [s.name + ".m" for s in CATALOGUE]


def test_suffix_renames_the_last_path_element() -> None:
    renamed = with_suffix(CATALOGUE, ".m")
    assert renamed[0].path == "Forex\\Majors\\EURUSD.m"
    assert all(s.path.endswith("\\" + s.name) for s in renamed)


def test_suffix_keeps_currencies_and_prices() -> None:
    renamed = with_suffix(CATALOGUE, "pro")
    for old, new in zip(CATALOGUE, renamed, strict=True):
        assert (new.currency_profit, new.base_price, new.hours) == (
            old.currency_profit, old.base_price, old.hours,
        )  # fmt: skip


def test_empty_suffix_changes_nothing() -> None:
    assert with_suffix(CATALOGUE, "") == CATALOGUE


@pytest.mark.parametrize("suffix", [".m,x", "*", " m", "\\m"])
def test_suffix_with_separator_characters_is_rejected(suffix: str) -> None:
    with pytest.raises(ValueError, match="suffix"):
        with_suffix(CATALOGUE, suffix)
