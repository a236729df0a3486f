"""The simulated market: determinism, M1 as the base series, ticks inside their bars, "now"."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiomt5._mt5 import constants as c
from aiomt5._mt5.structs import RATES_DTYPE, TICKS_DTYPE
from aiomt5.sim import SimClock, SimTerminal
from aiomt5.sim._market import (
    HISTORY_START_24_7,
    HISTORY_START_DEFAULT,
    HistoryCache,
    MarketModel,
)
from aiomt5.sim._spec import SymbolSpec, TradingHours

FX = SymbolSpec(
    name="EURUSD", description="Euro vs US Dollar", path="Forex\\EURUSD",
    currency_base="EUR", currency_profit="USD", currency_margin="EUR", digits=5,
    contract_size=100_000.0, spread=12, base_price=1.1, volatility=0.08, ticks_per_minute=40.0,
)  # fmt: skip
CRYPTO = SymbolSpec(
    name="BTCUSD", description="Bitcoin vs US Dollar", path="Crypto\\BTCUSD",
    currency_base="BTC", currency_profit="USD", currency_margin="BTC", digits=2,
    contract_size=1.0, spread=1500, base_price=60_000.0, volatility=0.6, ticks_per_minute=30.0,
    hours=TradingHours.always(),
)  # fmt: skip
STOCK = SymbolSpec(
    name="AAPL", description="Apple Inc.", path="Stocks\\AAPL", currency_base="USD",
    currency_profit="USD", currency_margin="USD", digits=2, contract_size=1.0, spread=2,
    base_price=180.0, volatility=0.3, ticks_per_minute=20.0, has_last=True,
    chart_mode=c.SYMBOL_CHART_MODE_LAST, calc_mode=c.SYMBOL_CALC_MODE_EXCH_STOCKS,
    hours=TradingHours.weekdays(14 * 60 + 30, 21 * 60),
)  # fmt: skip
GOLD = SymbolSpec(
    name="XAUUSD", description="Gold vs US Dollar", path="Metals\\XAUUSD",
    currency_base="XAU", currency_profit="USD", currency_margin="XAU", digits=2,
    contract_size=100.0, spread=25, base_price=2000.0, volatility=0.15, ticks_per_minute=30.0,
    hours=TradingHours.weekdays(daily_break=60),
)  # fmt: skip
SPECS = {spec.name: spec for spec in (FX, CRYPTO, STOCK, GOLD)}
SEED = 20240304


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


FRIDAY = utc(2024, 3, 1)
SATURDAY = utc(2024, 3, 2)
SUNDAY = utc(2024, 3, 3)
MONDAY = utc(2024, 3, 4)
LATER_MSC = utc(2030, 1, 1) * 1000  # a "now" far after every range below


def minute(epoch_s: int) -> int:
    return epoch_s // 60


def day_ticks(model: MarketModel, day_start: int) -> np.ndarray:
    return model.ticks_range(day_start * 1000, day_start * 1000 + 86_399_999, LATER_MSC, -1)


@pytest.fixture(scope="module")
def fx() -> MarketModel:
    return MarketModel(FX, SEED)


# =============================================================================== determinism
def test_same_seed_and_symbol_give_identical_bars_and_ticks_in_new_instances() -> None:
    a, b = MarketModel(FX, SEED), MarketModel(FX, SEED)
    span = (minute(MONDAY), minute(MONDAY) + 3 * 1440)
    assert np.array_equal(a.m1(*span), b.m1(*span))
    assert np.array_equal(day_ticks(a, MONDAY), day_ticks(b, MONDAY))


def test_seed_changes_the_prices() -> None:
    span = (minute(MONDAY), minute(MONDAY) + 59)
    a, b = MarketModel(FX, SEED).m1(*span), MarketModel(FX, SEED + 1).m1(*span)
    assert not np.array_equal(a["close"], b["close"])


def test_symbol_name_changes_the_path_for_the_same_parameters() -> None:
    twin = dataclasses.replace(FX, name="EURUSD.m")
    span = (minute(MONDAY), minute(MONDAY) + 59)
    a, b = MarketModel(FX, SEED).m1(*span), MarketModel(twin, SEED).m1(*span)
    assert not np.allclose(np.diff(np.log(a["close"])), np.diff(np.log(b["close"])))


@settings(derandomize=True, max_examples=25, deadline=None)
@given(
    offset=st.integers(min_value=0, max_value=60 * 1440),
    length=st.integers(min_value=0, max_value=30 * 1440),
)
def test_a_minute_has_the_same_bar_whichever_range_asks_for_it(offset: int, length: int) -> None:
    # The reference spans 90 days (12 cached chunks of days); sub-ranges start or end inside
    # chunks, from a fresh model each time.
    first = minute(utc(2023, 1, 2))
    reference = MarketModel(FX, SEED).m1(first, first + 90 * 1440)
    part = MarketModel(FX, SEED).m1(first + offset, first + offset + length)
    lo = np.searchsorted(reference["time"], (first + offset) * 60)
    assert np.array_equal(part, reference[lo : lo + len(part)])
    assert len(part) == np.count_nonzero(
        (reference["time"] >= (first + offset) * 60)
        & (reference["time"] <= (first + offset + length) * 60)
    )


@settings(derandomize=True, max_examples=20, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=86_400_000 - 1),
    width=st.integers(min_value=0, max_value=3_600_000),
)
def test_a_tick_is_the_same_whichever_range_asks_for_it(start: int, width: int) -> None:
    everything = day_ticks(MarketModel(CRYPTO, SEED), SATURDAY)
    lo = SATURDAY * 1000 + start
    part = MarketModel(CRYPTO, SEED).ticks_range(lo, lo + width, LATER_MSC, c.COPY_TICKS_ALL)
    inside = everything[(everything["time_msc"] >= lo) & (everything["time_msc"] <= lo + width)]
    assert np.array_equal(part, inside)


# =============================================================================== M1 bars
@pytest.mark.parametrize("name", list(SPECS))
def test_bars_are_exactly_the_packed_rates_dtype(name: str) -> None:
    bars = MarketModel(SPECS[name], SEED).rates_range(
        c.TIMEFRAME_M1, MONDAY, MONDAY + 86_400, LATER_MSC
    )
    assert bars.dtype == RATES_DTYPE
    assert bars.dtype.itemsize == 60
    assert len(bars) > 0


@settings(derandomize=True, max_examples=30, deadline=None)
@given(
    name=st.sampled_from(list(SPECS)),
    seed=st.integers(min_value=0, max_value=2**32),
    day=st.integers(min_value=utc(2017, 1, 2) // 86_400, max_value=utc(2037, 12, 31) // 86_400),
)
def test_bars_are_positive_rounded_and_enclose_open_and_close(
    name: str, seed: int, day: int
) -> None:
    spec = SPECS[name]
    bars = MarketModel(spec, seed).m1(day * 1440, day * 1440 + 2 * 1440 - 1)
    for field in ("open", "high", "low", "close"):
        assert (bars[field] > 0).all()
        assert np.array_equal(np.round(bars[field], spec.digits), bars[field])
    assert (bars["high"] >= np.maximum(bars["open"], bars["close"])).all()
    assert (bars["low"] <= np.minimum(bars["open"], bars["close"])).all()
    assert (bars["tick_volume"] >= 4).all()


def test_m1_open_is_the_previous_close_inside_a_session(fx: MarketModel) -> None:
    bars = fx.m1(minute(MONDAY), minute(MONDAY) + 5 * 1440 - 1)
    assert np.array_equal(bars["open"][1:], bars["close"][:-1])


def test_monday_opens_with_a_gap_from_friday_close_in_most_weeks(fx: MarketModel) -> None:
    gaps = 0
    for week in range(20):
        monday = MONDAY + week * 7 * 86_400
        friday_close = fx.m1(minute(monday - 2 * 86_400 - 60), minute(monday - 2 * 86_400 - 60))
        monday_open = fx.m1(minute(monday), minute(monday))
        gaps += friday_close["close"][0] != monday_open["open"][0]
    assert gaps >= 18


def test_fx_spread_and_tick_volume_vary_around_the_spec(fx: MarketModel) -> None:
    bars = fx.m1(minute(MONDAY), minute(MONDAY) + 5 * 1440 - 1)
    assert 0.5 * FX.spread <= bars["spread"].mean() <= 1.5 * FX.spread
    assert len(np.unique(bars["spread"])) > 3
    assert 0.5 * FX.ticks_per_minute <= bars["tick_volume"].mean() <= 1.5 * FX.ticks_per_minute
    assert (bars["real_volume"] == 0).all()


def test_exchange_instrument_bars_carry_real_volume() -> None:
    bars = MarketModel(STOCK, SEED).m1(minute(MONDAY), minute(MONDAY) + 1439)
    assert (bars["real_volume"] >= bars["tick_volume"]).all()


def test_yearly_volatility_of_daily_closes_is_near_the_spec(fx: MarketModel) -> None:
    days = fx.rates_range(c.TIMEFRAME_D1, utc(2005, 1, 1), utc(2025, 1, 1), LATER_MSC)
    returns = np.diff(np.log(days["close"]))
    annual = returns.std() * np.sqrt(len(days) / 20)
    assert 0.6 * FX.volatility <= annual <= 1.4 * FX.volatility


@pytest.mark.parametrize("name", list(SPECS))
def test_prices_stay_near_the_base_price_for_decades(name: str) -> None:
    spec = SPECS[name]
    model = MarketModel(spec, SEED)
    days = model.rates_range(c.TIMEFRAME_D1, model.history_start, utc(2037, 12, 31), LATER_MSC)
    assert spec.base_price / 5 < days["low"].min()
    assert days["high"].max() < spec.base_price * 5


# =============================================================================== trading hours
def test_fx_has_no_bars_at_the_weekend_and_crypto_has_every_minute(fx: MarketModel) -> None:
    weekend = (minute(SATURDAY), minute(MONDAY) - 1)
    assert len(fx.m1(*weekend)) == 0
    assert len(MarketModel(CRYPTO, SEED).m1(*weekend)) == 2 * 1440
    assert not fx.is_open(SATURDAY + 3600)
    assert fx.is_open(MONDAY + 3600)
    assert MarketModel(CRYPTO, SEED).is_open(SATURDAY + 3600)


def test_session_instruments_have_bars_only_inside_their_hours() -> None:
    stock = MarketModel(STOCK, SEED).m1(minute(MONDAY), minute(MONDAY) + 1439)
    minute_of_day = stock["time"] % 86_400 // 60
    assert len(stock) == 390
    assert minute_of_day.min() == 14 * 60 + 30
    assert minute_of_day.max() == 21 * 60 - 1
    gold = MarketModel(GOLD, SEED).m1(minute(MONDAY), minute(MONDAY) + 1439)
    assert len(gold) == 1380
    assert (gold["time"] % 86_400 < 23 * 3600).all()


def test_history_starts_in_2000_for_fx_and_2017_for_crypto() -> None:
    fx, crypto = MarketModel(FX, SEED), MarketModel(CRYPTO, SEED)
    assert fx.history_start == HISTORY_START_DEFAULT == utc(2000, 1, 3)
    assert crypto.history_start == HISTORY_START_24_7 == utc(2017, 1, 1)
    bars = fx.rates_range(c.TIMEFRAME_M1, utc(1999, 12, 1), utc(2000, 1, 3, 0, 5), LATER_MSC)
    assert bars["time"][0] == fx.history_start
    assert len(bars) == 6
    assert (
        len(crypto.rates_range(c.TIMEFRAME_H1, utc(2010, 1, 1), utc(2016, 12, 31), LATER_MSC)) == 0
    )


def test_history_start_moves_to_the_first_open_minute() -> None:
    model = MarketModel(STOCK, SEED, history_start=SATURDAY)
    assert model.history_start == MONDAY + (14 * 60 + 30) * 60
    assert model.last_tick(model.history_start * 1000 - 1) is None


# =============================================================================== higher timeframes
def independent_period_start(timeframe: int, times: np.ndarray) -> np.ndarray:
    if timeframe == c.TIMEFRAME_MN1:
        return np.array(
            [utc(d.year, d.month, 1) for d in (datetime.fromtimestamp(t, UTC) for t in times)]
        )
    if timeframe == c.TIMEFRAME_W1:
        weekday_from_sunday = np.array(
            [(datetime.fromtimestamp(t, UTC).weekday() + 1) % 7 for t in times]
        )
        return times - times % 86_400 - weekday_from_sunday * 86_400
    seconds = {c.TIMEFRAME_M5: 300, c.TIMEFRAME_M15: 900, c.TIMEFRAME_H1: 3600}
    seconds |= {c.TIMEFRAME_H4: 4 * 3600, c.TIMEFRAME_H12: 12 * 3600, c.TIMEFRAME_D1: 86_400}
    return times - times % seconds[timeframe]


def aggregate_by_hand(m1: np.ndarray, timeframe: int) -> np.ndarray:
    keys = independent_period_start(timeframe, m1["time"])
    rows = []
    for key in np.unique(keys):
        group = m1[keys == key]
        rows.append(
            (
                key, group["open"][0], group["high"].max(), group["low"].min(),
                group["close"][-1], group["tick_volume"].sum(), group["spread"].min(),
                group["real_volume"].sum(),
            )
        )  # fmt: skip
    return np.array(rows, dtype=RATES_DTYPE)


@pytest.mark.parametrize(
    "timeframe",
    [c.TIMEFRAME_M5, c.TIMEFRAME_M15, c.TIMEFRAME_H1, c.TIMEFRAME_H4, c.TIMEFRAME_H12,
     c.TIMEFRAME_D1, c.TIMEFRAME_W1, c.TIMEFRAME_MN1],
)  # fmt: skip
@pytest.mark.parametrize("name", ["EURUSD", "AAPL"])
def test_higher_timeframes_aggregate_m1_exactly(name: str, timeframe: int) -> None:
    model = MarketModel(SPECS[name], SEED)
    first, last = utc(2024, 1, 1), utc(2024, 4, 1) - 1
    bars = model.rates_range(timeframe, first, last, LATER_MSC)
    # A bar opening in the range holds its whole period, even past `last`.
    m1 = model.rates_range(c.TIMEFRAME_M1, first - 7 * 86_400, last + 7 * 86_400, LATER_MSC)
    expected = aggregate_by_hand(m1, timeframe)
    expected = expected[(expected["time"] >= first) & (expected["time"] <= last)]
    assert len(bars) > 1
    assert np.array_equal(bars, expected)


def test_weekly_bars_open_on_sunday_even_when_trading_starts_monday(fx: MarketModel) -> None:
    weeks = fx.rates_range(c.TIMEFRAME_W1, utc(2024, 1, 1), utc(2024, 6, 1), LATER_MSC)
    assert all(
        datetime.fromtimestamp(t, UTC).strftime("%a %H:%M") == "Sun 00:00" for t in weeks["time"]
    )


def test_a_range_starting_inside_a_period_excludes_that_period(fx: MarketModel) -> None:
    bars = fx.rates_range(c.TIMEFRAME_H1, MONDAY + 1800, MONDAY + 3 * 3600, LATER_MSC)
    assert list(bars["time"]) == [MONDAY + 3600, MONDAY + 7200, MONDAY + 10_800]


def test_unknown_timeframe_is_a_clear_error(fx: MarketModel) -> None:
    with pytest.raises(ValueError, match="unknown timeframe 7"):
        fx.rates_range(7, MONDAY, MONDAY + 3600, LATER_MSC)


# =============================================================================== ticks
@pytest.mark.parametrize("name", list(SPECS))
def test_ticks_reproduce_their_m1_bar(name: str) -> None:
    spec = SPECS[name]
    model = MarketModel(spec, SEED)
    bars = model.m1(minute(MONDAY), minute(MONDAY) + 1439)
    ticks = day_ticks(model, MONDAY)
    assert ticks.dtype == TICKS_DTYPE
    assert ticks.dtype.itemsize == 60
    price = ticks["last"] if spec.has_last else ticks["bid"]
    keys, starts, counts = np.unique(
        ticks["time_msc"] // 60_000, return_index=True, return_counts=True
    )
    assert np.array_equal(keys * 60, bars["time"])
    assert np.array_equal(counts, bars["tick_volume"])
    assert np.array_equal(price[starts], bars["open"])
    assert np.array_equal(price[starts + counts - 1], bars["close"])
    assert np.array_equal(np.maximum.reduceat(price, starts), bars["high"])
    assert np.array_equal(np.minimum.reduceat(price, starts), bars["low"])
    spread = np.rint((ticks["ask"] - ticks["bid"]) * 10**spec.digits).astype(np.int64)
    assert np.array_equal(np.minimum.reduceat(spread, starts), bars["spread"])
    assert np.array_equal(
        np.add.reduceat(ticks["volume"].astype(np.int64), starts), bars["real_volume"]
    )


@pytest.mark.parametrize("name", list(SPECS))
def test_tick_times_strictly_increase_and_match_seconds(name: str) -> None:
    ticks = day_ticks(MarketModel(SPECS[name], SEED), MONDAY)
    assert (np.diff(ticks["time_msc"]) > 0).all()
    assert np.array_equal(ticks["time"], ticks["time_msc"] // 1000)
    assert (ticks["ask"] >= ticks["bid"]).all()
    assert (ticks["bid"] > 0).all()


def test_every_fx_tick_changes_bid_or_ask_and_says_which(fx: MarketModel) -> None:
    ticks = day_ticks(fx, MONDAY)
    later = ticks[1:]
    bid_changed = later["bid"] != ticks["bid"][:-1]
    ask_changed = later["ask"] != ticks["ask"][:-1]
    assert (bid_changed | ask_changed).all()
    session_open = (later["flags"] & 0x80) != 0
    documented = later["flags"] & ~np.uint32(0x80)
    expected = c.TICK_FLAG_BID * bid_changed + c.TICK_FLAG_ASK * ask_changed
    assert np.array_equal(documented[~session_open], expected[~session_open])
    assert ticks["flags"][0] == 134  # the first tick of the week: 0x80 | BID | ASK
    assert {130, 134} <= set(ticks["flags"].tolist())
    assert (ticks["last"] == 0).all()
    assert (ticks["volume"] == 0).all()


def test_exchange_trade_ticks_carry_last_volume_and_side() -> None:
    ticks = day_ticks(MarketModel(STOCK, SEED), MONDAY)
    trades = ticks[(ticks["flags"] & c.TICK_FLAG_VOLUME) != 0]
    assert len(trades) > len(ticks) // 3
    assert (trades["volume"] >= 1).all()
    assert np.array_equal(trades["volume_real"], trades["volume"].astype(np.float64))
    sides = trades["flags"] & (c.TICK_FLAG_BUY | c.TICK_FLAG_SELL)
    assert set(sides.tolist()) == {c.TICK_FLAG_BUY, c.TICK_FLAG_SELL}
    quotes = ticks[(ticks["flags"] & c.TICK_FLAG_VOLUME) == 0]
    assert (quotes["volume"] == 0).all()
    changed = np.flatnonzero(ticks["last"][1:] != ticks["last"][:-1]) + 1
    assert ((ticks["flags"][changed] & c.TICK_FLAG_LAST) != 0).all()
    assert (ticks["bid"] <= ticks["last"]).all()


@pytest.mark.parametrize("name", ["EURUSD", "AAPL"])
def test_copy_flags_select_info_and_trade_ticks(name: str) -> None:
    model = MarketModel(SPECS[name], SEED)
    span = (MONDAY * 1000, MONDAY * 1000 + 86_399_999, LATER_MSC)
    every = model.ticks_range(*span, c.COPY_TICKS_ALL)
    info = model.ticks_range(*span, c.COPY_TICKS_INFO)
    trade = model.ticks_range(*span, c.COPY_TICKS_TRADE)
    info_mask = (every["flags"] & (c.TICK_FLAG_BID | c.TICK_FLAG_ASK)) != 0
    trade_mask = (every["flags"] & (c.TICK_FLAG_LAST | c.TICK_FLAG_VOLUME)) != 0
    assert np.array_equal(info, every[info_mask])
    assert np.array_equal(trade, every[trade_mask])
    assert (info_mask | trade_mask).all()
    if SPECS[name].has_last:
        assert 0 < len(trade) < len(every)
    else:
        assert len(trade) == 0
        assert len(info) == len(every)


def test_unknown_copy_flags_are_a_clear_error(fx: MarketModel) -> None:
    with pytest.raises(ValueError, match="COPY_TICKS_ALL"):
        fx.ticks_range(MONDAY * 1000, MONDAY * 1000 + 1000, LATER_MSC, 0)


def test_ticks_from_returns_count_ticks_from_the_start_across_the_weekend(fx: MarketModel) -> None:
    friday_evening = (MONDAY - 2 * 86_400 - 60) * 1000
    ticks = fx.ticks_from(friday_evening, 200, LATER_MSC, c.COPY_TICKS_ALL)
    assert len(ticks) == 200
    assert ticks["time_msc"][0] >= friday_evening
    assert ticks["time_msc"][-1] >= MONDAY * 1000  # the last minute of Friday has < 200 ticks
    assert (np.diff(ticks["time_msc"]) > 0).all()


def test_ticks_from_stops_at_now(fx: MarketModel) -> None:
    now = MONDAY * 1000 + 90_000
    ticks = fx.ticks_from(MONDAY * 1000, 10_000, now, c.COPY_TICKS_ALL)
    assert 0 < len(ticks) < 10_000
    assert ticks["time_msc"][-1] <= now
    assert np.array_equal(ticks, fx.ticks_range(MONDAY * 1000, now, LATER_MSC, -1))


# =============================================================================== "now"
def test_nothing_after_now_and_the_forming_bar_closes_at_the_last_tick(fx: MarketModel) -> None:
    now = (MONDAY + 10 * 3600 + 17 * 60) * 1000 + 31_234
    tick = fx.last_tick(now)
    assert tick is not None
    for timeframe in (c.TIMEFRAME_M1, c.TIMEFRAME_M15, c.TIMEFRAME_H1, c.TIMEFRAME_D1):
        bars = fx.rates_range(timeframe, MONDAY, MONDAY + 86_400, now)
        assert bars["time"][-1] <= now // 1000
        assert bars["close"][-1] == tick[1]
    ticks = fx.ticks_range(MONDAY * 1000, MONDAY * 1000 + 86_399_999, now, -1)
    assert ticks["time_msc"][-1] == tick[5] <= now


def test_forming_bar_counts_only_the_ticks_so_far(fx: MarketModel) -> None:
    start = MONDAY + 10 * 3600 + 17 * 60
    complete = fx.m1(minute(start), minute(start))
    ticks = fx.ticks_range(start * 1000, start * 1000 + 59_999, LATER_MSC, -1)
    middle = int(ticks["time_msc"][len(ticks) // 2])
    forming = fx.rates_range(c.TIMEFRAME_M1, start, start, middle)
    so_far = ticks[ticks["time_msc"] <= middle]
    assert forming["tick_volume"][0] == len(so_far) < complete["tick_volume"][0]
    assert forming["open"][0] == complete["open"][0]
    assert forming["high"][0] == so_far["bid"].max()
    assert forming["low"][0] == so_far["bid"].min()
    assert forming["close"][0] == so_far["bid"][-1]


def test_the_forming_bar_becomes_the_complete_bar_when_its_minute_ends(fx: MarketModel) -> None:
    start = MONDAY + 10 * 3600 + 17 * 60
    at_end = fx.rates_range(c.TIMEFRAME_M1, start, start, start * 1000 + 59_999)
    after = fx.rates_range(c.TIMEFRAME_M1, start, start, (start + 60) * 1000)
    assert np.array_equal(at_end, after)
    assert np.array_equal(after, fx.m1(minute(start), minute(start)))


def test_a_minute_has_no_bar_before_its_first_tick(fx: MarketModel) -> None:
    start = MONDAY + 10 * 3600 + 17 * 60
    first_tick = int(
        fx.ticks_range(start * 1000, start * 1000 + 59_999, LATER_MSC, -1)[0]["time_msc"]
    )
    assert first_tick > start * 1000
    before = fx.rates_range(c.TIMEFRAME_M1, start - 60, start, first_tick - 1)
    assert list(before["time"]) == [start - 60]
    at = fx.rates_range(c.TIMEFRAME_M1, start - 60, start, first_tick)
    assert at["tick_volume"][-1] == 1
    assert at["open"][-1] == at["close"][-1] == at["high"][-1] == at["low"][-1]


def test_last_tick_searches_back_over_the_weekend(fx: MarketModel) -> None:
    tick = fx.last_tick(SUNDAY * 1000 + 12 * 3_600_000)
    assert tick is not None
    friday_last = day_ticks(fx, FRIDAY)[-1]
    assert tick == tuple(friday_last.item())
    assert [type(v) for v in tick] == [int, float, float, float, int, int, int, float]


def test_last_tick_is_none_before_the_history(fx: MarketModel) -> None:
    assert fx.last_tick(fx.history_start * 1000 - 1) is None
    assert fx.last_tick(utc(1990, 1, 1) * 1000) is None


# =============================================================================== counting back
def test_rates_from_pos_counts_back_from_the_forming_bar_over_the_weekend(fx: MarketModel) -> None:
    now = (MONDAY + 30 * 60) * 1000 + 45_000
    bars = fx.rates_from_pos(c.TIMEFRAME_M1, 0, 100, now)
    assert len(bars) == 100
    assert (np.diff(bars["time"]) > 0).all()
    assert bars["time"][-1] == MONDAY + 30 * 60  # position 0: the forming bar
    assert bars["time"][-32] == SATURDAY - 60  # Friday's last minute, then Monday's 31
    shifted = fx.rates_from_pos(c.TIMEFRAME_M1, 1, 99, now)
    assert np.array_equal(shifted, bars[:-1])


def test_rates_from_pos_while_closed_starts_at_the_last_bar(fx: MarketModel) -> None:
    now = (SUNDAY + 5 * 3600) * 1000
    bars = fx.rates_from_pos(c.TIMEFRAME_H1, 0, 30, now)
    assert len(bars) == 30
    assert bars["time"][-1] == SATURDAY - 3600
    assert bars["time"][0] == SATURDAY - 30 * 3600


def test_rates_from_returns_the_latest_bars_at_or_before_date_from(fx: MarketModel) -> None:
    bars = fx.rates_from(c.TIMEFRAME_M5, SUNDAY + 12 * 3600, 10, LATER_MSC)
    assert list(bars["time"]) == [SATURDAY - 300 * k for k in range(10, 0, -1)]
    inside = fx.rates_from(c.TIMEFRAME_D1, MONDAY + 3600, 3, LATER_MSC)
    assert list(inside["time"]) == [FRIDAY - 86_400, FRIDAY, MONDAY]
    assert (
        inside["tick_volume"][-1]
        == fx.m1(minute(MONDAY), minute(MONDAY) + 1439)["tick_volume"].sum()
    )


def test_rates_from_never_returns_bars_after_now(fx: MarketModel) -> None:
    now = (MONDAY + 3600) * 1000
    bars = fx.rates_from(c.TIMEFRAME_M1, MONDAY + 86_400, 5, now)
    assert bars["time"][-1] <= MONDAY + 3600


def test_counting_back_stops_at_the_history_start() -> None:
    model = MarketModel(FX, SEED)
    bars = model.rates_from(c.TIMEFRAME_D1, utc(2000, 1, 10), 1000, LATER_MSC)
    assert bars["time"][0] == utc(2000, 1, 3)
    assert len(bars) == 6


def test_large_counts_are_served_whole(fx: MarketModel) -> None:
    bars = fx.rates_from_pos(c.TIMEFRAME_M1, 0, 50_000, MONDAY * 1000)
    assert len(bars) == 50_000
    assert (np.diff(bars["time"]) > 0).all()


def test_negative_counts_are_a_clear_error(fx: MarketModel) -> None:
    with pytest.raises(ValueError, match="count must be >= 0"):
        fx.rates_from(c.TIMEFRAME_M1, MONDAY, -1, LATER_MSC)
    with pytest.raises(ValueError, match="start_pos and count must be >= 0"):
        fx.rates_from_pos(c.TIMEFRAME_M1, -1, 5, LATER_MSC)
    with pytest.raises(ValueError, match="count must be >= 0"):
        fx.ticks_from(MONDAY * 1000, -1, LATER_MSC, -1)


def test_a_spec_without_sessions_is_refused() -> None:
    closed = dataclasses.replace(FX, hours=TradingHours(()))
    with pytest.raises(ValueError, match="no session"):
        MarketModel(closed, SEED)


# =============================================================================== history cache
CHUNK_START = utc(2024, 3, 6)  # epoch day 19788 = 8 * 2473: a cached chunk starts here
NOW_MSC = (MONDAY + 10 * 3600 + 30) * 1000 + 500  # 10:00:30.5 on a Monday: a forming bar
RANGES = {
    "straddling a chunk start": (CHUNK_START - 5 * 3600, CHUNK_START + 5 * 3600),
    "over a weekend": (FRIDAY + 20 * 3600, MONDAY + 2 * 3600),
    "at the history start": (utc(1999, 12, 20), utc(2000, 1, 20)),
    "at the 24/7 history start": (utc(2016, 12, 20), utc(2017, 1, 20)),
    "many chunks": (utc(2023, 10, 1, 7, 13), utc(2024, 1, 29, 16, 47)),
    "up to now": (MONDAY - 3 * 86_400, MONDAY + 86_400),
}
ALL_TIMEFRAMES = [c.TIMEFRAME_M1, c.TIMEFRAME_M5, c.TIMEFRAME_H1, c.TIMEFRAME_D1, c.TIMEFRAME_W1]


def uncached(spec: SymbolSpec) -> MarketModel:
    return MarketModel(spec, SEED, history_cache=HistoryCache(0))


def requests(model: MarketModel, timeframe: int) -> list[np.ndarray]:
    """Every kind of bar request over each of RANGES, as of NOW_MSC."""
    results = []
    for first, last in RANGES.values():
        results.append(model.rates_range(timeframe, first, last, NOW_MSC))
        results.append(model.rates_from(timeframe, last, 3000, NOW_MSC))
    results.append(model.rates_from_pos(timeframe, 0, 5000, NOW_MSC))
    results.append(model.rates_from_pos(timeframe, 7, 20, NOW_MSC))
    return results


def assert_owned(rows: np.ndarray) -> None:
    """A new array of its own (not a view of a cache), writable and C-contiguous."""
    assert rows.base is None
    assert rows.flags.writeable
    assert rows.flags.c_contiguous


def assert_same_bytes(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.dtype == want.dtype == RATES_DTYPE
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("timeframe", ALL_TIMEFRAMES)
@pytest.mark.parametrize("name", list(SPECS))
def test_cached_bars_are_byte_identical_to_uncached_ones(name: str, timeframe: int) -> None:
    cached = MarketModel(SPECS[name], SEED)
    first_time = requests(cached, timeframe)
    assert_same_bytes(first_time, requests(uncached(SPECS[name]), timeframe))
    assert_same_bytes(requests(cached, timeframe), first_time)  # now served from the cache


# One model for all examples, with a budget small enough that they also evict each other.
WARM = MarketModel(GOLD, SEED, history_cache=HistoryCache(2 << 20))


@settings(derandomize=True, max_examples=30, deadline=None)
@given(
    offset=st.integers(min_value=0, max_value=400 * 1440),
    length=st.integers(min_value=0, max_value=25 * 1440),
)
def test_a_warm_cache_gives_what_a_cold_model_gives(offset: int, length: int) -> None:
    first = minute(utc(2023, 1, 1)) + offset
    expected = uncached(GOLD).m1(first, first + length)
    assert WARM.m1(first, first + length).tobytes() == expected.tobytes()


def test_bars_do_not_depend_on_what_was_asked_before() -> None:
    a = (utc(2024, 2, 1, 12), utc(2024, 2, 20, 3))
    alone = MarketModel(FX, SEED).rates_range(c.TIMEFRAME_M1, *a, LATER_MSC)
    model = MarketModel(FX, SEED)
    model.rates_range(c.TIMEFRAME_M1, utc(2024, 2, 10), utc(2024, 3, 10), LATER_MSC)  # B
    model.rates_from_pos(c.TIMEFRAME_H1, 0, 500, a[1] * 1000)
    assert model.rates_range(c.TIMEFRAME_M1, *a, LATER_MSC).tobytes() == alone.tobytes()


def test_markets_sharing_a_history_cache_keep_their_own_bars() -> None:
    shared = HistoryCache()
    span = (utc(2024, 2, 1), utc(2024, 2, 10))
    variants = [{"seed": SEED}, {"seed": SEED + 1}, {"seed": SEED, "history_start": span[0] + 1}]
    pairs = [(MarketModel(FX, history_cache=shared, **v), v) for v in variants]
    for model, variant in pairs + pairs[::-1]:  # each asks after the others have filled the cache
        alone = MarketModel(FX, history_cache=HistoryCache(0), **variant)
        expected = alone.rates_range(c.TIMEFRAME_M1, *span, LATER_MSC)
        assert model.rates_range(c.TIMEFRAME_M1, *span, LATER_MSC).tobytes() == expected.tobytes()


def test_the_history_cache_stays_within_its_budget() -> None:
    cache = HistoryCache(3 << 20)
    model = MarketModel(CRYPTO, SEED, history_cache=cache)
    for month in range(1, 13):
        for day in (1, 9, 20):
            model.rates_range(
                c.TIMEFRAME_M1, utc(2023, month, day), utc(2023, month, day + 5), LATER_MSC
            )
            assert 0 < cache.nbytes <= cache.max_bytes
    wider = model.rates_range(c.TIMEFRAME_M1, utc(2022, 1, 1), utc(2022, 3, 1), LATER_MSC)
    assert len(wider) == 59 * 1440 + 1  # served whole, though it could not be kept
    assert cache.nbytes <= cache.max_bytes


def test_daily_history_does_not_flush_the_history_cache() -> None:
    cache = HistoryCache()
    model = MarketModel(FX, SEED, history_cache=cache)
    model.rates_from_pos(c.TIMEFRAME_M1, 0, 1000, LATER_MSC)
    kept = cache.nbytes
    daily = model.rates_range(c.TIMEFRAME_D1, utc(2010, 1, 1), utc(2020, 1, 1), LATER_MSC)
    assert len(daily) > 2500
    assert cache.nbytes == kept


def test_a_negative_history_cache_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="budget must be >= 0"):
        HistoryCache(-1)


@pytest.mark.parametrize("timeframe", [c.TIMEFRAME_M1, c.TIMEFRAME_H1, c.TIMEFRAME_D1])
def test_repeated_requests_return_independent_writable_arrays(timeframe: int) -> None:
    model = MarketModel(FX, SEED)
    calls = [
        lambda: model.rates_from_pos(timeframe, 0, 2000, NOW_MSC),
        lambda: model.rates_from(timeframe, MONDAY, 2000, NOW_MSC),
        lambda: model.rates_range(timeframe, utc(2024, 1, 1), MONDAY + 86_400, NOW_MSC),
        lambda: model.m1(minute(utc(2024, 1, 1)), minute(MONDAY)),
    ]
    for call in calls:
        first = call()
        expected = first.copy()
        assert_owned(first)
        for name in RATES_DTYPE.names or ():
            first[name] = 0
        again = call()
        assert_owned(again)
        assert again.tobytes() == expected.tobytes()


TERMINAL_CALLS = {
    "copy_rates_from_pos": (0, 100),
    "copy_rates_from": (MONDAY, 100),
    "copy_rates_range": (FRIDAY, MONDAY),
}


@pytest.mark.parametrize("function", list(TERMINAL_CALLS))
def test_terminal_rates_are_arrays_the_caller_owns(function: str) -> None:
    terminal = SimTerminal(SEED, clock=SimClock.fixed(NOW_MSC / 1000))
    assert terminal.initialize()

    def call() -> np.ndarray:
        rows: np.ndarray = getattr(terminal, function)(
            "EURUSD", c.TIMEFRAME_M1, *TERMINAL_CALLS[function]
        )
        return rows

    first = call()
    expected = first.copy()
    assert len(first) >= 100
    assert_owned(first)
    first["close"] = -1.0
    assert call().tobytes() == expected.tobytes()
