"""The simulator built from settings: one clock rule for the connector, install(), serve and CLI."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

import aiomt5.sim
import aiomt5.sim._setup as setup
from aiomt5 import AsyncMT5Connector, MT5Settings
from aiomt5.sim import SimTerminal, sim_terminal_from_settings
from aiomt5.sim._setup import sim_clock
from aiomt5.sim._symbols import find_spec

SATURDAY_NOON = datetime(2026, 6, 20, 12, tzinfo=UTC)
SUNDAY_2330 = datetime(2026, 6, 21, 23, 30, tzinfo=UTC)
WEDNESDAY_NOON = datetime(2026, 6, 17, 12, tzinfo=UTC)
FX_HOURS = find_spec("EURUSD").hours  # type: ignore[union-attr]


def settings(**values: object) -> MT5Settings:
    return MT5Settings(_env_file=None, backend="sim", **values)  # type: ignore[arg-type]


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch):
    def at(when: datetime) -> None:
        monkeypatch.setattr(setup.time, "time", lambda: when.timestamp())

    return at


# ----------------------------------------------------------------------------- trading hours


def test_fx_hours_say_when_a_closed_market_opens() -> None:
    assert not FX_HOURS.is_open_at(SATURDAY_NOON.timestamp())
    assert (
        FX_HOURS.opens_at(SATURDAY_NOON.timestamp())
        == datetime(2026, 6, 22, tzinfo=UTC).timestamp()
    )
    assert FX_HOURS.opens_at(WEDNESDAY_NOON.timestamp()) == WEDNESDAY_NOON.timestamp()


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (SATURDAY_NOON, datetime(2026, 6, 19, 12, tzinfo=UTC)),  # Friday, same hour
        (WEDNESDAY_NOON, WEDNESDAY_NOON),  # open: unchanged
        # Friday 23:30 leaves under an hour before the close: Thursday 23:30.
        (SUNDAY_2330, datetime(2026, 6, 18, 23, 30, tzinfo=UTC)),
    ],
)
def test_the_same_hour_of_the_latest_open_session(now: datetime, expected: datetime) -> None:
    assert FX_HOURS.same_time_when_open(now.timestamp()) == expected.timestamp()


def test_the_simulator_says_when_a_closed_market_opens_again() -> None:
    terminal = SimTerminal(clock=aiomt5.sim.SimClock.fixed(SATURDAY_NOON))
    assert terminal.market_opens_at("EURUSD") == datetime(2026, 6, 22, tzinfo=UTC)
    assert terminal.market_opens_at("BTCUSD") is None  # open: crypto trades at weekends
    assert terminal.market_opens_at("NOSUCH") is None


# ----------------------------------------------------------------------------- the clock rule


def test_sim_start_starts_a_running_clock_at_sim_speed(wall) -> None:
    wall(SATURDAY_NOON)
    choice = sim_clock(settings(sim_start="2026-06-15T10:00:00Z", sim_speed=60), open_market=True)
    assert choice.note is None  # the user chose: nothing to say
    assert not choice.clock.frozen
    assert choice.clock.speed == 60
    assert abs(choice.clock.now() - datetime(2026, 6, 15, 10, tzinfo=UTC).timestamp()) < 60


def test_library_default_is_the_wall_clock_even_at_a_weekend(wall) -> None:
    wall(SATURDAY_NOON)
    choice = sim_clock(settings())
    assert (choice.note, choice.clock.frozen, choice.clock.speed) == (None, False, 1.0)


def test_open_market_moves_a_weekend_start_to_friday_and_says_so(wall) -> None:
    wall(SATURDAY_NOON)
    choice = sim_clock(settings(sim_speed=2), open_market=True)
    assert choice.note is not None
    assert "Sat 2026-06-20 12:00 UTC" in choice.note
    assert "Fri 2026-06-19 12:00 UTC" in choice.note
    assert choice.clock.speed == 2
    assert abs(choice.clock.now() - datetime(2026, 6, 19, 12, tzinfo=UTC).timestamp()) < 60


def test_open_market_leaves_an_open_wall_clock_alone(wall) -> None:
    wall(WEDNESDAY_NOON)
    assert sim_clock(settings(), open_market=True).note is None


def test_terminal_from_settings_takes_seed_suffix_and_clock() -> None:
    terminal, note = sim_terminal_from_settings(
        settings(sim_seed=9, sim_symbol_suffix=".m", sim_start="2026-06-17T12:00:00Z")
    )
    assert note is None
    assert (terminal.seed, terminal.symbol_suffix) == (9, ".m")
    assert terminal.clock.speed == 1.0


def test_install_honours_the_mt5_sim_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MT5_SIM_START", "2026-06-17T12:00:00Z")
    monkeypatch.setenv("MT5_SIM_SEED", "5")
    mt5 = aiomt5.sim.install()
    try:
        assert mt5.terminal.seed == 5
        assert abs(mt5.terminal.clock.now() - WEDNESDAY_NOON.timestamp()) < 60
    finally:
        aiomt5.sim.uninstall()


def test_install_on_a_closed_market_warns_once_and_opens_it(
    wall, caplog: pytest.LogCaptureFixture
) -> None:
    wall(SATURDAY_NOON)
    with caplog.at_level("WARNING", logger="aiomt5.sim"):
        mt5 = aiomt5.sim.install(settings=settings())
    try:
        assert [r.levelname for r in caplog.records] == ["WARNING"]
        assert "MT5_SIM_START" in caplog.records[0].getMessage()
        assert mt5.initialize()
        assert mt5.terminal.market_opens_at("EURUSD") is None  # open
    finally:
        aiomt5.sim.uninstall()


def test_compat_install_on_the_simulator_opens_a_closed_market_like_sim_install(
    wall, caplog: pytest.LogCaptureFixture
) -> None:
    """A legacy script run through compat.install(backend="sim") on a Saturday trades Friday."""
    import aiomt5.compat

    wall(SATURDAY_NOON)
    with caplog.at_level("WARNING", logger="aiomt5.sim"):
        mt5 = aiomt5.compat.install(backend="sim", testing=True, health_check=False)
    try:
        assert [r.levelname for r in caplog.records] == ["WARNING"]
        assert "MT5_SIM_START" in caplog.records[0].getMessage()
        assert mt5.initialize(), mt5.last_error()
        tick = mt5.symbol_info_tick("EURUSD")
        assert datetime.fromtimestamp(tick.time, UTC).weekday() == 4  # Friday
        result = mt5.order_send(
            {
                "action": mt5.TRADE_ACTION_DEAL,
                "symbol": "EURUSD",
                "volume": 0.1,
                "type": mt5.ORDER_TYPE_BUY,
                "price": tick.ask,
                "type_filling": mt5.ORDER_FILLING_IOC,
            }
        )
        assert result.retcode == mt5.TRADE_RETCODE_DONE, result
    finally:
        aiomt5.compat.uninstall()


def test_compat_install_keeps_an_explicit_sim_start(wall, caplog: pytest.LogCaptureFixture) -> None:
    import aiomt5.compat

    wall(SATURDAY_NOON)
    with caplog.at_level("WARNING", logger="aiomt5.sim"):
        mt5 = aiomt5.compat.install(
            backend="sim", sim_start=SATURDAY_NOON, testing=True, health_check=False
        )
    try:
        assert caplog.records == []
        assert mt5.initialize(), mt5.last_error()
        tick = mt5.symbol_info_tick("EURUSD")
        assert datetime.fromtimestamp(tick.time, UTC) < SATURDAY_NOON  # the market is closed
    finally:
        aiomt5.compat.uninstall()


async def test_a_sped_up_simulator_streams_fx_ticks_within_a_second_of_wall_time() -> None:
    # MT5_SIM_START=<a Monday 10:00Z> MT5_SIM_SPEED=60: a stream yields at once, on any day.
    started = time.monotonic()
    options = settings(testing=True, sim_start="2026-06-15T10:00:00Z", sim_speed=60)
    async with (
        AsyncMT5Connector(options) as mt5,
        asyncio.timeout(5),
        mt5.stream_ticks("EURUSD", poll_interval=0.02) as ticks,
    ):
        tick = await anext(ticks)
    assert tick.symbol == "EURUSD"
    assert tick.datetime >= datetime(2026, 6, 15, 10, tzinfo=UTC)
    assert time.monotonic() - started < 1.0
