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


class _FakeTime:
    """Stands in for the ``time`` module inside ``aiomt5.sim._clock``: time moves when told."""

    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.mono = 1000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> _FakeTime:
    import aiomt5.sim._clock as clock_module

    fake = _FakeTime(wall=1_781_956_800.0)  # Sat 2026-06-20 12:00 UTC
    monkeypatch.setattr(clock_module, "time", fake)
    return fake


def test_running_clock_starts_where_told_and_runs_at_its_speed(fake_time: _FakeTime) -> None:
    clock = SimClock.running("2026-06-15T10:00:00Z", speed=60)
    start = datetime(2026, 6, 15, 10, tzinfo=UTC).timestamp()
    assert not clock.frozen
    assert clock.speed == 60
    assert clock.now() == start
    fake_time.sleep(1.5)
    assert clock.now() == start + 90  # a simulated minute and a half
    clock.advance(30)
    assert clock.now() == start + 120  # advance jumps ahead, and the clock keeps running
    fake_time.sleep(1)
    assert clock.now() == start + 180


def test_running_clock_ignores_the_wall_clock_being_set(fake_time: _FakeTime) -> None:
    clock = SimClock.running("2026-06-15T10:00:00Z")
    fake_time.wall += 86_400  # someone sets the machine's clock: monotonic time did not move
    assert clock.now() == datetime(2026, 6, 15, 10, tzinfo=UTC).timestamp()


def test_running_clock_without_a_start_starts_now(fake_time: _FakeTime) -> None:
    clock = SimClock.running(speed=2)
    fake_time.sleep(10)
    assert clock.now() == fake_time.wall + 10  # started at the old wall time, ran 20 s


@pytest.mark.parametrize("speed", [0, -1, float("inf"), float("nan")])
def test_running_clock_refuses_a_speed_that_is_not_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        SimClock.running(speed=speed)


def test_set_freezes_a_running_clock(fake_time: _FakeTime) -> None:
    clock = SimClock.running("2026-06-15T10:00:00Z")
    clock.set("2026-06-16T10:00:00Z")
    fake_time.sleep(5)
    assert clock.frozen
    assert clock.now() == datetime(2026, 6, 16, 10, tzinfo=UTC).timestamp()
    assert "fixed" in repr(clock)
