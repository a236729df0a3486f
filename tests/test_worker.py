"""The worker thread: one caller thread, FIFO, cancellation, timeouts, wedge detection, close."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from aiomt5._core._errors import (
    MT5ClosedError,
    MT5OutcomeUnknownError,
    MT5TimeoutError,
    MT5WorkerBusyError,
)
from aiomt5._core._events import ConnectorEvent, LateResult, WorkerWedged
from aiomt5._core._worker import Worker, WorkerState, plain_call


class Gate:
    """Makes a worker call block until released (no sleeping anywhere)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()

    def block(self, value: Any = "released") -> Any:
        self.entered.set()
        if not self._open.wait(10):
            raise AssertionError("gate never released")
        return value

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 10)

    def release(self) -> None:
        self._open.set()


class Gates:
    def __init__(self) -> None:
        self.made: list[Gate] = []

    def __call__(self) -> Gate:
        self.made.append(Gate())
        return self.made[-1]

    def release_all(self) -> None:
        for gate in self.made:
            gate.release()


@pytest.fixture
def gates() -> Iterator[Gates]:
    made = Gates()
    yield made
    made.release_all()


class Events:
    def __init__(self) -> None:
        self.items: list[ConnectorEvent] = []
        self.arrived = asyncio.Event()

    def __call__(self, event: ConnectorEvent) -> None:
        self.items.append(event)
        self.arrived.set()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
async def worker(events: Events, gates: Gates) -> AsyncIterator[Worker]:
    w = Worker(on_event=events, wedged_after=60.0)
    w.start()
    yield w
    gates.release_all()
    await w.aclose(timeout=10)


def ok() -> str:
    return "ok"


def state(worker: Worker) -> WorkerState:
    """Read the state through a call, so mypy does not narrow it across awaits."""
    return worker.state


async def test_every_call_runs_on_the_dedicated_worker_thread(worker: Worker) -> None:
    names = await asyncio.gather(
        *(
            worker.run("terminal_info", lambda: threading.current_thread().name, timeout=5)
            for _ in range(20)
        )
    )
    assert len(set(names)) == 1
    assert names[0].startswith("aiomt5-worker")
    assert names[0] != threading.current_thread().name


async def test_calls_run_in_submission_order(worker: Worker) -> None:
    order: list[int] = []
    await asyncio.gather(
        *(worker.run("terminal_info", order.append, (i,), timeout=5) for i in range(200))
    )
    assert order == list(range(200))


async def test_contextvars_of_the_caller_reach_the_worker(worker: Worker) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("strategy-7")
    assert await worker.run("terminal_info", var.get, timeout=5) == "strategy-7"


async def test_exceptions_raised_on_the_worker_reach_the_caller(worker: Worker) -> None:
    def boom() -> None:
        raise ValueError("from the worker")

    with pytest.raises(ValueError, match="from the worker"):
        await worker.run("terminal_info", boom, timeout=5)


async def test_keyword_arguments_are_passed_through(worker: Worker) -> None:
    def join(a: str, *, b: str) -> str:
        return a + b

    assert await worker.run("symbols_get", join, ("x",), {"b": "y"}, timeout=5) == "xy"


async def test_call_cancelled_while_queued_never_runs(
    worker: Worker, gates: Callable[[], Gate]
) -> None:
    gate = gates()
    first = asyncio.create_task(worker.run("terminal_info", gate.block, timeout=None))
    await gate.wait_entered()
    sent: list[str] = []
    second = asyncio.create_task(worker.run("order_send", sent.append, ("order",), timeout=None))
    await asyncio.sleep(0)  # let it queue
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    gate.release()
    assert await first == "released"
    assert await worker.run("terminal_info", ok, timeout=5) == "ok"  # FIFO: the queue drained
    assert sent == []
    assert worker.cancelled_before_start == 1


async def test_call_timed_out_while_queued_never_runs(
    worker: Worker, gates: Callable[[], Gate]
) -> None:
    gate = gates()
    first = asyncio.create_task(worker.run("terminal_info", gate.block, timeout=None))
    await gate.wait_entered()
    sent: list[str] = []
    with pytest.raises(MT5TimeoutError, match="while queued") as info:
        await worker.run("order_send", sent.append, ("order",), timeout=0.01)
    assert info.value.function == "order_send"
    gate.release()
    await first
    assert await worker.run("terminal_info", ok, timeout=5) == "ok"
    assert sent == []


