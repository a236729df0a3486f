"""How much does getting off the event loop cost? The connector's worker vs the usual ways.

The same simulator call (``symbol_info_tick("EURUSD")`` on an initialized ``SimTerminal`` with a
frozen clock) is made:

* directly, on one thread (the floor: what the call itself costs);
* with ``asyncio.to_thread`` (the default executor: what most MT5 wrappers do);
* with ``anyio.to_thread.run_sync``;
* through ``AsyncMT5Connector.call`` (dedicated worker thread, default timeout armed);
* through a bare dedicated thread (a queue, a batched wake-up, nothing else: no timeout, no
  cancellation, no statistics): the floor of any one-thread design on this interpreter and loop;
* through ``AsyncMT5Connector.call_many`` in batches of ``--batch`` calls (throughput only):
  one worker job per batch, so the loop's per-call cost is paid once per batch.

Two measurements, every mode in the same run, rounds interleaved, medians reported:

1. **latency**: one task awaiting calls back to back. "Added" = per-call time minus the floor.
   Goal: connector added ÷ to_thread added <= 0.4 (mean).
2. **throughput**: 1000 concurrent tasks. Goals: connector >= 3x to_thread and >= 0.75 of the
   single-thread ceiling (1 ÷ the direct call's cost); the event loop's CPU per call (the loop
   thread's own CPU time, what the strategy loses) <= 1/3 of to_thread's. Per-call p50/p99
   latency as the callers see it, and the process CPU (all threads) per call. The batched row
   makes the same number of calls with ``tasks / batch`` tasks each awaiting ``call_many``
   batches (its p50/p99 are per batch).

Usage::

    .venv/bin/python bench/bench_worker.py [--calls N] [--tasks N] [--per-task N] [--rounds N]
        [--batch N] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio.to_thread

import _results
from aiomt5 import AsyncMT5Connector, MT5Settings
from aiomt5.sim import SimClock, SimTerminal

SYMBOL = "EURUSD"
Call = Callable[[], Awaitable[object]]


@dataclass
class Sample:
    per_call: float  # seconds, total time / calls
    p50: float
    p99: float
    cpu: float = 0.0  # process CPU seconds (all threads) per call: robust to a busy machine
    loop_cpu: float = 0.0  # the event loop thread's own CPU seconds per call


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[round(q * (len(sorted_values) - 1))]


def direct_floor(terminal: SimTerminal, calls: int) -> float:
    tick = terminal.symbol_info_tick
    for _ in range(200):
        tick(SYMBOL)
    start = time.perf_counter()
    for _ in range(calls):
        tick(SYMBOL)
    return (time.perf_counter() - start) / calls


async def sequential(call: Call, calls: int) -> Sample:
    for _ in range(100):  # warm-up: threads started, caches hot
        await call()
    latencies = []
    start = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    latencies.sort()
    return Sample(total / calls, percentile(latencies, 0.5), percentile(latencies, 0.99))


async def concurrent(call: Call, tasks: int, per_task: int) -> Sample:
    latencies: list[float] = []

    async def client() -> None:
        for _ in range(per_task):
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    start, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    async with asyncio.TaskGroup() as group:
        for _ in range(tasks):
            group.create_task(client())
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    loop_cpu = time.thread_time() - loop_cpu
    latencies.sort()
    calls = tasks * per_task
    return Sample(
        total / calls,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        cpu / calls,
        loop_cpu / calls,
    )


async def concurrent_batched(
    mt5: AsyncMT5Connector, tasks: int, per_task: int, batch: int
) -> Sample:
    """The same calls as ``concurrent``, ``batch`` at a time through ``call_many``."""
    groups = max(1, tasks // batch)
    symbols = [SYMBOL] * batch
    latencies: list[float] = []

    async def client() -> None:
        for _ in range(per_task):
            t0 = time.perf_counter()
            await mt5.call_many("symbol_info_tick", symbols)
            latencies.append(time.perf_counter() - t0)

    start, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    async with asyncio.TaskGroup() as group:
        for _ in range(groups):
            group.create_task(client())
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    loop_cpu = time.thread_time() - loop_cpu
    latencies.sort()
    calls = groups * per_task * batch
    return Sample(
        total / calls,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        cpu / calls,
        loop_cpu / calls,
    )


class BareThread:
    """The least a dedicated thread can do: FIFO queue, results handed back in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._done: list[tuple[asyncio.Future[object], object]] = []
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., object], *args: object) -> asyncio.Future[object]:
        future = self._loop.create_future()
        self._queue.put((future, fn, args))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _main(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, args = item  # type: ignore[misc]
            result = fn(*args)
            with self._lock:
                self._done.append((future, result))
                wake = len(self._done) == 1
            if wake:
                self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        for future, result in done:
            future.set_result(result)


def median_sample(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.per_call for s in samples),
        statistics.median(s.p50 for s in samples),
        statistics.median(s.p99 for s in samples),
        statistics.median(s.cpu for s in samples),
        statistics.median(s.loop_cpu for s in samples),
    )


