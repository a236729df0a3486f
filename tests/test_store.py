"""HistoryStore: Parquet segments per (server, symbol, timeframe), incremental updates, reads."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aiomt5._connector import AsyncMT5Connector
from aiomt5._core._errors import MT5ConfigurationError, MT5InvalidArgumentError
from aiomt5._market._store import HistoryStore, StoreKey
from aiomt5._market._timeframe import Timeframe
from aiomt5._settings import MT5Settings
from aiomt5.sim import DEFAULT_SERVER, SimClock, SimTerminal

NOW = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)  # the 10:00 bar is forming
START = datetime(2026, 2, 25, tzinfo=UTC)


def ts(when: datetime) -> int:
    return int(when.timestamp())


@pytest.fixture
def term() -> SimTerminal:
    return SimTerminal(seed=5, clock=SimClock.fixed(NOW), maxbars=3000)


def oracle_at(when: datetime) -> SimTerminal:
    reference = SimTerminal(seed=5, clock=SimClock.fixed(when), maxbars=10**7)
    reference.initialize()
    return reference


@pytest.fixture
async def mt5(term: SimTerminal) -> AsyncIterator[AsyncMT5Connector]:
    settings = MT5Settings(_env_file=None, backend="sim", testing=True, call_timeout=10.0)
    async with AsyncMT5Connector(settings, backend=term) as connector:
        yield connector


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(tmp_path / "store")


async def test_first_update_downloads_from_start_to_now(
    mt5: AsyncMT5Connector, store: HistoryStore
) -> None:
    result = await store.update(mt5, "EURUSD", "M1", start=START)
    want = oracle_at(NOW).copy_rates_range("EURUSD", 1, ts(START), ts(NOW))
    got = store.read(DEFAULT_SERVER, "EURUSD", "M1")
    assert np.array_equal(got, want)
    assert result.key == StoreKey(DEFAULT_SERVER, "EURUSD", Timeframe.M1)
    assert result.tail_rows == len(want)
    assert (result.first, result.last) == (int(want["time"][0]), int(want["time"][-1]))


async def test_update_fetches_only_the_tail_and_replaces_the_forming_bar(
    mt5: AsyncMT5Connector, store: HistoryStore, term: SimTerminal
) -> None:
    await store.update(mt5, "EURUSD", "M1", start=START)
    forming = store.read(DEFAULT_SERVER, "EURUSD", "M1")[-1].copy()
    later = NOW + timedelta(hours=2)
    term.clock.set(later)
    calls = term.calls["copy_rates_range"]
    result = await store.update(mt5, "EURUSD", "M1", start=START)
    assert term.calls["copy_rates_range"] - calls == 1  # 121 bars: one page, no re-download
    assert result.head_rows == 0
    assert result.tail_rows == 121  # 10:00 (re-read, now complete) to 12:00 (forming)
    got = store.read(DEFAULT_SERVER, "EURUSD", "M1")
    want = oracle_at(later).copy_rates_range("EURUSD", 1, ts(START), ts(later))
    assert np.array_equal(got, want)
    final = got[got["time"] == forming["time"]][0]
    assert final["tick_volume"] > forming["tick_volume"]


async def test_earlier_start_fetches_only_the_missing_head(
    mt5: AsyncMT5Connector, store: HistoryStore, term: SimTerminal
) -> None:
    await store.update(mt5, "EURUSD", "H1", start=START)
    earlier = START - timedelta(days=20)
    result = await store.update(mt5, "EURUSD", "H1", start=earlier)
    want = oracle_at(NOW).copy_rates_range("EURUSD", Timeframe.H1, ts(earlier), ts(NOW))
    assert result.head_rows == len(want[want["time"] < ts(START)])
    assert np.array_equal(store.read(DEFAULT_SERVER, "EURUSD", "H1"), want)


async def test_head_before_the_history_is_not_asked_again(
    mt5: AsyncMT5Connector, store: HistoryStore, term: SimTerminal
) -> None:
    ancient = datetime(1995, 1, 1, tzinfo=UTC)  # the simulated history starts in 2000
    await store.update(mt5, "EURUSD", "MN1", start=ancient)
    await store.update(mt5, "EURUSD", "MN1", start=ancient)
    calls = term.calls["copy_rates_range"]
    result = await store.update(mt5, "EURUSD", "MN1", start=ancient)
    assert result.head_rows == 0
    assert term.calls["copy_rates_range"] - calls == 1  # the tail only


async def test_read_filters_by_date_and_builds_a_utc_frame(
    mt5: AsyncMT5Connector, store: HistoryStore
) -> None:
    await store.update(mt5, "EURUSD", "M5", start=START)
    low = datetime(2026, 2, 26, 8, tzinfo=UTC)
    high = datetime(2026, 2, 26, 9, tzinfo=UTC)
    got = store.read(DEFAULT_SERVER, "EURUSD", "M5", low, high)
    assert got["time"][0] == ts(low)
    assert got["time"][-1] == ts(high)
    assert len(got) == 13
    frame = store.read_frame(DEFAULT_SERVER, "EURUSD", "M5", low, high, engine="pandas")
    assert isinstance(frame, pd.DataFrame)
    assert frame.index[0] == low


async def test_broker_names_are_stored_under_the_server_and_listed(tmp_path: Path) -> None:
    term = SimTerminal(seed=5, clock=SimClock.fixed(NOW), symbol_suffix="#x/y")
    settings = MT5Settings(_env_file=None, backend="sim", testing=True)
    store = HistoryStore(tmp_path)
    async with AsyncMT5Connector(settings, backend=term) as mt5:
        await store.update(mt5, "EURUSD", "H4", start=START)
        await store.update(mt5, "GBPUSD", "D1", start=START)
    assert store.keys() == [
        StoreKey(DEFAULT_SERVER, "EURUSD#x/y", Timeframe.H4),
        StoreKey(DEFAULT_SERVER, "GBPUSD#x/y", Timeframe.D1),
    ]
    assert len(store.read(DEFAULT_SERVER, "EURUSD#x/y", "H4")) > 10


def test_segments_are_compacted_and_newest_rows_win(store: HistoryStore) -> None:
    store = HistoryStore(store.root, compact_after=3)
    rates = oracle_at(NOW).copy_rates_range("EURUSD", 1, ts(START), ts(START) + 3600)
    for i in range(0, 60, 10):
        store.write("srv", "EURUSD", "M1", rates[i : i + 15])
    fixed = rates[20:21].copy()
    fixed["close"] = 9.0
    store.write("srv", "EURUSD", "M1", fixed)
    folder = store.directory("srv", "EURUSD", "M1")
    assert len(list(folder.glob("*.parquet"))) <= 3
    got = store.read("srv", "EURUSD", "M1")
    assert np.array_equal(got["time"], rates["time"][:65])
    assert got["close"][20] == 9.0
    store.compact("srv", "EURUSD", "M1")
    assert len(list(folder.glob("*.parquet"))) == 1
    assert np.array_equal(store.read("srv", "EURUSD", "M1"), got)


def test_nothing_stored_reads_empty(store: HistoryStore) -> None:
    assert len(store.read("srv", "EURUSD", "M1")) == 0
    assert store.span("srv", "EURUSD", "M1") is None
    assert store.keys() == []


def test_write_refuses_arrays_that_are_not_rates(store: HistoryStore) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="rates array"):
        store.write("srv", "EURUSD", "M1", np.zeros(3))


def test_missing_pyarrow_raises_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.import_module

    def without_pyarrow(name: str, package: str | None = None) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_pyarrow)
    with pytest.raises(MT5ConfigurationError, match="pip install pyarrow"):
        HistoryStore(tmp_path)


def test_leftover_temporary_files_are_ignored(store: HistoryStore) -> None:
    rates = oracle_at(NOW).copy_rates_range("EURUSD", 1, ts(START), ts(START) + 600)
    store.write("srv", "EURUSD", "M1", rates)
    folder = store.directory("srv", "EURUSD", "M1")
    (folder / "tmpa1b2c3.tmp").write_bytes(b"half a parquet file")  # a crash mid-write
    assert np.array_equal(store.read("srv", "EURUSD", "M1"), rates)
    assert store.span("srv", "EURUSD", "M1") == (int(rates["time"][0]), int(rates["time"][-1]))