async def test_read_timing_out_mid_call_is_abandoned_and_counted(
    worker: Worker, gates: Callable[[], Gate]
) -> None:
    gate = gates()
    with pytest.raises(MT5TimeoutError, match="abandoned"):
        await worker.run("copy_rates_from_pos", gate.block, timeout=0.01)
    assert worker.abandoned == 1
    assert state(worker) is WorkerState.BUSY
    gate.release()
    assert await worker.run("terminal_info", ok, timeout=5) == "ok"
    assert state(worker) is WorkerState.IDLE


async def test_write_timing_out_mid_call_raises_outcome_unknown_and_reports_the_late_result(
    worker: Worker, gates: Callable[[], Gate], events: Events
) -> None:
    gate = gates()
    with pytest.raises(MT5OutcomeUnknownError) as info:
        await worker.run("order_send", gate.block, ({"volume": 0.1},), timeout=0.01)
    assert not isinstance(info.value, TimeoutError)  # must not be retried like a timeout
    assert events.items == []
    gate.release()
    await events.arrived.wait()
    (late,) = events.items
    assert isinstance(late, LateResult)
    assert late.function == "order_send"
    assert late.result == {"volume": 0.1}
    assert late.error is None
    assert worker.late_results == 1


async def test_cancelled_write_still_reports_its_late_result(
    worker: Worker, gates: Callable[[], Gate], events: Events
) -> None:
    gate = gates()
    task = asyncio.create_task(worker.run("symbol_select", gate.block, ("EURUSD",), timeout=None))
    await gate.wait_entered()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.release()
    await events.arrived.wait()
    assert [type(e) for e in events.items] == [LateResult]


async def test_late_write_failure_is_reported_with_its_error(
    worker: Worker, gates: Callable[[], Gate], events: Events
) -> None:
    gate = gates()

    def fail_after_gate() -> None:
        gate.block()
        raise RuntimeError("rejected late")

    with pytest.raises(MT5OutcomeUnknownError):
        await worker.run("order_send", fail_after_gate, timeout=0.01)
    gate.release()
    await events.arrived.wait()
    (late,) = events.items
    assert isinstance(late, LateResult)
    assert isinstance(late.error, RuntimeError)


async def test_wedged_worker_fails_new_calls_fast_and_recovers_when_the_call_returns(
    events: Events, gates: Callable[[], Gate]
) -> None:
    worker = Worker(on_event=events, wedged_after=0.0)
    worker.start()
    gate = gates()
    try:
        with pytest.raises(MT5OutcomeUnknownError):
            await worker.run("order_send", gate.block, timeout=0.01)
        assert state(worker) is WorkerState.WEDGED
        in_flight = worker.in_flight
        assert in_flight is not None
        assert in_flight.function == "order_send"
        assert in_flight.overdue_for is not None
        sent: list[int] = []
        for _ in range(3):
            with pytest.raises(MT5WorkerBusyError, match="order_send"):
                await worker.run("symbol_info_tick", sent.append, (1,), timeout=5)
        assert worker.rejected_busy == 3
        assert [type(e) for e in events.items] == [WorkerWedged]  # once per stuck call
        events.arrived.clear()
        gate.release()
        await events.arrived.wait()  # the late result: the stuck call has returned
        assert [type(e) for e in events.items] == [WorkerWedged, LateResult]
        assert state(worker) is WorkerState.IDLE
        assert await worker.run("terminal_info", ok, timeout=5) == "ok"
        assert sent == []
    finally:
        gate.release()
        await worker.aclose(timeout=10)


async def test_within_the_grace_period_calls_wait_behind_an_overdue_call(
    worker: Worker, gates: Callable[[], Gate]
) -> None:
    gate = gates()
    with pytest.raises(MT5TimeoutError):
        await worker.run("positions_get", gate.block, timeout=0.01)
    assert state(worker) is WorkerState.BUSY  # wedged_after=60: not yet wedged
    queued = asyncio.create_task(worker.run("terminal_info", ok, timeout=None))
    await asyncio.sleep(0)
    assert not queued.done()
    gate.release()
    assert await queued == "ok"


