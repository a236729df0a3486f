"""Replay (issue 18): recorded markets in the simulator, virtual time, the runner, the report.

The recording comes from the simulator itself (``HistoryStore.update`` through a connector on a
``SimTerminal`` with a fixed clock), so it is the same on any day and machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

import aiomt5
import aiomt5.replay as replay
from aiomt5 import HistoryStore
from aiomt5._cli import _write_array
from aiomt5._mt5 import constants as c
from aiomt5.sim import RecordedSeries, Recording, RecordingError, SimClock, SimTerminal
from aiomt5.sim._market import period_start

pytest.importorskip("pyarrow")

ROOT = pathlib.Path(__file__).parent.parent
BOT = ROOT / "examples" / "bot.py"
SERVER = "AioMT5-Demo"
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
RECORDED_UNTIL = datetime(2026, 3, 5, tzinfo=UTC)  # three trading days of M1
# The CI replay: a few hours of the recording, the bot polling every (virtual) second.
REPLAY_FROM = "2026-03-03T08:00:00+00:00"
REPLAY_TO = "2026-03-03T11:00:00+00:00"


async def _record(root: pathlib.Path, start: datetime, until: datetime) -> HistoryStore:
    """M1 bars of the simulator, recorded the way a bot author records a real terminal's."""
    store = HistoryStore(root)
    terminal = SimTerminal(seed=11, clock=SimClock.fixed(until))
    settings = aiomt5.MT5Settings(backend="sim", health_check=False)
    async with aiomt5.AsyncMT5Connector(settings, backend=terminal) as mt5:
        await store.update(mt5, "EURUSD", "M1", start=start)
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> HistoryStore:
    root = tmp_path_factory.mktemp("store")
    return asyncio.run(_record(root, MONDAY, RECORDED_UNTIL))


@pytest.fixture(scope="module")
def recorded(store: HistoryStore) -> np.ndarray:
    return store.read(SERVER, "EURUSD", "M1")


@pytest.fixture(scope="module")
def recording(store: HistoryStore) -> Recording:
    return Recording.from_store(store)


def _terminal(recording: Recording, seed: int = 0, at: float | None = None) -> SimTerminal:
    clock = SimClock.fixed(at if at is not None else recording.last + 60)
    terminal = recording.terminal(seed=seed, clock=clock)
    assert terminal.initialize()
    return terminal


# ====================================================================== recorded market


def test_the_recording_holds_three_days_of_m1(recorded: np.ndarray) -> None:
    times = recorded["time"]
    assert len(recorded) == 3 * 1440
    assert int(times[0]) == int(MONDAY.timestamp())
    assert set(np.diff(times).tolist()) == {60}


def test_bars_served_equal_the_recorded_ones_exactly(
    recording: Recording, recorded: np.ndarray
) -> None:
    terminal = _terminal(recording)
    served = terminal.copy_rates_range("EURUSD", c.TIMEFRAME_M1, recording.first, recording.last)
    assert served.dtype == recorded.dtype
    assert np.array_equal(served, recorded)
    latest = terminal.copy_rates_from_pos("EURUSD", c.TIMEFRAME_M1, 0, 500)
    assert np.array_equal(latest, recorded[-500:])


def _aggregate(m1: np.ndarray, timeframe: int) -> np.ndarray:
    """An independent aggregation of M1 bars (a plain loop, not the simulator's code)."""
    keys = period_start(timeframe, m1["time"].astype(np.int64))
    out = []
    for key in np.unique(keys):
        part = m1[keys == key]
        out.append((key, part["open"][0], part["high"].max(), part["low"].min(),
                    part["close"][-1], part["tick_volume"].sum(), part["spread"].min(),
                    part["real_volume"].sum()))  # fmt: skip
    return np.array(out, dtype=m1.dtype)


@pytest.mark.parametrize(
    "timeframe", [c.TIMEFRAME_M5, c.TIMEFRAME_M15, c.TIMEFRAME_H1, c.TIMEFRAME_H4, c.TIMEFRAME_D1]
)
def test_higher_timeframes_aggregate_the_recorded_m1_exactly(
    recording: Recording, recorded: np.ndarray, timeframe: int
) -> None:
    terminal = _terminal(recording)
    served = terminal.copy_rates_range("EURUSD", timeframe, recording.first, recording.last)
    assert np.array_equal(served, _aggregate(recorded, timeframe))


