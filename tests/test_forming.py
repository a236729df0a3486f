"""The forming bar: documented, controllable, and never yielded twice by history + stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from aiomt5 import AsyncMT5Connector, MT5InvalidArgumentError, Timeframe
from aiomt5._market._forming import period_end
from aiomt5.sim import SimClock, SimTerminal
from aiomt5.testing import sim_settings

NOW = datetime(2026, 3, 2, 10, 32, 30, tzinfo=UTC)  # a Monday, inside the 10:30 M5 bar
FORMING = int(datetime(2026, 3, 2, 10, 30, tzinfo=UTC).timestamp())


class ClockSleep:
    """A stream's ``sleep`` that moves the simulator's clock instead of waiting."""

    def __init__(self, term: SimTerminal) -> None:
        self.term = term

    async def __call__(self, seconds: float) -> None:
        self.term.clock.advance(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def term() -> SimTerminal:
    return SimTerminal(seed=17, clock=SimClock.fixed(NOW))


@pytest.fixture
async def mt5(term: SimTerminal) -> AsyncIterator[AsyncMT5Connector]:
    async with AsyncMT5Connector(sim_settings(), backend=term) as connector:
        yield connector


async def take(stream: AsyncIterator[Any], n: int) -> list[Any]:
    return [await anext(stream) for _ in range(n)]


async def test_history_includes_the_forming_bar_unless_closed_only(
    mt5: AsyncMT5Connector,
) -> None:
    everything = await mt5.get_rates("EURUSD", "M5", count=6)
    assert int(everything["time"][-1]) == FORMING  # as MetaTrader5 does
    closed = await mt5.get_rates("EURUSD", "M5", count=6, closed_only=True)
    assert int(closed["time"][-1]) == FORMING - 300
    assert len(closed) == 6  # count counts closed bars
    assert closed[1:].tolist() == everything[:-1].tolist()
    frame = await mt5.get_rates_frame("EURUSD", "M5", count=6, closed_only=True)
    assert len(frame) == 6
    ranged = await mt5.get_rates(
        "EURUSD", "M5", datetime(2026, 3, 2, 10, tzinfo=UTC), NOW, closed_only=True
    )
    assert int(ranged["time"][-1]) == FORMING - 300


async def test_history_then_stream_has_no_bar_twice_and_none_missing(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    history = await mt5.get_rates("EURUSD", "M5", count=50, closed_only=True)
    last = datetime.fromtimestamp(int(history["time"][-1]), UTC)
    term.clock.advance(20 * 60)  # bars close between the download and the stream
    stream = mt5.stream_bars("EURUSD", "M5", since=last, poll_interval=60, sleep=ClockSleep(term))
    streamed = await take(stream, 8)
    await stream.aclose()
    times = np.concatenate([history["time"], [bar.time for bar in streamed]])
    assert np.all(np.diff(times) == 300)  # unique, ordered, no gap
    assert streamed[0].time == FORMING
    later = SimTerminal(seed=17, clock=SimClock.fixed(NOW + timedelta(hours=2)))
    assert later.initialize()
    final = later.copy_rates_range("EURUSD", 5, FORMING, FORMING)
    assert tuple(streamed[0])[1:] == tuple(final[0].tolist())  # the closed bar, not the partial


async def test_since_must_be_aware(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="since"):
        mt5.stream_bars("EURUSD", "M5", since=datetime(2026, 3, 2, 10, 0))


def test_period_end_of_a_month_bar_is_the_next_month() -> None:
    feb = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())
    assert period_end(Timeframe.MN1, feb) == int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
    assert period_end(Timeframe.H4, feb) == feb + 4 * 3600
