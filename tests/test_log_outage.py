"""Repeated warnings during an outage: the first is logged, the rest summed up when it ends."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from aiomt5 import AsyncMT5Connector, Trader
from aiomt5._core._log import Outage, get_logger
from aiomt5.sim import SimClock, SimTerminal
from aiomt5.testing import sim_settings

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _events(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [str(getattr(r, "event", r.getMessage())) for r in caplog.records if r.levelno == level]


def test_an_outage_logs_one_warning_and_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aiomt5.test")
    outage = Outage(get_logger("aiomt5.test"))
    outage.ended("aiomt5.test.resumed")  # nothing to end yet
    for _ in range(5):
        outage.warning("aiomt5.test.lost", detail="x")
    assert outage.active
    outage.ended("aiomt5.test.resumed")
    assert _events(caplog, logging.WARNING) == ["aiomt5.test.lost"]
    assert _events(caplog, logging.DEBUG) == ["aiomt5.test.lost"] * 4
    (summary,) = [r for r in caplog.records if r.levelno == logging.INFO]
    assert summary.event == "aiomt5.test.resumed"
    assert summary.retries == 5
    assert not outage.active


async def test_a_stream_through_a_long_outage_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aiomt5.streams")
    term = SimTerminal(seed=4, clock=SimClock.fixed(NOW))
    polls = 0

    async def sleep(seconds: float) -> None:
        nonlocal polls
        polls += 1
        if polls == 2:
            term.faults.drop_trade_server()
        if polls == 30:
            term.faults.restore_trade_server()
        term.clock.advance(seconds)
        await asyncio.sleep(0)

    async with AsyncMT5Connector(sim_settings(), backend=term) as mt5:
        stream = mt5.stream_ticks("EURUSD", poll_interval=1.0, sleep=sleep)
        while polls < 40:
            await anext(stream)
        await stream.aclose()
    warnings = _events(caplog, logging.WARNING)
    assert warnings.count("aiomt5.streams.trade_server_down") == 1
    resumed = [r for r in caplog.records if getattr(r, "event", "") == "aiomt5.streams.resumed"]
    assert len(resumed) == 1
    assert resumed[0].retries > 10


async def test_a_late_order_result_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aiomt5")
    term = SimTerminal(seed=5, clock=SimClock.fixed(NOW))
    ambiguous = asyncio.Event()
    async with AsyncMT5Connector(sim_settings(), backend=term) as mt5:
        trader = Trader(mt5, settle=0.0, on_event=lambda e: ambiguous.set())
        hang = term.faults.hang("order_send")
        # timeout bounds the preparing reads too (one deadline): room for them, then the hang
        sending = asyncio.create_task(trader.buy("EURUSD", 0.1, timeout=0.2))
        await ambiguous.wait()  # the send timed out mid-call: its result will come late
        hang.release()
        result = await sending
        trader.close()
    assert result.reconciled
    late = [e for e in _events(caplog, logging.WARNING) if e.endswith("late_result")]
    assert late == ["aiomt5.worker.late_result"]
