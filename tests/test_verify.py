"""The data verifier: clean simulator series pass, injected defects are found, diffs are exact."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from aiomt5._connector import AsyncMT5Connector
from aiomt5._core._errors import MT5InvalidArgumentError
from aiomt5._market._history import fetch_rates
from aiomt5._market._store import HistoryStore
from aiomt5._market._timeframe import Timeframe
from aiomt5._market._verify import TradingSessions, compare_rates, verify_rates
from aiomt5._settings import MT5Settings
from aiomt5.sim import CATALOGUE, DEFAULT_SERVER, RATES_DTYPE, SimClock, SimTerminal

NOW = "2026-03-02T10:00:00Z"
FROM = int(datetime(2026, 2, 2, tzinfo=UTC).timestamp())
TO = int(datetime(2026, 2, 27, 23, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def term() -> SimTerminal:
    terminal = SimTerminal(seed=9, clock=SimClock.fixed(NOW), maxbars=10**7)
    terminal.initialize()
    for name in ("US500", "BTCUSD"):
        terminal.symbol_select(name, True)
    return terminal


def bars(
    term: SimTerminal, symbol: str, timeframe: int, start: int = FROM, end: int = TO
) -> npt.NDArray[np.void]:
    rates: npt.NDArray[np.void] = term.copy_rates_range(symbol, timeframe, start, end).copy()
    return rates


def sessions_of(symbol: str) -> TradingSessions:
    spec = next(s for s in CATALOGUE if s.name == symbol)
    return TradingSessions.from_hours(spec.hours)


# --------------------------------------------------------------------------- clean series


@pytest.mark.parametrize("timeframe", ["M1", "M15", "H1", "H4", "D1", "W1"])
def test_clean_fx_series_across_weekends_is_ok(term: SimTerminal, timeframe: str) -> None:
    rates = bars(term, "EURUSD", int(Timeframe.parse(timeframe)))
    report = verify_rates(rates, timeframe)
    assert report.ok, report.summary()
    assert report.bars == len(rates)
    assert (report.first, report.last) == (int(rates["time"][0]), int(rates["time"][-1]))


def test_clean_monthly_series_is_ok(term: SimTerminal) -> None:
    rates = bars(term, "EURUSD", Timeframe.MN1, 946684800, TO)
    assert verify_rates(rates, "MN1").ok


def test_daily_halts_are_gaps_unless_the_sessions_say_closed(term: SimTerminal) -> None:
    rates = bars(term, "US500", Timeframe.H1)
    assert verify_rates(rates, "H1", sessions=sessions_of("US500")).ok
    # Monday-Friday all day: each 22:00 halt looks like one missing bar, and Friday's early
    # close (22:00) two.
    naive = verify_rates(rates, "H1")
    assert naive.gap_count == 19
    assert {gap.missing_bars for gap in naive.gaps} == {1, 2}
    assert verify_rates(rates, "H1", gap_tolerance=2).ok


def test_weekend_bars_of_crypto_are_not_gaps(term: SimTerminal) -> None:
    rates = bars(term, "BTCUSD", Timeframe.H1)
    assert verify_rates(rates, "H1").ok
    assert verify_rates(rates, "H1", sessions=TradingSessions.always()).ok


# --------------------------------------------------------------------------- injected defects


def test_removed_bars_are_a_gap_of_that_many(term: SimTerminal) -> None:
    rates = bars(term, "EURUSD", Timeframe.M5)
    holed = np.delete(rates, np.s_[1000:1030])
    report = verify_rates(holed, "M5")
    assert report.gap_count == 1
    assert report.missing_bars == 30
    gap = report.gaps[0]
    assert (gap.after, gap.before) == (int(rates["time"][999]), int(rates["time"][1030]))
    assert gap.start.tzinfo is UTC


def test_missing_month_is_a_gap(term: SimTerminal) -> None:
    rates = bars(term, "EURUSD", Timeframe.MN1, 946684800, TO)
    report = verify_rates(np.delete(rates, [50, 51]), "MN1")
    assert (report.gap_count, report.missing_bars) == (1, 2)


def test_duplicate_and_out_of_order_bars_are_found(term: SimTerminal) -> None:
    rates = bars(term, "EURUSD", Timeframe.H1)
    doubled = np.insert(rates, 101, rates[100])
    report = verify_rates(doubled, "H1")
    assert report.duplicates.count == 1
    assert report.duplicates.examples[0].index == 101
    assert report.non_monotonic.count == 0
    swapped = rates.copy()
    swapped[[200, 201]] = swapped[[201, 200]]
    report = verify_rates(swapped, "H1")
    assert report.non_monotonic.count == 1
    assert report.non_monotonic.examples[0].index == 201
    assert report.gap_count == 0


def test_bad_ohlc_prices_spreads_and_times_are_found(term: SimTerminal) -> None:
    rates = bars(term, "EURUSD", Timeframe.H1)
    rates["high"][10] = rates["close"][10] - 0.001
    rates["low"][20] = rates["open"][20] + 0.001
    rates["open"][30] = 0.0
    rates["close"][40] = np.nan
    rates["spread"][50] = 10_000
    rates["spread"][60] = -1
    rates["time"][70] += 30
    report = verify_rates(rates, "H1")
    assert not report.ok
    assert [i.index for i in report.ohlc.examples] == [10, 20, 30]
    assert [i.index for i in report.prices.examples] == [30, 40]
    assert [i.index for i in report.spreads.examples] == [50, 60]
    assert [i.index for i in report.misaligned.examples] == [70]
    assert "spreads: 2" in report.summary()


def test_examples_are_capped_but_all_counted(term: SimTerminal) -> None:
    rates = bars(term, "EURUSD", Timeframe.M15)
    rates["open"][:500] = -1.0
    report = verify_rates(rates, "M15", limit=5)
    assert report.prices.count == 500
    assert len(report.prices.examples) == 5


def test_report_is_frozen(term: SimTerminal) -> None:
    report = verify_rates(bars(term, "EURUSD", Timeframe.D1), "D1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.bars = 0  # type: ignore[misc]


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(MT5InvalidArgumentError, match="rates array"):
        verify_rates(np.zeros(3), "H1")
    with pytest.raises(MT5InvalidArgumentError, match="session"):
        TradingSessions(((7, 0, 60),))
    with pytest.raises(MT5InvalidArgumentError, match="gap_tolerance"):
        verify_rates(np.zeros(0, dtype=RATES_DTYPE), "H1", gap_tolerance=-1)


# --------------------------------------------------------------------------- compare


def test_compare_reports_changed_missing_and_extra_bars(term: SimTerminal) -> None:
    fresh = bars(term, "EURUSD", Timeframe.H1)
    stored = fresh.copy()
    stored["close"][5] += 0.01
    stored = np.delete(stored, 8)
    extra = stored[9:10].copy()
    extra["time"] += 1800
    stored = np.sort(np.concatenate([stored, extra]), order="time")
    report = compare_rates(stored, fresh)
    assert report.changed == (int(fresh["time"][5]),)
    assert report.only_fresh == (int(fresh["time"][8]),)
    assert report.only_stored == (int(extra["time"][0]),)
    assert report.matching == len(fresh) - 2
    assert not report.ok


def test_compare_only_judges_the_overlap(term: SimTerminal) -> None:
    fresh = bars(term, "EURUSD", Timeframe.H1)
    report = compare_rates(fresh[:300], fresh[100:])
    assert report.ok
    assert report.matching == 200
    assert compare_rates(fresh[:10], fresh[20:]).overlap is None


async def test_stored_series_matches_a_fresh_download(tmp_path: Path) -> None:
    live = SimTerminal(seed=9, clock=SimClock.fixed(NOW), maxbars=2000)
    settings = MT5Settings(_env_file=None, backend="sim", testing=True)
    start = datetime(2026, 2, 16, tzinfo=UTC)
    async with AsyncMT5Connector(settings, backend=live) as mt5:
        store = HistoryStore(tmp_path)
        await store.update(mt5, "EURUSD", "M5", start=start)
        stored = store.read(DEFAULT_SERVER, "EURUSD", "M5")
        fresh = await fetch_rates(mt5, "EURUSD", "M5", start)
    assert verify_rates(stored, "M5").ok
    report = compare_rates(stored, fresh)
    assert report.ok
    assert report.matching == len(fresh)


def test_empty_series_is_ok() -> None:
    report = verify_rates(np.zeros(0, dtype=RATES_DTYPE), "M1")
    assert report.ok
    assert (report.bars, report.first, report.last) == (0, None, None)
