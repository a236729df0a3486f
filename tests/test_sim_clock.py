"""SimClock: wall and fixed modes, stepping, and the aware-time rule."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from aiomt5.sim import SimClock


def test_wall_clock_follows_time() -> None:
    clock = SimClock.wall()
    assert not clock.frozen
    assert abs(clock.now() - time.time()) < 5


def test_wall_clock_advance_adds_an_offset() -> None:
    clock = SimClock.wall()
    clock.advance(3600)
    assert clock.now() - time.time() > 3500


def test_fixed_clock_moves_only_when_told() -> None:
    clock = SimClock.fixed("2026-03-04T12:00:00Z")
    start = clock.now()
    assert clock.now() == start
    clock.advance(1.5)
    assert clock.now() == start + 1.5
    assert clock.now_msc() == int((start + 1.5) * 1000)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert clock.datetime() == datetime(2027, 1, 1, tzinfo=UTC)


def test_stepped_clock_advances_on_every_read() -> None:
    clock = SimClock.fixed(1_000_000.0, step=0.5)
    assert [clock.now() for _ in range(3)] == [1_000_000.0, 1_000_000.5, 1_000_001.0]


def test_clock_rejects_naive_datetimes_and_going_back() -> None:
    with pytest.raises(ValueError, match="naive"):
        SimClock.fixed(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="forward"):
        SimClock.fixed(0.0).advance(-1)
    with pytest.raises(TypeError):
        SimClock.fixed([1])  # type: ignore[arg-type]