async def main(args: argparse.Namespace) -> None:
    terminal = SimTerminal(seed=0, clock=SimClock.fixed("2026-03-02T10:00:00Z"))
    settings = MT5Settings(_env_file=None, backend="sim")  # default call_timeout: timers armed
    async with AsyncMT5Connector(settings, backend=terminal) as mt5:
        tick = terminal.symbol_info_tick
        bare = BareThread(asyncio.get_running_loop())
        modes: dict[str, Call] = {
            "asyncio.to_thread": lambda: asyncio.to_thread(tick, SYMBOL),
            "anyio.to_thread": lambda: anyio.to_thread.run_sync(tick, SYMBOL),
            "connector": lambda: mt5.call("symbol_info_tick", SYMBOL),
            "bare thread": lambda: bare.call(tick, SYMBOL),
        }
        floors: list[float] = []
        latency: dict[str, list[Sample]] = {name: [] for name in modes}
        throughput: dict[str, list[Sample]] = {name: [] for name in modes}
        batched = f"call_many ({args.batch}/batch)"
        throughput[batched] = []
        await concurrent_batched(mt5, args.tasks, 2, args.batch)  # warm-up
        for _ in range(args.rounds):
            floors.append(direct_floor(terminal, args.calls))
            for name, call in modes.items():
                latency[name].append(await sequential(call, args.calls))
            for name, call in modes.items():
                throughput[name].append(await concurrent(call, args.tasks, args.per_task))
            throughput[batched].append(
                await concurrent_batched(mt5, args.tasks, args.per_task, args.batch)
            )
        bare.close()

    floor = statistics.median(floors)
    seq = {name: median_sample(samples) for name, samples in latency.items()}
    par = {name: median_sample(samples) for name, samples in throughput.items()}

    us = 1e6
    loop_name = "uvloop" if args.uvloop else "asyncio"
    print(
        f"symbol_info_tick on SimTerminal, {loop_name} loop, {args.rounds} interleaved rounds, "
        "medians\n"
    )
    print(f"direct call (floor): {floor * us:7.1f} us/call\n")
    print("latency, one task, back-to-back calls")
    print(f"  {'mode':21} {'us/call':>9} {'added us':>9} {'p50 us':>8} {'p99 us':>8}")
    for name, s in seq.items():
        print(
            f"  {name:21} {s.per_call * us:9.1f} {(s.per_call - floor) * us:9.1f} "
            f"{s.p50 * us:8.1f} {s.p99 * us:8.1f}"
        )
    print(f"\nthroughput, {args.tasks} concurrent tasks x {args.per_task} calls")
    print(
        f"  {'mode':21} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu us/call':>12} "
        f"{'loop cpu us':>12}"
    )
    for name, s in par.items():
        print(
            f"  {name:21} {1 / s.per_call:9.0f} {s.p50 * 1e3:8.2f} {s.p99 * 1e3:8.2f} "
            f"{s.cpu * us:12.1f} {s.loop_cpu * us:12.1f}"
        )

    def added(name: str) -> float:
        return seq[name].per_call - floor

    def added_p50(name: str) -> float:
        return seq[name].p50 - floor

    speedup = par["asyncio.to_thread"].per_call / par["connector"].per_call
    print("\nratios (same run)")
    to_thread_ratio = added("connector") / added("asyncio.to_thread")
    print(f"  added latency connector / to_thread : {to_thread_ratio:5.2f}  (mean; goal <= 0.4)")
    print(
        f"  added latency connector / to_thread : "
        f"{added_p50('connector') / added_p50('asyncio.to_thread'):5.2f}  (p50)"
    )
    print(
        f"  added latency connector / anyio     : "
        f"{added('connector') / added('anyio.to_thread'):5.2f}  (mean)"
    )
    print(f"  throughput connector / to_thread    : {speedup:5.2f}x (goal >= 3)")
    ceiling = floor / par["connector"].per_call
    print(f"  throughput connector / ceiling      : {ceiling:5.2f}  (goal >= 0.75; 1/floor)")
    print(
        f"  throughput bare thread / ceiling    : {floor / par['bare thread'].per_call:5.2f}  "
        "(the floor of any one-thread design)"
    )
    batch_ceiling = floor / par[batched].per_call
    batch_speedup = par["asyncio.to_thread"].per_call / par[batched].per_call
    print(
        f"  throughput call_many / ceiling      : {batch_ceiling:5.2f}  (batches of {args.batch})"
    )
    print(f"  throughput call_many / to_thread    : {batch_speedup:5.2f}x")
    print(
        f"  throughput call_many / connector    : "
        f"{par['connector'].per_call / par[batched].per_call:5.2f}x"
    )
    loop_ratio = par["connector"].loop_cpu / par["asyncio.to_thread"].loop_cpu
    print(f"  loop CPU per call connector/to_thread: {loop_ratio:5.2f}  (goal <= 0.33)")
    print(
        f"  loop CPU per call connector / bare  : "
        f"{par['connector'].loop_cpu / par['bare thread'].loop_cpu:5.2f}"
    )
    cpu_ratio = par["asyncio.to_thread"].cpu / par["connector"].cpu
    print(f"  CPU per call to_thread / connector  : {cpu_ratio:5.2f}x (process, all threads)")
    print(
        f"  load average during the run         : {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    _results.write(
        args.json,
        tables={
            "latency": _results.table(
                [
                    ("mode", "One task, back-to-back calls"),
                    ("us", "µs/call"),
                    ("added", "added µs"),
                    ("p50", "p50 µs"),
                    ("p99", "p99 µs"),
                ],
                [
                    {
                        "mode": "direct call (floor)",
                        "us": floor * us,
                        "added": 0.0,
                        "p50": floor * us,
                        "p99": floor * us,
                    }
                ]
                + [
                    {
                        "mode": name,
                        "us": s.per_call * us,
                        "added": added(name) * us,
                        "p50": s.p50 * us,
                        "p99": s.p99 * us,
                    }
                    for name, s in seq.items()
                ],
            ),
            "throughput": _results.table(
                [
                    ("mode", f"{args.tasks} tasks x {args.per_task} calls"),
                    ("rate", "calls/s"),
                    ("p50", "p50 ms"),
                    ("p99", "p99 ms"),
                    ("cpu", "CPU µs/call"),
                ],
                [
                    {
                        "mode": name,
                        "rate": 1 / s.per_call,
                        "p50": s.p50 * 1e3,
                        "p99": s.p99 * 1e3,
                        "cpu": s.cpu * us,
                    }
                    for name, s in par.items()
                ],
            ),
        },
        figures={
            "added_ratio": to_thread_ratio,
            "added_ratio_p50": added_p50("connector") / added_p50("asyncio.to_thread"),
            "speedup": speedup,
            "cpu_ratio": cpu_ratio,
            "ceiling": ceiling,
            "bare_ceiling": floor / par["bare thread"].per_call,
            "loop_ratio": loop_ratio,
            "connector_us": seq["connector"].per_call * us,
            "batch_ceiling": batch_ceiling,
            "batch_speedup": batch_speedup,
            "batch_vs_call": par["connector"].per_call / par[batched].per_call,
            "to_thread_us": seq["asyncio.to_thread"].per_call * us,
        },
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="sequential calls per round")
    parser.add_argument("--tasks", type=int, default=1000, help="concurrent tasks")
    parser.add_argument("--per-task", type=int, default=10, help="calls per concurrent task")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--batch", type=int, default=100, help="calls per call_many batch")
    _results.add_option(parser)
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop (pip install uvloop; not on Windows)"
    )
    return parser.parse_args()


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise SystemExit("--uvloop: uvloop is not installed (pip install uvloop)") from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


if __name__ == "__main__":
    arguments = parse_args()
    with asyncio.Runner(loop_factory=loop_factory(arguments.uvloop)) as runner:
        runner.run(main(arguments))