async def test_queue_is_bounded(gates: Callable[[], Gate]) -> None:
    worker = Worker(max_queued=2)
    worker.start()
    gate = gates()
    try:
        blocked = asyncio.create_task(worker.run("terminal_info", gate.block, timeout=None))
        await gate.wait_entered()
        waiting = [
            asyncio.create_task(worker.run("terminal_info", ok, timeout=None)) for _ in range(2)
        ]
        await asyncio.sleep(0)
        with pytest.raises(MT5WorkerBusyError, match="already waiting"):
            await worker.run("terminal_info", ok, timeout=None)
        gate.release()
        assert await blocked == "released"
        assert await asyncio.gather(*waiting) == ["ok", "ok"]
    finally:
        gate.release()
        await worker.aclose(timeout=10)


@pytest.mark.parametrize("timeout", [0, -1.0])
async def test_non_positive_timeout_fails_at_once_without_running(
    worker: Worker, timeout: float
) -> None:
    ran: list[int] = []
    with pytest.raises(MT5TimeoutError, match="not sent"):
        await worker.run("order_send", ran.append, (1,), timeout=timeout)
    await worker.run("terminal_info", ok, timeout=5)
    assert ran == []


async def test_shorter_timeout_behind_a_longer_one_still_fires(
    worker: Worker, gates: Callable[[], Gate]
) -> None:
    gate = gates()
    long_call = asyncio.create_task(worker.run("terminal_info", gate.block, timeout=30))
    await gate.wait_entered()
    with pytest.raises(MT5TimeoutError, match="while queued"):
        await worker.run("terminal_info", ok, timeout=0.01)
    gate.release()
    assert await long_call == "released"


async def test_short_timeout_after_a_finished_long_one_still_fires(
    worker: Worker, gates: Callable[[], Gate]
) -> None:
    assert await worker.run("terminal_info", ok, timeout=300) == "ok"
    gate = gates()
    with pytest.raises(MT5TimeoutError):
        await worker.run("terminal_info", gate.block, timeout=0.01)


async def test_results_are_handed_back_in_batches(
    worker: Worker, gates: Callable[[], Gate]
) -> None:
    loop = asyncio.get_running_loop()
    gate = gates()
    blocked = asyncio.create_task(worker.run("terminal_info", gate.block, timeout=None))
    await gate.wait_entered()
    done = threading.Event()
    calls = [asyncio.create_task(worker.run("terminal_info", ok, timeout=None)) for _ in range(99)]
    last = asyncio.create_task(worker.run("terminal_info", done.set, timeout=None))
    await asyncio.sleep(0)
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal wakeups
        wakeups += 1
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
    try:
        gate.release()
        # Deliberately hold the loop while the worker finishes all 101 calls: they must come
        # back with one wake-up, not 101.
        assert done.wait(10)
        await asyncio.gather(blocked, last, *calls)
    finally:
        del loop.call_soon_threadsafe
    assert wakeups <= 2


async def test_timeouts_and_cancellations_never_break_the_worker_race_stress(
    worker: Worker,
) -> None:
    ran = 0

    def count() -> int:
        nonlocal ran
        ran += 1
        return ran

    outcomes = {"ok": 0, "timeout": 0, "cancelled": 0}
    for i in range(500):
        task = asyncio.create_task(
            worker.run("symbol_info_tick", count, timeout=1e-6 * (i % 7 + 1))
        )
        if i % 5 == 0:
            await asyncio.sleep(0)
            task.cancel()
        try:
            await task
            outcomes["ok"] += 1
        except MT5TimeoutError:
            outcomes["timeout"] += 1
        except asyncio.CancelledError:
            outcomes["cancelled"] += 1
        # asyncpg's rule: after every timeout or cancellation the worker still works.
        assert await worker.run("terminal_info", ok, timeout=5) == "ok"
    assert sum(outcomes.values()) == 500
    assert outcomes["timeout"] + outcomes["cancelled"] > 0
    # Each call either ran exactly once or was given up while queued (and never ran).
    assert ran + worker.cancelled_before_start == 500
    assert ran >= outcomes["ok"] + worker.abandoned
    assert state(worker) is WorkerState.IDLE


