"""rates_to_frame / ticks_to_frame: UTC time, MT5 columns and dtypes, engines, errors."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import polars as pl
import pytest

from aiomt5._errors import MT5ConfigurationError, MT5InvalidArgumentError
from aiomt5._frames import rates_to_frame, resolve_engine, ticks_to_frame
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
