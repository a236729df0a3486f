"""The event loop's own Python per connector call, with the worker thread taken out.

``bench_worker.py`` measures calls through the real worker thread; there the loop's CPU time
also holds GIL hand-offs and cache misses caused by the other thread, and moves with the
machine's load. Here the worker's queue is replaced by one that runs each job at once on the
loop thread and hands it back through the worker's own batched delivery, so what is counted
is only the loop-side path: ``connector.call`` → ``Worker.submit`` (session check, deadline,
job) → the task's wake-up → ``Worker._deliver`` (results and statistics). A bare future resolved
with ``call_soon`` gives the floor (what asyncio itself costs per awaited call); ``Worker.submit``
awaited directly, with and without a timeout, splits the connector's share into its parts. The
call is the simulator's ``last_error()``, which costs almost nothing.

Usage::

    .venv/bin/python bench/bench_worker_loop.py [--tasks N] [--per-task N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiomt5 import AsyncMT5Connector, MT5Settings
from aiomt5._core import _worker
from aiomt5.sim import SimClock, SimTerminal


class InlineQueue:
    """Stands in for the worker's queue: runs each job at once, on the loop thread."""

    def __init__(self, worker: _worker.Worker, real: Any) -> None:
        self._worker = worker
        self._real = real

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def get(self) -> Any:
        return self._real.get()  # the worker thread itself waits here, for _STOP

    def put(self, job: Any) -> None:
        if job is _worker._STOP:
            self._real.put(job)
            return
        job.state = _worker._RUNNING
        job.value = job.context.run(job.fn, *job.args)
        job.state = _worker._DONE
        outbox = job.outbox
        outbox.items.append(job)
        if not outbox.scheduled:
            outbox.scheduled = True
            outbox.loop.call_soon(self._worker._deliver, outbox)


async def concurrent(call: Callable[[], Awaitable[object]], tasks: int, per_task: int) -> float:
    async def client() -> None:
        for _ in range(per_task):
            await call()

    cpu = time.thread_time()
    async with asyncio.TaskGroup() as group:
        for _ in range(tasks):
            group.create_task(client())
    return (time.thread_time() - cpu) / (tasks * per_task)


async def main(args: argparse.Namespace) -> None:
    terminal = SimTerminal(seed=0, clock=SimClock.fixed("2026-03-02T10:00:00Z"))
    settings = MT5Settings(_env_file=None, backend="sim")
    async with AsyncMT5Connector(settings, backend=terminal) as mt5:
        session = mt5.session
        assert session is not None
        worker = session.worker
        real = worker._queue
        worker._queue = InlineQueue(worker, real)  # type: ignore[assignment]
        loop = asyncio.get_running_loop()

        invoker = mt5._invoker("last_error")

        def bare() -> asyncio.Future[object]:
            future = loop.create_future()
            loop.call_soon(future.set_result, terminal.last_error())
            return future

        modes: dict[str, Callable[[], Awaitable[object]]] = {
            "connector": lambda: mt5.call("last_error"),
            "bare future": bare,
            # The parts of the connector's share: Worker.submit without connector.call, with
            # the default timeout and without one.
            "submit": lambda: worker.submit("last_error", invoker, (), None, timeout=30.0),
            "submit, no timeout": lambda: worker.submit("last_error", invoker, timeout=None),
        }
        samples: dict[str, list[float]] = {name: [] for name in modes}
        try:
            for _ in range(args.rounds):
                for name, call in modes.items():
                    samples[name].append(await concurrent(call, args.tasks, args.per_task))
        finally:
            worker._queue = real
    print(
        f"loop-only CPU per call, {args.tasks} tasks x {args.per_task} calls, median of "
        f"{args.rounds} interleaved rounds"
    )
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, value in medians.items():
        print(f"  {name:18} {value * 1e6:6.2f} us")
    print(f"  connector - bare: {(medians['connector'] - medians['bare future']) * 1e6:.2f} us")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="concurrent tasks")
    parser.add_argument("--per-task", type=int, default=10, help="calls per task")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