async def test_aclose_lets_queued_calls_finish_and_joins_the_thread(
    gates: Callable[[], Gate],
) -> None:
    worker = Worker()
    worker.start()
    gate = gates()
    first = asyncio.create_task(worker.run("terminal_info", gate.block, timeout=None))
    await gate.wait_entered()
    second = asyncio.create_task(worker.run("terminal_info", ok, timeout=None))
    await asyncio.sleep(0)
    closing = asyncio.create_task(worker.aclose(timeout=10))
    await asyncio.sleep(0)
    with pytest.raises(MT5ClosedError):
        await worker.run("terminal_info", ok, timeout=5)
    gate.release()
    assert await closing is True
    assert (await first, await second) == ("released", "ok")
    assert worker.thread is not None
    assert not worker.thread.is_alive()
    assert state(worker) is WorkerState.CLOSED


async def test_aclose_leaves_a_stuck_thread_behind_and_fails_queued_calls(
    gates: Callable[[], Gate],
) -> None:
    worker = Worker()
    worker.start()
    gate = gates()
    stuck = asyncio.create_task(worker.run("terminal_info", gate.block, timeout=None))
    await gate.wait_entered()
    ran: list[int] = []
    queued = asyncio.create_task(worker.run("order_send", ran.append, (1,), timeout=None))
    await asyncio.sleep(0)
    assert await worker.aclose(timeout=0.01) is False
    with pytest.raises(MT5ClosedError, match="not sent"):
        await queued
    gate.release()
    assert await stuck == "released"
    assert worker.thread is not None
    await asyncio.to_thread(worker.thread.join, 10)
    assert not worker.thread.is_alive()
    assert ran == []


async def test_sync_close_fails_queued_calls_and_joins(gates: Callable[[], Gate]) -> None:
    worker = Worker()
    worker.start()
    gate = gates()
    stuck = asyncio.create_task(worker.run("terminal_info", gate.block, timeout=None))
    await gate.wait_entered()
    queued = asyncio.create_task(worker.run("terminal_info", ok, timeout=None))
    await asyncio.sleep(0)
    gate.release()
    assert worker.close(timeout=10) is True
    assert await stuck == "released"
    with pytest.raises(MT5ClosedError):
        await queued


async def test_calls_before_start_raise_closed_error() -> None:
    with pytest.raises(MT5ClosedError, match="not started"):
        await Worker().run("terminal_info", ok, timeout=5)


async def test_closed_worker_cannot_restart() -> None:
    worker = Worker()
    worker.start()
    await worker.aclose()
    with pytest.raises(MT5ClosedError):
        worker.start()


async def test_idle_thread_without_spin_still_answers(gates: Callable[[], Gate]) -> None:
    worker = Worker(idle_spin=0.0)
    worker.start()
    try:
        assert await worker.run("terminal_info", ok, timeout=5) == "ok"
    finally:
        await worker.aclose()


def test_idle_poll_pauses_when_the_thread_lost_its_cpu() -> None:
    ticks = iter(range(0, 100_000_000, 5000))  # every clock read is 5 ms later: "preempted"
    worker = Worker(clock=lambda: next(ticks) / 1e6)
    assert worker._spin(0.0005) > 0  # pause polling for a while


def test_idle_poll_ends_after_its_window_when_no_call_comes() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 10e-6  # 10 us per poll: a healthy spin
        return now[0]

    worker = Worker(clock=clock)
    assert worker._spin(0.0005) == 0.0  # no pause
    assert 0.0005 <= now[0] < 0.001


# ------------------------------------------------------------------ sending reads ahead


