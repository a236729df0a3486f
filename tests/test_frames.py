"""rates_to_frame / ticks_to_frame: UTC time, MT5 columns and dtypes, engines, errors."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import polars as pl
import pytest

from aiomt5._connector import AsyncMT5Connector
from aiomt5._core._errors import MT5ConfigurationError, MT5InvalidArgumentError
from aiomt5._market import _frames
from aiomt5._market._frames import (
    fetch_rates_frame,
    fetch_ticks_frame,
    rates_to_frame,
    resolve_engine,
    ticks_to_frame,
)
from aiomt5._market._history import FetchProgress, fetch_rates, fetch_ticks
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal

NOW = "2026-03-02T10:00:00Z"


@pytest.fixture(scope="module")
def term() -> SimTerminal:
    terminal = SimTerminal(seed=3, clock=SimClock.fixed(NOW))
    terminal.initialize()
    return terminal


@pytest.fixture
def rates(term: SimTerminal) -> npt.NDArray[np.void]:
    result: npt.NDArray[np.void] = term.copy_rates_from_pos("EURUSD", 1, 0, 500)
    return result


@pytest.fixture
def ticks(term: SimTerminal) -> npt.NDArray[np.void]:
    result: npt.NDArray[np.void] = term.copy_ticks_from("EURUSD", 1772442000, 700, -1)
    return result


def test_pandas_rates_frame_has_a_utc_second_index_and_mt5_columns(
    rates: npt.NDArray[np.void],
) -> None:
    frame = rates_to_frame(rates, "pandas")
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert str(frame.index.tz) == "UTC"
    assert frame.index.name == "time"
    assert list(frame.columns) == [
        "open",
        "high",
        "low",
        "close",
        "tick_volume",
        "spread",
        "real_volume",
    ]
    assert frame.index[0] == datetime.fromtimestamp(int(rates["time"][0]), UTC)
    assert np.array_equal(frame.index.as_unit("s").asi8, rates["time"])
    for name in frame.columns:
        assert frame[name].dtype == rates.dtype[name]
        assert np.array_equal(frame[name].to_numpy(), rates[name])


def test_polars_rates_frame_has_a_utc_time_column_first(rates: npt.NDArray[np.void]) -> None:
    frame = rates_to_frame(rates, "polars")
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns[0] == "time"
    assert frame.schema["time"] == pl.Datetime("ms", "UTC")
    assert frame["time"][0] == datetime.fromtimestamp(int(rates["time"][0]), UTC)
    assert np.array_equal(frame["close"].to_numpy(), rates["close"])
    assert frame.schema["spread"] == pl.Int32


def test_tick_frames_keep_milliseconds_and_time_msc(ticks: npt.NDArray[np.void]) -> None:
    pandas_frame = ticks_to_frame(ticks, "pandas")
    polars_frame = ticks_to_frame(ticks, "polars")
    expected = datetime.fromtimestamp(int(ticks["time_msc"][3]) / 1000, UTC)
    assert pandas_frame.index[3] == expected
    assert polars_frame["time"][3] == expected
    assert "time_msc" in pandas_frame.columns
    assert np.array_equal(pandas_frame["bid"].to_numpy(), ticks["bid"])
    assert np.array_equal(polars_frame["ask"].to_numpy(), ticks["ask"])


def test_default_engine_is_pandas_when_installed(rates: npt.NDArray[np.void]) -> None:
    assert isinstance(rates_to_frame(rates), pd.DataFrame)


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_empty_arrays_give_empty_frames(engine: Any, rates: npt.NDArray[np.void]) -> None:
    frame = rates_to_frame(rates[:0], engine)
    assert len(frame) == 0


def test_frame_does_not_alias_the_packed_array(rates: npt.NDArray[np.void]) -> None:
    source = rates.copy()
    frame = rates_to_frame(source, "pandas")
    source["close"][0] = -1.0
    assert float(frame["close"].iloc[0]) == float(rates["close"][0])


def test_missing_engine_raises_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_polars(name: str, package: str | None = None) -> Any:
        if name == "polars":
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_polars)
    with pytest.raises(MT5ConfigurationError, match=r"aiomt5\[polars\]"):
        resolve_engine("polars")


def test_default_engine_falls_back_to_polars_without_pandas(
    monkeypatch: pytest.MonkeyPatch, rates: npt.NDArray[np.void]
) -> None:
    real = importlib.import_module

    def without_pandas(name: str, package: str | None = None) -> Any:
        if name == "pandas":
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_pandas)
    assert isinstance(rates_to_frame(rates), pl.DataFrame)


def test_no_engine_at_all_raises_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def nothing(name: str, package: str | None = None) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", nothing)
    with pytest.raises(MT5ConfigurationError, match="pandas or polars"):
        resolve_engine(None)


def test_unknown_engine_is_refused(rates: npt.NDArray[np.void]) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="engine"):
        rates_to_frame(rates, "spark")  # type: ignore[arg-type]


def test_ticks_array_is_not_accepted_as_rates(ticks: npt.NDArray[np.void]) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="rates"):
        rates_to_frame(ticks)
    with pytest.raises(MT5InvalidArgumentError, match="ticks"):
        ticks_to_frame(np.zeros(3))


# --------------------------------------------------------------------------- fetch_*_frame


@pytest.fixture
async def mt5() -> AsyncIterator[tuple[AsyncMT5Connector, SimTerminal]]:
    terminal = SimTerminal(seed=3, clock=SimClock.fixed(NOW), maxbars=700)
    settings = MT5Settings(_env_file=None, backend="sim", testing=True, call_timeout=10.0)
    async with AsyncMT5Connector(settings, backend=terminal) as connector:
        yield connector, terminal


RANGE = (datetime(2026, 2, 20, tzinfo=UTC), datetime(2026, 2, 24, 12, tzinfo=UTC))


@pytest.mark.parametrize("engine", ["pandas", "polars"])
async def test_paged_rates_frame_equals_the_frame_of_the_paged_array(
    mt5: tuple[AsyncMT5Connector, SimTerminal], engine: Any
) -> None:
    connector, _ = mt5
    frame = await fetch_rates_frame(connector, "EURUSD", "M1", *RANGE, engine=engine)
    want = rates_to_frame(await fetch_rates(connector, "EURUSD", "M1", *RANGE), engine)
    assert len(frame) > 3000
    if engine == "pandas":
        pd.testing.assert_frame_equal(frame, want)
    else:
        assert frame.equals(want)


async def test_rates_frame_by_count_equals_the_frame_of_the_array(
    mt5: tuple[AsyncMT5Connector, SimTerminal],
) -> None:
    connector, _ = mt5
    frame = await fetch_rates_frame(connector, "EURUSD", "M5", count=2000, engine="pandas")
    want = rates_to_frame(await fetch_rates(connector, "EURUSD", "M5", count=2000), "pandas")
    pd.testing.assert_frame_equal(frame, want)
    assert frame.index.is_monotonic_increasing


async def test_paged_ticks_frame_equals_the_frame_of_the_paged_array(
    mt5: tuple[AsyncMT5Connector, SimTerminal],
) -> None:
    connector, _ = mt5
    start = datetime(2026, 2, 26, 8, tzinfo=UTC)
    frame = await fetch_ticks_frame(connector, "EURUSD", start, count=5000, engine="pandas")
    ticks = await fetch_ticks(connector, "EURUSD", start, count=5000)
    pd.testing.assert_frame_equal(frame, ticks_to_frame(ticks, "pandas"))
    assert len(frame) == 5000


async def test_empty_download_gives_an_empty_frame(
    mt5: tuple[AsyncMT5Connector, SimTerminal],
) -> None:
    connector, _ = mt5
    saturday = datetime(2026, 2, 28, 3, tzinfo=UTC)
    frame = await fetch_rates_frame(connector, "EURUSD", "M1", saturday, saturday, engine="polars")
    assert len(frame) == 0
    assert frame.columns[0] == "time"


async def test_missing_engine_is_reported_before_downloading(
    mt5: tuple[AsyncMT5Connector, SimTerminal], monkeypatch: pytest.MonkeyPatch
) -> None:
    connector, term = mt5

    def nothing(name: str, package: str | None = None) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", nothing)
    with pytest.raises(MT5ConfigurationError):
        await fetch_rates_frame(connector, "EURUSD", "M1", count=10)
    assert not any(name.startswith("copy_") for name in term.calls)


async def test_failing_progress_callback_stops_and_abandons_the_prefetched_page(
    mt5: tuple[AsyncMT5Connector, SimTerminal],
) -> None:
    connector, term = mt5

    def explode(progress: FetchProgress) -> None:
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        await fetch_rates_frame(connector, "EURUSD", "M1", *RANGE, progress=explode)
    for _ in range(10):
        await asyncio.sleep(0)
    # The connector's own supervisor tasks (aiomt5-*) run for as long as it is connected.
    left = {task for task in asyncio.all_tasks() if not task.get_name().startswith("aiomt5-")}
    assert left == {asyncio.current_task()}
    assert term.calls["copy_rates_range"] <= 2


async def test_cancelled_paged_fetch_leaves_no_task_behind(
    mt5: tuple[AsyncMT5Connector, SimTerminal],
) -> None:
    connector, term = mt5
    tasks: list[asyncio.Task[Any]] = []

    def cancel_at_first_page(progress: FetchProgress) -> None:
        tasks[0].cancel()

    tasks.append(
        asyncio.create_task(
            fetch_rates_frame(connector, "EURUSD", "M1", *RANGE, progress=cancel_at_first_page)
        )
    )
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    for _ in range(10):
        await asyncio.sleep(0)
    # The connector's own supervisor tasks (aiomt5-*) run for as long as it is connected.
    left = {task for task in asyncio.all_tasks() if not task.get_name().startswith("aiomt5-")}
    assert left == {asyncio.current_task()}
    assert term.calls["copy_rates_range"] <= 2
    assert len(await fetch_rates(connector, "EURUSD", "M1", count=5)) == 5  # still usable


# --------------------------------------------------------------------------- against a plain build


def reference(array: npt.NDArray[np.void], kind: str, engine: str) -> Any:
    """The frame built the obvious way, one column at a time (no shared code with _frames)."""
    epoch, unit, drop = ("time", "s", {"time"}) if kind == "rates" else ("time_msc", "ms", {"time"})
    names = [name for name in array.dtype.names or () if name not in drop]
    if engine == "pandas":
        index = pd.DatetimeIndex(pd.to_datetime(array[epoch], unit=unit, utc=True), name="time")
        return pd.DataFrame({name: array[name].copy() for name in names}, index=index)
    times = pl.from_epoch(pl.Series("time", array[epoch].copy()), time_unit=unit)
    columns = [times.dt.replace_time_zone("UTC").dt.cast_time_unit("ms")]
    columns += [pl.Series(name, array[name].copy()) for name in names]
    return pl.DataFrame(columns)


def assert_same(frame: Any, want: Any, engine: str) -> None:
    if engine == "pandas":
        # Same values; ours keeps MT5's resolution (s or ms) where to_datetime gives ns.
        assert frame.index.as_unit("ns").equals(want.index)
        assert str(frame.index.tz) == "UTC"
        assert frame.index.name == "time"
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), want.reset_index(drop=True))
    else:
        assert frame.equals(want)
        assert frame.schema == want.schema


@pytest.mark.parametrize("engine", ["pandas", "polars"])
@pytest.mark.parametrize("rows", [0, 1, 500])
def test_array_frames_match_a_plain_build(
    engine: str, rows: int, rates: npt.NDArray[np.void], ticks: npt.NDArray[np.void]
) -> None:
    assert_same(
        rates_to_frame(rates[:rows], engine), reference(rates[:rows], "rates", engine), engine
    )  # type: ignore[arg-type]
    assert_same(
        ticks_to_frame(ticks[:rows], engine), reference(ticks[:rows], "ticks", engine), engine
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ["pandas", "polars"])
async def test_paged_frames_of_many_pages_match_a_plain_build(
    mt5: tuple[AsyncMT5Connector, SimTerminal], engine: Any
) -> None:
    connector, term = mt5
    frame = await fetch_rates_frame(connector, "EURUSD", "M1", *RANGE, engine=engine)
    assert term.calls["copy_rates_range"] > 3  # pages of maxbars (700)
    want = reference(await fetch_rates(connector, "EURUSD", "M1", *RANGE), "rates", engine)
    assert_same(frame, want, engine)
    # Ticks by date: no row bound is known in advance, so the pages are copied at the end.
    start, end = datetime(2026, 2, 26, 8, tzinfo=UTC), datetime(2026, 2, 26, 14, tzinfo=UTC)
    frame = await fetch_ticks_frame(connector, "EURUSD", start, end, engine=engine)
    assert term.calls["copy_ticks_range"] > 3
    assert_same(
        frame,
        reference(await fetch_ticks(connector, "EURUSD", start, end), "ticks", engine),
        engine,
    )


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_a_wrong_row_bound_still_gives_every_page(engine: Any, rates: npt.NDArray[np.void]) -> None:
    pages = [rates[:200], rates[200:450], rates[450:]]
    sink = _frames._sink("rates", engine)
    sink.reserve(300)  # too small: the second page does not fit
    for page in pages:
        sink.add(page)
    assert_same(
        _frames._build(pages, sink, "rates", engine), reference(rates, "rates", engine), engine
    )


def test_polars_frame_does_not_alias_the_packed_array(ticks: npt.NDArray[np.void]) -> None:
    source = ticks.copy()
    frame = ticks_to_frame(source, "polars")
    source["bid"][0] = -1.0
    source["time_msc"][0] = 0
    assert frame["bid"][0] == float(ticks["bid"][0])
    assert frame["time_msc"][0] == int(ticks["time_msc"][0])


async def test_ticks_by_count_are_copied_into_the_columns_as_they_arrive(
    mt5: tuple[AsyncMT5Connector, SimTerminal], monkeypatch: pytest.MonkeyPatch
) -> None:
    connector, _ = mt5
    added: list[int] = []
    real_add = _frames._ColumnSink.add

    def add(self: Any, page: npt.NDArray[np.void]) -> None:
        real_add(self, page)
        added.append(self.rows)

    monkeypatch.setattr(_frames._ColumnSink, "add", add)
    start = datetime(2026, 2, 26, 8, tzinfo=UTC)
    frame = await fetch_ticks_frame(
        connector, "EURUSD", start, count=20_000, engine="polars", page_size=500
    )
    want = reference(await fetch_ticks(connector, "EURUSD", start, count=20_000), "ticks", "polars")
    assert_same(frame, want, "polars")
    assert len(added) > 3
    # Every page went into the reserved buffers as it came: none is copied at the end.
    assert added[-1] == 20_000