def _ticks(recording: Recording, seed: int, first: int, last: int) -> np.ndarray:
    terminal = _terminal(recording, seed=seed)
    ticks = terminal.copy_ticks_range("EURUSD", first, last, c.COPY_TICKS_ALL)
    assert ticks is not None
    return ticks


def test_synthesised_ticks_respect_each_bar_and_its_spread(
    recording: Recording, recorded: np.ndarray
) -> None:
    first = int(recorded["time"][600])
    bars = recorded[600:780]  # three hours
    ticks = _ticks(recording, 5, first, int(bars["time"][-1]) + 59)
    minutes = ticks["time_msc"] // 60_000
    point = 10.0 ** -recording.specs["EURUSD"].digits
    for bar in bars:
        mine = ticks[minutes == bar["time"] // 60]
        assert len(mine) >= max(4, int(bar["tick_volume"]))
        assert mine["bid"][0] == bar["open"]
        assert mine["bid"][-1] == bar["close"]
        assert mine["bid"].max() == bar["high"]
        assert mine["bid"].min() == bar["low"]
        spreads = np.rint((mine["ask"] - mine["bid"]) / point)
        assert spreads.min() == bar["spread"]
    assert np.all(np.diff(ticks["time_msc"]) > 0)


def test_synthesised_ticks_are_deterministic_for_a_seed(recording: Recording) -> None:
    first = recording.first + 36_000
    last = first + 3_600
    one, again = _ticks(recording, 5, first, last), _ticks(recording, 5, first, last)
    other = _ticks(recording, 6, first, last)
    assert np.array_equal(one, again)
    assert not np.array_equal(one["time_msc"][:50], other["time_msc"][:50])


def test_trading_fills_at_the_replayed_quotes_and_stops_trigger_on_them(
    recording: Recording, recorded: np.ndarray
) -> None:
    at = int(recorded["time"][700]) + 30
    terminal = _terminal(recording, at=at)
    tick = terminal.symbol_info_tick("EURUSD")
    replayed = terminal.copy_ticks_range("EURUSD", at - 60, at, c.COPY_TICKS_ALL)
    assert (tick.bid, tick.ask) == (replayed["bid"][-1], replayed["ask"][-1])
    # A take-profit at the highest bid of the next four hours is hit by a replayed tick.
    target = float(recorded["high"][701:941].max())
    assert target > tick.ask
    request = {"action": c.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1,
               "type": c.ORDER_TYPE_BUY, "price": tick.ask, "tp": target}  # fmt: skip
    result = terminal.order_send(request)
    assert result.retcode == c.TRADE_RETCODE_DONE
    assert result.price == tick.ask
    terminal.clock.advance(4 * 3600)
    assert terminal.positions_total() == 0
    deals = terminal.history_deals_get(at - 60, at + 5 * 3600)
    closing = [d for d in deals if d.entry == c.DEAL_ENTRY_OUT]
    assert len(closing) == 1
    assert closing[0].reason == c.DEAL_REASON_TP
    later = terminal.copy_ticks_range("EURUSD", at, closing[0].time_msc / 1000 + 1, -1)
    assert closing[0].time_msc in set(later["time_msc"].tolist())


def test_recorded_ticks_are_served_as_recorded(tmp_path: pathlib.Path) -> None:
    source = SimTerminal(seed=4, clock=SimClock.fixed("2026-03-04T00:00:00Z"))
    source.initialize()
    begin = int(datetime(2026, 3, 3, 9, tzinfo=UTC).timestamp())
    ticks = source.copy_ticks_range("EURUSD", begin, begin + 1800, c.COPY_TICKS_ALL)
    bars = source.copy_rates_range("EURUSD", c.TIMEFRAME_M1, begin, begin + 1740)
    _write_array(ticks, tmp_path / "EURUSD_ticks.parquet")
    _write_array(bars, tmp_path / "EURUSD_M1.csv")
    recording = Recording.from_files(
        [tmp_path / "EURUSD_ticks.parquet", tmp_path / "EURUSD_M1.csv"]
    )
    terminal = _terminal(recording, at=begin + 1900)
    served = terminal.copy_ticks_range("EURUSD", begin, begin + 1800, c.COPY_TICKS_ALL)
    assert np.array_equal(served["time_msc"], ticks["time_msc"])
    assert np.array_equal(served["bid"], ticks["bid"])
    assert np.array_equal(served["ask"], ticks["ask"])
    served_bars = terminal.copy_rates_range("EURUSD", c.TIMEFRAME_M1, begin, begin + 1740)
    assert np.array_equal(served_bars, bars)
    # Only ticks: the bars are built from them.
    only = Recording.from_files({"EURUSD": tmp_path / "EURUSD_ticks.parquet"})
    built = _terminal(only).copy_rates_range("EURUSD", c.TIMEFRAME_M1, begin, begin + 1740)
    assert np.array_equal(built[["time", "open", "high", "low", "close"]],
                          bars[["time", "open", "high", "low", "close"]])  # fmt: skip


def test_bad_recordings_are_refused_with_a_reason(
    tmp_path: pathlib.Path, recorded: np.ndarray
) -> None:
    h1 = recorded[::60].copy()
    _write_array(h1, tmp_path / "EURUSD_H1.parquet")
    with pytest.raises(RecordingError, match="not M1"):
        Recording.from_files([tmp_path / "EURUSD_H1.parquet"])
    with pytest.raises(RecordingError, match="no such file"):
        Recording.from_files([tmp_path / "missing.parquet"])
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(RecordingError, match=r"\.parquet or \.csv"):
        Recording.from_files([tmp_path / "x.txt"])
    with pytest.raises(RecordingError, match="no such HistoryStore"):
        Recording.from_store(tmp_path / "nowhere")
    with pytest.raises(RecordingError, match="no M1 series"):
        Recording.from_store(HistoryStore(tmp_path / "empty"))
    with pytest.raises(RecordingError, match="twice"):
        Recording([RecordedSeries("EURUSD", recorded), RecordedSeries("EURUSD", recorded)])


def test_a_recorded_symbol_info_gives_the_spec(
    recorded: np.ndarray, tmp_path: pathlib.Path
) -> None:
    from aiomt5.sim import save_symbol_info

    store = HistoryStore(tmp_path / "store")
    store.write("Broker-Live", "GER40.cash", "M1", recorded)
    info = {"name": "GER40.cash", "digits": 5, "trade_contract_size": 25.0,
            "currency_base": "EUR", "currency_profit": "EUR", "currency_margin": "EUR",
            "volume_min": 0.1, "volume_step": 0.1, "trade_stops_level": 20,
            "trade_calc_mode": c.SYMBOL_CALC_MODE_CFDINDEX, "chart_mode": 0}  # fmt: skip
    path = save_symbol_info(store, "Broker-Live", info)
    assert path.name == "symbol_info.json"
    spec = Recording.from_store(store).specs["GER40.cash"]
    assert (spec.contract_size, spec.currency_profit, spec.volume_min, spec.stops_level) == (
        25.0,
        "EUR",
        0.1,
        20,
    )
    assert spec.calc_mode == c.SYMBOL_CALC_MODE_CFDINDEX
    # The same from files: a .json among the data files.
    _write_array(recorded[:100], tmp_path / "GER40.parquet")
    from_files = Recording.from_files({"GER40.cash": [tmp_path / "GER40.parquet", path]})
    assert from_files.specs["GER40.cash"].contract_size == 25.0


def test_an_unknown_symbol_gets_a_spec_inferred_from_its_recording(recorded: np.ndarray) -> None:
    recording = Recording([RecordedSeries("ABCXYZ.pro", recorded)])
    spec = recording.specs["ABCXYZ.pro"]
    assert spec.digits == 5
    assert (spec.currency_base, spec.currency_profit) == ("ABC", "XYZ")
    known = Recording([RecordedSeries("EURUSD.m", recorded)]).specs["EURUSD.m"]
    assert (known.currency_base, known.contract_size) == ("EUR", 100_000.0)


# ====================================================================== virtual time


def test_virtual_time_jumps_to_the_next_timer() -> None:
    loop = replay.VirtualTimeLoop()
    try:
        began = time.perf_counter()

        async def main() -> float:
            await asyncio.sleep(3600)
            await asyncio.sleep(0.25)
            return asyncio.get_running_loop().time()

        assert loop.run_until_complete(main()) == pytest.approx(3600.25)
        assert time.perf_counter() - began < 60  # an hour of waiting was not waited
    finally:
        loop.close()


def test_virtual_time_stands_still_while_a_thread_works() -> None:
    """A naive virtual clock would jump to the 1 s timeout while the thread sleeps for real."""
    loop = replay.VirtualTimeLoop()
    release = threading.Event()

    def work() -> str:
        release.wait(5)
        return "done"

    async def main() -> tuple[str, float]:
        running = asyncio.get_running_loop()
        running.call_soon(lambda: threading.Timer(0.05, release.set).start())
        result = await asyncio.wait_for(running.run_in_executor(None, work), timeout=1)
        return result, running.time()

    try:
        result, now = loop.run_until_complete(main())
    finally:
        loop.close()
    assert result == "done"
    assert now == 0.0


async def _connector_calls(mt5: aiomt5.AsyncMT5Connector) -> None:
    for _ in range(50):
        await mt5.call("symbol_info_tick", "EURUSD")
        await asyncio.sleep(30)


def test_backend_calls_never_time_out_in_virtual_time(recording: Recording) -> None:
    """The worker thread's calls hold the clock: none hits its (virtual) deadline."""
    result = replay.run(_connector_calls, recording=recording, start=REPLAY_FROM)
    assert result.simulated_until == pytest.approx(
        datetime.fromisoformat(REPLAY_FROM).timestamp() + 50 * 30, abs=31
    )


def test_call_many_runs_inline_in_virtual_time_like_single_calls(recording: Recording) -> None:
    """A batch on the virtual-time loop: the same results as single calls, every call counted,
    and a failure typed as call() types it."""
    seen: dict[str, Any] = {}

    async def scan(mt5: aiomt5.AsyncMT5Connector) -> None:
        one = await mt5.call("symbol_info_tick", "EURUSD")
        many = await mt5.call_many("symbol_info_tick", ["EURUSD", "EURUSD"])
        before = mt5.get_connection_stats().calls
        mixed = await mt5.call_many("symbol_info", ["EURUSD", "NOPE"], return_exceptions=True)
        seen.update(
            one=one, many=many, mixed=mixed, counted=mt5.get_connection_stats().calls - before
        )
        with pytest.raises(aiomt5.MT5SymbolNotFoundError):
            await mt5.call_many("symbol_info", ["NOPE"])

    replay.run(scan, recording=recording, start=REPLAY_FROM)
    assert seen["many"] == [seen["one"], seen["one"]]  # virtual time stood still between them
    assert seen["mixed"][0].name == "EURUSD"
    assert isinstance(seen["mixed"][1], aiomt5.MT5SymbolNotFoundError)
    assert seen["counted"] == 2


# ====================================================================== the runner


def _equity_matches_deals(result: replay.ReplayResult) -> None:
    deals = result.deal_rows
    net = deals["profit"] + deals["commission"] + deals["swap"] + deals["fee"]
    seconds = deals["time_msc"] / 1000
    by_server = deals["reason"] != c.DEAL_REASON_EXPERT  # stops: booked as their tick comes
    rows = result.equity_rows
    for row in rows[:-1]:
        # A sample at T is the account once the ticks up to T are in, before the bot acts at T.
        done = (seconds < row["time"]) | (by_server & (seconds == row["time"]))
        booked = float(net[done].sum())
        assert row["balance"] == pytest.approx(result.initial_balance + booked, abs=1e-6)
    # The last row is the account once the bot has stopped: every deal is in.
    assert rows[-1]["balance"] == pytest.approx(result.initial_balance + float(net.sum()))
    assert result.final_balance == pytest.approx(result.initial_balance + float(net.sum()))
    assert result.summary.net_profit == pytest.approx(float(net.sum()))


@pytest.fixture(scope="module")
def bot_run(store: HistoryStore) -> replay.ReplayResult:
    return replay.run(BOT, store=store.root, start=REPLAY_FROM, end=REPLAY_TO, seed=3,
                      args=["--bars", "100000"])  # fmt: skip


def test_the_example_bot_trades_on_the_recording(bot_run: replay.ReplayResult) -> None:
    summary = bot_run.summary
    assert summary.trades > 0
    assert bot_run.simulated_until == pytest.approx(datetime.fromisoformat(REPLAY_TO).timestamp())
    assert len(bot_run.equity_rows) == 3 * 60 + 1
    assert 0 < summary.exposure <= 1
    assert summary.win_rate is not None
    assert 0 <= summary.win_rate <= 1
    assert summary.max_drawdown >= 0
    deals = bot_run.deal_rows
    assert set(deals["magic"].tolist()) == {20261124}  # examples/bot.py's MAGIC
    opening = deals[deals["entry"] == c.DEAL_ENTRY_IN]
    assert all(comment.endswith("ma-cross") for comment in opening["comment"].tolist())
    assert (deals["time_msc"] >= datetime.fromisoformat(REPLAY_FROM).timestamp() * 1000).all()


def test_the_equity_curve_matches_the_deals(bot_run: replay.ReplayResult) -> None:
    _equity_matches_deals(bot_run)


def test_the_same_seed_gives_identical_deals(
    store: HistoryStore, bot_run: replay.ReplayResult
) -> None:
    again = replay.run(BOT, store=store.root, start=REPLAY_FROM, end=REPLAY_TO, seed=3,
                       args=["--bars", "100000"])  # fmt: skip
    assert np.array_equal(again.deal_rows, bot_run.deal_rows)
    assert np.array_equal(again.equity_rows, bot_run.equity_rows)


def test_a_replay_runs_without_health_checks_unless_asked(
    recording: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    async def bot(mt5: aiomt5.AsyncMT5Connector) -> None:
        seen.append(mt5.settings.health_check)

    monkeypatch.delenv("MT5_HEALTH_CHECK", raising=False)
    replay.run(bot, recording=recording, start=REPLAY_FROM)
    monkeypatch.setenv("MT5_HEALTH_CHECK", "true")
    replay.run(bot, recording=recording, start=REPLAY_FROM)
    assert seen == [False, True]
    assert os.environ["MT5_HEALTH_CHECK"] == "true"  # the caller's environment is restored


def test_skipping_idle_polls_changes_no_deal(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar stream sleeps through polls that cannot find a closed bar (``server_time``):
    the bot sees the same bars at the same instants, so it makes the same deals, bit for bit,
    as when it polls every second. (With the replay's defaults: health checks off, since a
    probe in an idle gap would cost pipe time.)
    """
    monkeypatch.delenv("MT5_HEALTH_CHECK", raising=False)
    runs = {}
    for skipping in (True, False):
        if not skipping:  # the stream cannot see the clock: it polls every second
            monkeypatch.setattr(SimTerminal, "server_time", lambda self: None)
        runs[skipping] = replay.run(BOT, store=store.root, start=REPLAY_FROM, end=REPLAY_TO,
                                    seed=3, args=["--bars", "100000"])  # fmt: skip
    assert len(runs[True].deal_rows) > 4
    assert np.array_equal(runs[True].deal_rows, runs[False].deal_rows)
    assert np.array_equal(runs[True].equity_rows, runs[False].equity_rows)
    # Far fewer clock jumps: about one per bar, not one per second.
    assert runs[True].jumps * 10 < runs[False].jumps


def test_a_stream_skipping_polls_gets_each_bar_at_the_same_instant_across_a_gap(
    recorded: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recording with a two-hour hole (market closed): the stream sleeps to the reopening,
    yet yields the same bars at the same simulated instants as polling every second."""
    monkeypatch.delenv("MT5_HEALTH_CHECK", raising=False)
    hole = (recorded["time"] >= MONDAY.timestamp() + 10 * 3600) & (
        recorded["time"] < MONDAY.timestamp() + 12 * 3600
    )
    market = Recording([RecordedSeries("EURUSD", recorded[~hole])])
    seen: dict[bool, list[tuple[int, float]]] = {}
    for skipping in (True, False):
        if not skipping:
            monkeypatch.setattr(SimTerminal, "server_time", lambda self: None)
        got: list[tuple[int, float]] = []

        async def bot(mt5: aiomt5.AsyncMT5Connector, got: list[tuple[int, float]] = got) -> None:
            async with mt5.stream_bars("EURUSD", "M1") as stream:
                async for bar in stream:  # the replay's end cancels the bot: append each
                    got.append((bar.time, mt5.backend.clock.now()))  # noqa: PERF401

        replay.run(bot, recording=market, start=MONDAY.timestamp() + 9.5 * 3600,
                   end=MONDAY.timestamp() + 12.5 * 3600, seed=5)  # fmt: skip
        seen[skipping] = got
    times = [t for t, _ in seen[True]]
    assert times == sorted(set(times))
    assert len(times) > 50
    assert not any(10 * 3600 <= t - MONDAY.timestamp() < 12 * 3600 - 60 for t in times)
    assert seen[True] == seen[False]


def test_server_time_only_where_the_clock_follows_the_loop(recording: Recording) -> None:
    fixed = _terminal(recording)
    assert fixed.server_time() is None  # a test's fixed clock: streams poll as before
    vclock = [100.0]
    terminal = recording.terminal(clock=SimClock.following(lambda: vclock[0], recording.first))
    assert terminal.server_time() == recording.first
    vclock[0] += 2.5
    assert terminal.server_time() == recording.first + 2.5
    terminal.clock.set(recording.first)  # fixed from now on
    assert terminal.server_time() is None


def test_a_recorded_market_says_when_it_opens_again(recording: Recording) -> None:
    first = recording.first
    # 2026-03-02 is a Monday: the recording has the weekend before it closed.
    terminal = recording.terminal(clock=SimClock.fixed(first - 3600))
    assert terminal.initialize()
    assert terminal.market_opens_at("EURUSD") == datetime.fromtimestamp(first, UTC)
    terminal.clock.set(first + 30)
    assert terminal.market_opens_at("EURUSD") is None  # open now
    terminal.clock.set(recording.last + 120)
    assert terminal.market_opens_at("EURUSD") is None  # never again


def test_deals_fill_at_replayed_prices(bot_run: replay.ReplayResult) -> None:
    assert bot_run.recording is not None
    terminal = _terminal(bot_run.recording, seed=3)
    for deal in bot_run.deal_rows[:20]:
        terminal.clock.set(deal["time_msc"] / 1000)
        tick = terminal.symbol_info_tick("EURUSD")  # the replayed quote at the deal's moment
        expected = tick.ask if deal["type"] == c.DEAL_TYPE_BUY else tick.bid
        assert deal["price"] == expected


def test_frames_and_report(bot_run: replay.ReplayResult, tmp_path: pathlib.Path) -> None:
    pytest.importorskip("pandas")
    deals, equity = bot_run.deals, bot_run.equity
    assert len(deals) == len(bot_run.deal_rows)
    assert list(equity.columns[:4]) == ["time", "balance", "equity", "margin"]
    assert str(equity["time"].dt.tz) == "UTC"
    files = bot_run.write_report(tmp_path / "out" / "report.html")
    names = sorted(f.name for f in files)
    assert names == ["report.deals.csv", "report.deals.parquet", "report.equity.svg", "report.html"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("<svg") == 2  # equity and balance; EURUSD with its trades
    assert "polygon" in page  # trade markers
    urls = set(re.findall(r"https?://[^\"' >]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}  # self-contained: nothing to fetch
    csv = (tmp_path / "out" / "report.deals.csv").read_text().splitlines()
    assert len(csv) == len(bot_run.deal_rows) + 1
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "out" / "report.deals.parquet").num_rows == len(deals)


def test_a_synchronous_metatrader5_script_replays_too(
    recording: Recording, tmp_path: pathlib.Path
) -> None:
    script = tmp_path / "sync_bot.py"
    script.write_text(
        "import time\n"
        "import aiomt5.sim\n"
        "aiomt5.sim.install()\n"
        "import MetaTrader5 as mt5\n"
        "assert mt5.initialize()\n"
        "for i in range(10_000):\n"
        "    tick = mt5.symbol_info_tick('EURUSD')\n"
        "    if i % 60 == 0:\n"
        "        side = mt5.ORDER_TYPE_BUY if (i // 60) % 2 == 0 else mt5.ORDER_TYPE_SELL\n"
        "        for p in mt5.positions_get() or ():\n"
        "            mt5.Close('EURUSD', ticket=p.ticket)\n"
        "        mt5.order_send({'action': mt5.TRADE_ACTION_DEAL, 'symbol': 'EURUSD',\n"
        "                        'volume': 0.1, 'type': side,\n"
        "                        'price': tick.ask if side == 0 else tick.bid})\n"
        "    time.sleep(60)\n"
    )
    result = replay.run(script, recording=recording, start=REPLAY_FROM, end=REPLAY_TO)
    assert result.summary.trades >= 2
    assert result.simulated_until == pytest.approx(datetime.fromisoformat(REPLAY_TO).timestamp())
    _equity_matches_deals(result)


def test_a_bot_that_never_sleeps_still_reaches_the_end(recording: Recording) -> None:
    """Each call takes simulated pipe time, so busy polling moves the clock as it would live."""

    async def busy(mt5: aiomt5.AsyncMT5Connector) -> None:
        while True:
            await mt5.call("symbol_info_tick", "EURUSD")

    start = datetime.fromisoformat(REPLAY_FROM).timestamp()
    result = replay.run(busy, recording=recording, start=start, end=start + 5, call_cost=0.001)
    assert result.simulated_until == pytest.approx(start + 5)


def test_speed_mode_runs_on_a_running_clock(recording: Recording) -> None:
    """``speed``: the simulated clock runs N times real time (a short, real-time run)."""
    start = datetime.fromisoformat(REPLAY_FROM)

    async def bot(mt5: aiomt5.AsyncMT5Connector) -> None:
        while True:
            await mt5.call("symbol_info_tick", "EURUSD")
            await asyncio.sleep(0.01)

    result = replay.run(bot, recording=recording, start=start, end=start.timestamp() + 240,
                        speed=1200)  # fmt: skip
    assert result.mode == "x1200"
    assert result.simulated_until == pytest.approx(start.timestamp() + 240, abs=30)
    assert len(result.equity_rows) >= 3


def test_bad_arguments_say_what_is_wrong(recording: Recording, store: HistoryStore) -> None:
    async def bot(mt5: Any) -> None:
        pass

    with pytest.raises(replay.ReplayError, match="exactly one market"):
        replay.run(bot)
    with pytest.raises(replay.ReplayError, match="within the recording"):
        replay.run(bot, recording=recording, start="2020-01-01T00:00:00Z")
    with pytest.raises(replay.ReplayError, match="speed"):
        replay.run(bot, recording=recording, speed=-1)
    with pytest.raises(replay.ReplayError, match="balance"):
        replay.run(bot, recording=recording, balance=0)
    with pytest.raises(replay.ReplayError, match="no such bot script"):
        replay.run(ROOT / "nope.py", store=store.root)

    async def broken(mt5: Any) -> None:
        raise KeyError("oops")

    with pytest.raises(replay.BotError, match="KeyError") as failed:
        replay.run(broken, recording=recording)
    assert isinstance(failed.value.__cause__, KeyError)
    with pytest.raises(replay.ReplayError, match="async def"):
        replay.run(lambda mt5: None, recording=recording)  # type: ignore[arg-type,return-value]


# ====================================================================== the command


def test_the_replay_command_prints_the_summary_and_writes_the_report(
    store: HistoryStore, tmp_path: pathlib.Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5_")}
    report = tmp_path / "r" / "replay.html"
    command = [sys.executable, "-m", "aiomt5", "replay", str(BOT), "--store", str(store.root),
               "--from", REPLAY_FROM, "--to", "2026-03-03T09:00:00+00:00", "--fast", "--seed",
               "3", "--report", str(report), "--", "--bars", "100000"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=110, env=env,
                          check=False, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for label in ("trades", "net profit", "max drawdown", "win rate", "profit factor", "exposure"):
        assert label in done.stdout
    assert "replay" in done.stderr  # the progress bar
    assert report.exists()
    assert report.with_suffix(".deals.csv").exists()
    as_json = subprocess.run(
        [*command[:4], "--json", *command[4:]],
        capture_output=True, text=True, timeout=110, env=env, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert payload["summary"]["trades"] >= 0
    assert payload["mode"] == "fast"


def test_the_replay_command_refuses_bad_input(tmp_path: pathlib.Path) -> None:
    from aiomt5._cli import main

    with pytest.raises(SystemExit) as exited:
        main(["replay", str(BOT)])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["replay", str(BOT), "--store", str(tmp_path / "none")])
    assert exited.value.code == 1


def test_the_m1_short_path_serves_what_the_general_path_builds(recording: Recording) -> None:
    from aiomt5.sim._market import MarketModel
    from aiomt5.sim._recorded import RecordedMarket

    spec = recording.specs["EURUSD"]
    market = RecordedMarket(spec, 2, recording.series["EURUSD"])
    rng = np.random.default_rng(1)
    nows = rng.integers(recording.first * 1000 - 120_000, recording.last * 1000 + 180_000, 300)
    for now in [*nows.tolist(), recording.first * 1000, recording.last * 1000 + 59_999]:
        for start_pos, count in ((0, 1), (0, 64), (1, 3), (5, 2000), (10_000, 5), (0, 0)):
            fast = market.rates_from_pos(c.TIMEFRAME_M1, start_pos, count, now)
            general = MarketModel.rates_from_pos(market, c.TIMEFRAME_M1, start_pos, count, now)
            assert np.array_equal(fast, general), (now, start_pos, count)


def test_the_replay_command_takes_files_from_rates_out(
    recorded: np.ndarray, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiomt5._cli import main

    _write_array(recorded[:600], tmp_path / "bars.csv")  # what `aiomt5 rates --out` writes
    script = tmp_path / "hold.py"
    script.write_text(
        "import asyncio\n"
        "import aiomt5\n"
        "async def main():\n"
        "    async with aiomt5.AsyncMT5Connector(aiomt5.MT5Settings()) as mt5:\n"
        "        await mt5.buy('EURUSD', 0.1)\n"
        "        while True:\n"
        "            await asyncio.sleep(30)\n"
        "asyncio.run(main())\n"
    )
    report = tmp_path / "hold.html"
    with pytest.raises(SystemExit) as exited:
        main(["replay", str(script), "--data", f"EURUSD={tmp_path / 'bars.csv'}",
              "--balance", "5000", "--report", str(report)])  # fmt: skip
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "balance        5000.00 -> 5000.00" in out
    assert "exposure       100.0%" in out
    assert report.exists()


@pytest.mark.soak
@pytest.mark.timeout(1800)  # minutes on a loaded 2-core machine (see docs/replay.md)
def test_a_month_replays_examples_bot(tmp_path: pathlib.Path) -> None:
    """Issue 18's "done when": a month of M1, examples/bot.py polling every second, --fast."""
    month_end = datetime(2026, 4, 1, tzinfo=UTC)
    store = asyncio.run(_record(tmp_path / "month", MONDAY, month_end))
    began = time.perf_counter()
    result = replay.run(BOT, store=store.root, seed=1, args=["--bars", "1000000"])
    wall = time.perf_counter() - began
    print(f"\n{result.text()}\nwall {wall:.1f} s")
    assert result.simulated_until == pytest.approx(result.end)
    assert result.summary.trades > 100
    _equity_matches_deals(result)