class Backend:
    """Records what is sent ahead and made; ``symbol_info`` is a plain read job."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.ahead: list[list[tuple[str, tuple[Any, ...], Any]]] = []
        self.made: list[tuple[str, tuple[Any, ...]]] = []

    def send_ahead(self, requests: list[tuple[str, tuple[Any, ...], Any]]) -> None:
        self.ahead.append(list(requests))

    def call(self, name: str) -> Callable[..., Any]:
        def made(*args: Any) -> Any:
            self.made.append((name, args))
            return (name, args)

        return plain_call(made)


@contextlib.asynccontextmanager
async def blocked_worker(backend: Backend) -> AsyncIterator[tuple[Worker, asyncio.Task[Any]]]:
    """A worker taking requests ahead for ``backend``, stuck in a call until its gate opens."""
    worker = Worker(send_ahead=backend.send_ahead)
    worker.start()
    try:
        blocker = asyncio.create_task(worker.run("block", backend.gate.block, timeout=None))
        await backend.gate.wait_entered()
        yield worker, blocker
    finally:
        await worker.aclose()


async def test_plain_reads_queued_behind_a_call_are_sent_ahead_in_order(
    gates: Callable[[], Gate],
) -> None:
    backend = Backend(gates())
    async with blocked_worker(backend) as (worker, blocker):
        read = backend.call("symbol_info")
        reads = [
            asyncio.create_task(worker.run("symbol_info", read, (f"S{i}",), timeout=None))
            for i in range(3)
        ]
        write = asyncio.create_task(
            worker.run("order_send", backend.call("order_send"), ({"x": 1},), timeout=None)
        )
        after = asyncio.create_task(worker.run("symbol_info", read, ("late",), timeout=None))
        await asyncio.sleep(0)  # every call queued behind the blocked one
        backend.gate.release()
        results = await asyncio.gather(blocker, *reads, write, after)
    assert results[1:4] == [("symbol_info", (f"S{i}",)) for i in range(3)]
    # The three reads went ahead together; the write ends the run and is never sent ahead.
    assert backend.ahead == [[("symbol_info", (f"S{i}",), None) for i in range(3)]]
    assert [name for name, _ in backend.made] == ["symbol_info"] * 3 + ["order_send", "symbol_info"]


@pytest.mark.parametrize("given_up", ["before", "after"])
async def test_a_read_given_up_while_queued_is_never_made_even_when_sent_ahead(
    gates: Callable[[], Gate], given_up: str
) -> None:
    backend = Backend(gates())
    async with blocked_worker(backend) as (worker, blocker):
        read = backend.call("symbol_info")
        gate = gates()
        held = plain_call(
            lambda symbol: (backend.made.append(("symbol_info", (symbol,))), gate.block())[1]
        )
        first = asyncio.create_task(worker.run("symbol_info", held, ("A",), timeout=None))
        dropped = asyncio.create_task(worker.run("symbol_info", read, ("B",), timeout=None))
        last = asyncio.create_task(worker.run("symbol_info", read, ("C",), timeout=None))
        await asyncio.sleep(0)
        if given_up == "before":
            dropped.cancel()  # before the worker looks ahead: not even sent
            await asyncio.wait([dropped])
        backend.gate.release()
        await gate.wait_entered()  # A runs: B and C were looked at
        if given_up == "after":
            dropped.cancel()  # sent ahead already: its call is still never made
            await asyncio.wait([dropped])
        gate.release()
        await asyncio.gather(blocker, first, last)
    assert backend.made == [("symbol_info", ("A",)), ("symbol_info", ("C",))]
    sent = ["A", "C"] if given_up == "before" else ["A", "B", "C"]
    assert backend.ahead == [[("symbol_info", (name,), None) for name in sent]]


# ---------------------------------------------------------------- deadline queues (one timer)


class FakeTime:
    """The outbox's clock, far ahead of the loop's: its timer never fires by itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.now = loop.time() + 1e6

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def counted_call_at(loop: asyncio.AbstractEventLoop) -> Iterator[list[float]]:
    """Record every ``loop.call_at`` (the worker arms its deadline timer with it)."""
    armed: list[float] = []
    original = loop.call_at

    def counting(when: float, *args: Any, **kwargs: Any) -> Any:
        armed.append(when)
        return original(when, *args, **kwargs)

    loop.call_at = counting  # type: ignore[method-assign]
    try:
        yield armed
    finally:
        del loop.call_at


async def held_worker(worker: Worker, gates: Callable[[], Gate]) -> tuple[Gate, FakeTime]:
    """Hold the worker in a call, and give its outbox a clock the test moves."""
    loop = asyncio.get_running_loop()
    gate = gates()
    worker.submit("terminal_info", gate.block, timeout=None)
    await gate.wait_entered()
    clock = FakeTime(loop)
    worker._outbox_for(loop).time = clock
    return gate, clock


