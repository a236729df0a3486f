"""Paged history (fetch_rates / fetch_ticks) on the simulator: seams, forms, symbols, progress."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiomt5._connector import AsyncMT5Connector
from aiomt5._core._errors import MT5CallError, MT5InvalidArgumentError, MT5SymbolNotFoundError
from aiomt5._market._history import (
    FetchProgress,
    fetch_rates,
    fetch_ticks,
    tick_flags,
)
from aiomt5._market._timeframe import Timeframe
from aiomt5._mt5.dtypes import RATES_DTYPE, TICKS_DTYPE
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal

NOW = "2026-03-02T10:00:00Z"
MAXBARS = 1000
# Monday 2026-02-23 00:00 UTC: FX trades all day, every minute has a bar in the simulator.
MONDAY = datetime(2026, 2, 23, tzinfo=UTC)


def ts(when: datetime) -> int:
    return int(when.timestamp())


@pytest.fixture
def term() -> SimTerminal:
    return SimTerminal(seed=7, clock=SimClock.fixed(NOW), maxbars=MAXBARS)


@pytest.fixture
def oracle() -> SimTerminal:
    """The same market with a huge maxbars: answers every request in one call."""
    reference = SimTerminal(seed=7, clock=SimClock.fixed(NOW), maxbars=10_000_000)
    reference.initialize()
    for name in ("EURUSD", "AUDNZD", "BTCUSD"):
        reference.symbol_select(name, True)
    return reference


@pytest.fixture
async def mt5(term: SimTerminal) -> AsyncIterator[AsyncMT5Connector]:
    settings = MT5Settings(_env_file=None, backend="sim", testing=True, call_timeout=10.0)
    async with AsyncMT5Connector(settings, backend=term) as connector:
        yield connector


def assert_clean_seams(rows: npt.NDArray[np.void], column: str = "time") -> None:
    times = rows[column]
    assert np.all(np.diff(times) > 0), "times must strictly increase (no duplicate, no disorder)"


# --------------------------------------------------------------------------- bars by range


@pytest.mark.parametrize("bars", [MAXBARS - 1, MAXBARS, MAXBARS + 1, 3 * MAXBARS])
async def test_range_with_bars_around_maxbars_matches_one_unlimited_call(
    mt5: AsyncMT5Connector, oracle: SimTerminal, bars: int
) -> None:
    end = MONDAY + timedelta(minutes=bars - 1)
    got = await fetch_rates(mt5, "EURUSD", "M1", MONDAY, end)
    want = oracle.copy_rates_range("EURUSD", 1, ts(MONDAY), ts(end))
    assert len(want) == bars
    assert got.dtype == want.dtype
    assert np.array_equal(got, want)
    assert_clean_seams(got)


async def test_range_of_exactly_maxbars_bars_takes_two_pages(mt5: AsyncMT5Connector) -> None:
    pages: list[FetchProgress] = []
    end = MONDAY + timedelta(minutes=MAXBARS - 1)
    got = await fetch_rates(mt5, "EURUSD", "M1", MONDAY, end, progress=pages.append)
    assert len(got) == MAXBARS
    assert [p.rows for p in pages] == [MAXBARS - 1, MAXBARS]


async def test_range_of_maxbars_minus_one_bars_takes_one_page(mt5: AsyncMT5Connector) -> None:
    pages: list[FetchProgress] = []
    end = MONDAY + timedelta(minutes=MAXBARS - 2)
    await fetch_rates(mt5, "EURUSD", "M1", MONDAY, end, progress=pages.append)
    assert len(pages) == 1


async def test_range_across_weekend_matches_one_unlimited_call(
    mt5: AsyncMT5Connector, oracle: SimTerminal
) -> None:
    start = datetime(2026, 2, 12, tzinfo=UTC)
    end = datetime(2026, 2, 24, tzinfo=UTC)
    got = await fetch_rates(mt5, "EURUSD", "M5", start, end)
    assert np.array_equal(got, oracle.copy_rates_range("EURUSD", 5, ts(start), ts(end)))


async def test_range_without_date_to_runs_up_to_now(
    mt5: AsyncMT5Connector, oracle: SimTerminal
) -> None:
    start = datetime(2026, 2, 26, tzinfo=UTC)
    got = await fetch_rates(mt5, "EURUSD", "M1", start)
    want = oracle.copy_rates_range("EURUSD", 1, ts(start), ts(datetime(2026, 3, 3, tzinfo=UTC)))
    assert np.array_equal(got, want)
    assert got["time"][-1] < ts(datetime(2026, 3, 2, 10, tzinfo=UTC))


async def test_range_with_a_smaller_page_size_matches(
    mt5: AsyncMT5Connector, oracle: SimTerminal
) -> None:
    start = datetime(2026, 2, 2, tzinfo=UTC)
    end = datetime(2026, 2, 28, tzinfo=UTC)
    pages: list[FetchProgress] = []
    got = await fetch_rates(mt5, "EURUSD", "H1", start, end, page_size=24, progress=pages.append)
    assert np.array_equal(got, oracle.copy_rates_range("EURUSD", Timeframe.H1, ts(start), ts(end)))
    assert len(pages) > 20


async def test_monthly_range_pages_without_losing_a_month(
    mt5: AsyncMT5Connector, oracle: SimTerminal
) -> None:
    start = datetime(2001, 1, 1, tzinfo=UTC)
    end = datetime(2026, 1, 1, tzinfo=UTC)
    got = await fetch_rates(mt5, "EURUSD", "MN1", start, end, page_size=7)
    want = oracle.copy_rates_range("EURUSD", Timeframe.MN1, ts(start), ts(end))
    assert len(want) == 301
    assert np.array_equal(got, want)


async def test_empty_range_returns_empty_rates_array(mt5: AsyncMT5Connector) -> None:
    saturday = datetime(2026, 2, 28, 3, tzinfo=UTC)
    got = await fetch_rates(mt5, "EURUSD", "M1", saturday, saturday + timedelta(hours=2))
    assert len(got) == 0
    assert got.dtype == RATES_DTYPE


HISTORY_START = datetime(2000, 1, 3, tzinfo=UTC)  # EURUSD's first bar in the simulator


async def test_range_from_before_the_history_returns_the_bars_from_its_start(
    mt5: AsyncMT5Connector, oracle: SimTerminal, term: SimTerminal
) -> None:
    # The terminal refuses pages entirely before the first bar (-1); they hold no bars.
    end = datetime(2000, 2, 1, tzinfo=UTC)
    got = await fetch_rates(mt5, "EURUSD", "H1", datetime(1999, 6, 1, tzinfo=UTC), end)
    want = oracle.copy_rates_range("EURUSD", Timeframe.H1, ts(HISTORY_START), ts(end))
    assert got["time"][0] == ts(HISTORY_START)
    assert np.array_equal(got, want)
    assert (
        term.copy_rates_range("EURUSD", Timeframe.H1, datetime(1999, 6, 1, tzinfo=UTC), end) is None
    )


async def test_range_entirely_before_the_history_says_so(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5CallError, match="outside the server's history") as raised:
        await fetch_rates(
            mt5, "EURUSD", "H1", datetime(1990, 1, 1, tzinfo=UTC), datetime(1995, 1, 1, tzinfo=UTC)
        )
    assert raised.value.code == -1


async def test_range_entirely_in_the_future_fails_as_the_terminal_does(
    mt5: AsyncMT5Connector,
) -> None:
    # MT5 fails a request entirely outside the server's data (-1), the future included.
    later = datetime(2026, 3, 2, 11, tzinfo=UTC)  # an hour after the terminal's clock
    for fetch, args in (
        (fetch_rates, ("EURUSD", "M1", later, later + timedelta(hours=1))),
        (fetch_ticks, ("EURUSD", later, later + timedelta(hours=1))),
    ):
        with pytest.raises(MT5CallError, match="entirely in the future") as raised:
            await fetch(mt5, *args)  # type: ignore[operator]
        assert raised.value.code == -1


async def test_open_ended_request_from_the_future_is_empty_not_an_error(
    mt5: AsyncMT5Connector,
) -> None:
    # "From my last bar up to now", with nothing new yet: no rows, as an incremental update wants.
    later = datetime(2026, 3, 2, 11, tzinfo=UTC)
    assert len(await fetch_rates(mt5, "EURUSD", "M1", later)) == 0
    assert len(await fetch_ticks(mt5, "EURUSD", later)) == 0


# --------------------------------------------------------------------------- bars by count


@pytest.mark.parametrize("count", [MAXBARS - 1, MAXBARS, 2 * MAXBARS + 17])
async def test_latest_count_beyond_maxbars_matches_one_unlimited_call(
    mt5: AsyncMT5Connector, oracle: SimTerminal, count: int
) -> None:
    got = await fetch_rates(mt5, "EURUSD", "M1", count=count)
    assert np.array_equal(got, oracle.copy_rates_from_pos("EURUSD", 1, 0, count))
    assert_clean_seams(got)


async def test_start_pos_and_count_page_back_from_that_bar(
    mt5: AsyncMT5Connector, oracle: SimTerminal
) -> None:
    got = await fetch_rates(mt5, "EURUSD", Timeframe.M1, start_pos=400, count=1800)
    assert np.array_equal(got, oracle.copy_rates_from_pos("EURUSD", 1, 400, 1800))


async def test_start_pos_beyond_the_chart_buffer_is_refused(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="chart buffer"):
        await fetch_rates(mt5, "EURUSD", "M1", start_pos=MAXBARS, count=10)


async def test_date_from_and_count_end_at_date_from(
    mt5: AsyncMT5Connector, oracle: SimTerminal
) -> None:
    anchor = datetime(2026, 2, 25, 12, 30, tzinfo=UTC)
    got = await fetch_rates(mt5, "EURUSD", "M15", anchor, count=2500)
    assert np.array_equal(got, oracle.copy_rates_from("EURUSD", 15, ts(anchor), 2500))


async def test_count_stops_at_the_start_of_history(mt5: AsyncMT5Connector) -> None:
    got = await fetch_rates(mt5, "EURUSD", "MN1", datetime(2001, 6, 1, tzinfo=UTC), count=5000)
    assert len(got) == 18  # January 2000 to June 2001
    assert_clean_seams(got)


async def test_count_ending_exactly_at_a_page_boundary_stops_at_the_first_bar(
    mt5: AsyncMT5Connector, oracle: SimTerminal
) -> None:
    first = oracle.copy_rates_range(
        "EURUSD", Timeframe.D1, ts(HISTORY_START), ts(HISTORY_START) + 86400 * 60
    )
    anchor = datetime.fromtimestamp(int(first["time"][39]), UTC)
    # Two full pages of 20 reach the first bar; the next page would lie before the history.
    got = await fetch_rates(mt5, "EURUSD", "D1", anchor, count=100, page_size=20)
    assert np.array_equal(got, first[:40])


async def test_count_before_the_history_says_so(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5CallError, match="outside the server's history"):
        await fetch_rates(mt5, "EURUSD", "H1", datetime(1995, 1, 1, tzinfo=UTC), count=10)


async def test_progress_reaches_one_with_the_final_row_count(mt5: AsyncMT5Connector) -> None:
    seen: list[FetchProgress] = []
    got = await fetch_rates(mt5, "EURUSD", "M1", count=2500, progress=seen.append)
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions)  # type: ignore[type-var]
    assert seen[-1].fraction == 1.0
    assert seen[-1].rows == len(got) == 2500
    assert [p.pages for p in seen] == list(range(1, len(seen) + 1))


# --------------------------------------------------------------------------- conventions


@pytest.mark.parametrize(
    "timeframe", [Timeframe.H1, "H1", "h1", 16385], ids=["enum", "name", "lower", "int"]
)
async def test_timeframe_forms_give_the_same_bars(
    mt5: AsyncMT5Connector, timeframe: Any, oracle: SimTerminal
) -> None:
    got = await fetch_rates(mt5, "EURUSD", timeframe, count=50)
    assert np.array_equal(got, oracle.copy_rates_from_pos("EURUSD", Timeframe.H1, 0, 50))


async def test_naive_datetime_is_refused_before_any_call(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="naive"):
        await fetch_rates(mt5, "EURUSD", "M1", datetime(2026, 2, 23), datetime(2026, 2, 24))
    with pytest.raises(MT5InvalidArgumentError, match="naive"):
        await fetch_ticks(mt5, "EURUSD", datetime(2026, 2, 23))
    assert not any(name.startswith("copy_") for name in term.calls)


async def test_impossible_combinations_are_refused(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="not both"):
        await fetch_rates(mt5, "EURUSD", "M1", MONDAY, MONDAY, count=3)
    with pytest.raises(MT5InvalidArgumentError, match="needs date_from"):
        await fetch_rates(mt5, "EURUSD", "M1", date_to=MONDAY)
    with pytest.raises(MT5InvalidArgumentError, match="say which bars"):
        await fetch_rates(mt5, "EURUSD", "M1")
    with pytest.raises(MT5InvalidArgumentError, match="before date_from"):
        await fetch_rates(mt5, "EURUSD", "M1", MONDAY, MONDAY - timedelta(days=1))
    with pytest.raises(MT5InvalidArgumentError, match="count"):
        await fetch_rates(mt5, "EURUSD", "M1", count=0)
    with pytest.raises(MT5InvalidArgumentError, match="timeframe"):
        await fetch_rates(mt5, "EURUSD", "M7", count=1)


async def test_aware_datetimes_in_a_dst_zone_give_the_same_utc_bars(
    mt5: AsyncMT5Connector,
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # The EU clocks jump on 2026-03-29; crypto trades through it.
    local_from = datetime(2026, 3, 28, 12, tzinfo=berlin)
    local_to = datetime(2026, 3, 29, 12, tzinfo=berlin)
    term_clock_later = mt5.backend
    term_clock_later.clock.set("2026-04-01T00:00:00Z")
    got = await fetch_rates(mt5, "BTCUSD", "H1", local_from, local_to)
    utc = await fetch_rates(
        mt5, "BTCUSD", "H1", local_from.astimezone(UTC), local_to.astimezone(UTC)
    )
    assert np.array_equal(got, utc)
    assert len(got) == 24  # 23 local hours on the wall, 24 real hours: MT5 times are UTC
    assert np.all(np.diff(got["time"]) == 3600)
    assert got["time"][0] == ts(datetime(2026, 3, 28, 11, tzinfo=UTC))


async def test_broker_suffix_is_resolved() -> None:
    term = SimTerminal(seed=7, clock=SimClock.fixed(NOW), maxbars=MAXBARS, symbol_suffix=".m")
    settings = MT5Settings(_env_file=None, backend="sim", testing=True)
    async with AsyncMT5Connector(settings, backend=term) as mt5:
        got = await fetch_rates(mt5, "EURUSD", "M1", count=1500)
    assert len(got) == 1500
    assert term.calls["copy_rates_from_pos"] == 1


async def test_unknown_symbol_raises_symbol_not_found(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5SymbolNotFoundError):
        await fetch_rates(mt5, "NOPE", "M1", count=10)


async def test_symbol_outside_the_market_watch_is_selected_first(
    mt5: AsyncMT5Connector, term: SimTerminal, oracle: SimTerminal
) -> None:
    assert not term.is_selected("AUDNZD")
    got = await fetch_rates(mt5, "AUDNZD", "H1", count=30)
    assert term.is_selected("AUDNZD")
    assert np.array_equal(got, oracle.copy_rates_from_pos("AUDNZD", Timeframe.H1, 0, 30))


async def test_maxbars_is_read_once_per_connection(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    await fetch_rates(mt5, "EURUSD", "M1", count=10)
    await fetch_ticks(mt5, "EURUSD", MONDAY, MONDAY + timedelta(minutes=1))
    assert term.calls["terminal_info"] == 1
    await mt5.disconnect()
    await mt5.connect()
    await fetch_rates(mt5, "EURUSD", "M1", count=10)
    assert term.calls["terminal_info"] == 2


async def test_other_calls_run_between_pages(mt5: AsyncMT5Connector) -> None:
    pages: list[int] = []
    side: list[asyncio.Task[Any]] = []

    def on_page(progress: FetchProgress) -> None:
        pages.append(progress.pages)
        if progress.pages == 1:
            side.append(asyncio.create_task(mt5.get_account_info()))
        elif side and side[0].done() and len(pages) < 100:
            pages.append(-1)  # marks "the other call had finished by this page"

    end = MONDAY + timedelta(minutes=5 * MAXBARS)
    await fetch_rates(mt5, "EURUSD", "M1", MONDAY, end, progress=on_page)
    assert side[0].done()
    marker = pages.index(-1)
    assert marker < len(pages) - 1, "the other call waited for the whole fetch"


# --------------------------------------------------------------------------- ticks


async def test_ticks_over_many_pages_match_one_unlimited_call(
    mt5: AsyncMT5Connector, oracle: SimTerminal
) -> None:
    start = datetime(2026, 2, 27, 20, tzinfo=UTC)
    end = datetime(2026, 3, 2, 3, tzinfo=UTC)
    pages: list[FetchProgress] = []
    got = await fetch_ticks(mt5, "EURUSD", start, end, page_size=300, progress=pages.append)
    want = oracle.copy_ticks_range("EURUSD", ts(start), ts(end), -1)
    assert len(want) > 3000
    assert np.array_equal(got, want)
    assert len(pages) > 10
    assert pages[-1].fraction == 1.0


async def test_ticks_from_before_the_history_start_at_its_first_tick(
    mt5: AsyncMT5Connector, oracle: SimTerminal
) -> None:
    start = datetime(1999, 12, 31, tzinfo=UTC)
    end = HISTORY_START + timedelta(hours=1)
    got = await fetch_ticks(mt5, "EURUSD", start, end)
    want = oracle.copy_ticks_range("EURUSD", ts(HISTORY_START), ts(end), -1)
    assert len(want) > 0
    assert np.array_equal(got, want)
    with pytest.raises(MT5CallError, match="outside the server's history"):
        await fetch_ticks(mt5, "EURUSD", start, HISTORY_START - timedelta(seconds=1))


async def test_ticks_count_takes_the_first_ticks_from_date_from(
    mt5: AsyncMT5Connector, oracle: SimTerminal
) -> None:
    start = datetime(2026, 2, 25, 7, 59, 30, tzinfo=UTC)
    got = await fetch_ticks(mt5, "EURUSD", start, count=2345, page_size=200)
    assert np.array_equal(got, oracle.copy_ticks_from("EURUSD", ts(start), 2345, -1))


async def test_ticks_without_end_run_up_to_now(mt5: AsyncMT5Connector, oracle: SimTerminal) -> None:
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    got = await fetch_ticks(mt5, "EURUSD", start)
    want = oracle.copy_ticks_range("EURUSD", ts(start), ts(start) + 7200, -1)
    assert np.array_equal(got, want)


async def test_ticks_window_refused_as_too_large_is_halved(
    mt5: AsyncMT5Connector, term: SimTerminal, oracle: SimTerminal
) -> None:
    term.faults.fail("copy_ticks_range", -2, times=2)
    start = datetime(2026, 2, 25, 8, tzinfo=UTC)
    end = start + timedelta(hours=3)
    got = await fetch_ticks(mt5, "EURUSD", start, end)
    assert np.array_equal(got, oracle.copy_ticks_range("EURUSD", ts(start), ts(end), -1))
    assert [f.code for f in term.faults.fired] == [-2, -2]


@pytest.mark.parametrize(("flags", "value"), [("all", -1), ("INFO", 1), ("trade", 2), (1, 1)])
def test_tick_flags_accept_names_and_mt5_values(flags: Any, value: int) -> None:
    assert tick_flags(flags) == value


def test_unknown_tick_flags_are_refused() -> None:
    with pytest.raises(MT5InvalidArgumentError, match="tick flags"):
        tick_flags("bid")


async def test_trade_ticks_of_an_instrument_without_trades_are_empty(
    mt5: AsyncMT5Connector,
) -> None:
    got = await fetch_ticks(mt5, "EURUSD", MONDAY, MONDAY + timedelta(hours=1), flags="trade")
    assert len(got) == 0
    assert got.dtype == TICKS_DTYPE


class BurstTicks:
    """A fake connector whose ticks come in bursts sharing one ``time_msc`` at second ends."""

    def __init__(self) -> None:
        rows = []
        for second in range(1_700_000_000, 1_700_043_200, 600):
            for msc in (second * 1000 + 1, second * 1000 + 999):
                rows.extend([(second, 1.0, 1.1, 0.0, 0, msc, 6, 0.0)] * 5)
        self.ticks = np.array(rows, dtype=TICKS_DTYPE)
        self.session = None  # no session: maxbars is read each time
        self.settings = SimpleNamespace(call_timeout=None)
        self.windows: list[tuple[int, int]] = []
        self.timeouts: set[Any] = set()

    async def find_symbol(self, name: str, *, timeout: Any) -> str:
        self.timeouts.add(timeout)
        return name

    async def call(self, function: str, *args: Any, timeout: Any) -> Any:
        self.timeouts.add(timeout)
        if function == "terminal_info":
            return SimpleNamespace(maxbars=1000)
        if function == "symbol_select":
            return True
        if function == "symbol_info_tick":
            return SimpleNamespace(time_msc=int(self.ticks["time_msc"][-1]))
        assert function == "copy_ticks_range"
        _, low, high, _ = args
        self.windows.append((low, high))
        t = self.ticks["time_msc"]
        return self.ticks[(t >= low * 1000) & (t <= high * 1000 + 999)].copy()


async def test_ticks_sharing_a_time_msc_at_page_seams_are_kept_once() -> None:
    fake = BurstTicks()
    got = await fetch_ticks(
        fake,  # type: ignore[arg-type]
        "X",
        datetime.fromtimestamp(1_700_000_000, UTC),
        page_size=7,
        timeout=12.5,
    )
    assert len(fake.windows) > 10
    assert np.array_equal(got, fake.ticks)
    assert fake.timeouts == {12.5}  # every call of the fetch got the caller's timeout


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    start_minute=st.integers(0, 20 * 1440),
    minutes=st.integers(0, 6 * 1440),
    page_size=st.integers(1, 2 * MAXBARS),
    timeframe=st.sampled_from(["M1", "M3", "M10", "H1"]),
)
async def test_any_range_and_page_size_match_one_unlimited_call(
    mt5: AsyncMT5Connector,
    oracle: SimTerminal,
    start_minute: int,
    minutes: int,
    page_size: int,
    timeframe: str,
) -> None:
    start = datetime(2026, 2, 1, tzinfo=UTC) + timedelta(minutes=start_minute)
    end = start + timedelta(minutes=minutes)
    got = await fetch_rates(mt5, "EURUSD", timeframe, start, end, page_size=page_size)
    frame = int(Timeframe.parse(timeframe))
    assert np.array_equal(got, oracle.copy_rates_range("EURUSD", frame, ts(start), ts(end)))