def fire(worker: Worker, clock: FakeTime, at: float) -> None:
    """Move the clock and run what the shared deadline timer would run then."""
    outbox = worker._outbox_for(asyncio.get_running_loop())
    clock.now = at
    worker._check_deadlines(outbox)


async def test_deadlines_fire_in_deadline_order_not_submission_order(
    worker: Worker, gates: Callable[[], Gate]
) -> None:
    gate, clock = await held_worker(worker, gates)
    start = clock.now
    failed: list[float] = []
    ran: list[float] = []
    calls = {}
    for timeout in (5.0, 1.0, 3.0, 2.0, 4.0, 30.0):
        call = worker.submit("terminal_info", ran.append, (timeout,), timeout=timeout)
        call.add_done_callback(lambda f, t=timeout: failed.append(t) if f.exception() else None)
        calls[timeout] = call
    for step in (1.5, 2.5, 3.5, 4.5, 5.5):
        fire(worker, clock, start + step)
        await asyncio.sleep(0)  # done callbacks run
        assert failed == [1.0, 2.0, 3.0, 4.0, 5.0][: int(step)]
    for timeout in (1.0, 2.0, 3.0, 4.0, 5.0):
        with pytest.raises(MT5TimeoutError, match="while queued"):
            calls[timeout].result()
    gate.release()
    await calls[30.0]
    assert ran == [30.0]  # the calls given up while queued never ran
    assert worker.cancelled_before_start == 5


async def test_cancelling_the_earliest_deadline_leaves_the_others_armed(
    worker: Worker, gates: Callable[[], Gate]
) -> None:
    gate, clock = await held_worker(worker, gates)
    start = clock.now
    ran: list[str] = []
    later = worker.submit("terminal_info", ran.append, ("later",), timeout=5.0)
    earliest = worker.submit("terminal_info", ran.append, ("earliest",), timeout=1.0)
    outbox = worker._outbox_for(asyncio.get_running_loop())
    assert outbox.timer_at == start + 1.0  # one timer, for the earliest deadline
    earliest.cancel()
    fire(worker, clock, start + 2.0)  # the cancelled one's deadline: nothing to give up
    assert not later.done()
    assert outbox.timer is not None  # re-armed for the next deadline
    assert outbox.timer_at == start + 5.0
    fire(worker, clock, start + 6.0)
    with pytest.raises(MT5TimeoutError):
        later.result()
    gate.release()
    assert await worker.run("terminal_info", ok, timeout=None) == "ok"
    assert ran == []
    assert earliest.cancelled()
    assert not outbox.early
    assert not outbox.deadlines
    assert outbox.timer is None


async def test_a_flood_of_calls_with_mixed_timeouts_shares_one_timer(
    worker: Worker, gates: Callable[[], Gate]
) -> None:
    loop = asyncio.get_running_loop()
    gate, clock = await held_worker(worker, gates)
    start = clock.now
    timeouts = (None, 30.0, 1.0, 10.0, 0.5, 20.0, 2.0)
    ran: list[int] = []
    with counted_call_at(loop) as armed:
        calls = [
            worker.submit("symbol_info_tick", ran.append, (i,), timeout=timeouts[i % 7])
            for i in range(1400)
        ]
        for i in range(0, 1400, 11):
            calls[i].cancel()
        fire(worker, clock, start + 5.0)  # the 0.5, 1 and 2 s calls are overdue
    # A timer per new earliest deadline (30, 1, 0.5), then one re-arm for the next (10 s).
    assert len(armed) <= 4
    gate.release()
    results = await asyncio.gather(*calls, return_exceptions=True)
    expected_ran = []
    for i, (call, result) in enumerate(zip(calls, results, strict=True)):
        timeout = timeouts[i % 7]
        if i % 11 == 0:
            assert call.cancelled()
        elif timeout is not None and timeout < 5.0:
            assert isinstance(result, MT5TimeoutError), (i, result)
        else:
            assert result is None  # list.append's result: it ran
            expected_ran.append(i)
    assert ran == expected_ran  # in submission order, each exactly once
    outbox = worker._outbox_for(loop)
    assert not outbox.early  # finished calls are not held
    assert not outbox.deadlines
