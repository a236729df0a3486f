"""Benchmark: what the child process costs per call, against the in-process worker thread.

Two connectors in the same run on the same simulated terminal (seeded, frozen clock): one with
``isolation="thread"`` (the simulator in this process, called from the worker thread) and one
with ``isolation="process"`` (the same simulator in a child process, the default for the real
MetaTrader5 module and for ``sim_hold_gil``). Measured through ``AsyncMT5Connector.call``, what a
bot sees:

* latency: one task, back-to-back calls: ``version()`` (trivial) and ``symbol_info_tick``;
* throughput: 100 tasks calling ``symbol_info_tick`` at once;
* 100k bars: ``copy_rates_from_pos`` of 99,999 M1 bars, the most a default terminal (``maxbars``
  100,000) returns (the array crosses as raw bytes).

Rounds interleave the two (in a shuffled order, each after a few untimed calls) so load spikes hit
both; the median of the rounds is reported with the ratio child ÷ thread.

Then a ``ChildTerminal`` alone, without the connector: ``symbol_info_tick`` one call at a time,
against batches of 32 sent ahead (``send_ahead``), median of the rounds and their ratio.

Run: ``.venv/bin/python bench/bench_isolation.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable

from aiomt5 import AsyncMT5Connector, MT5Settings
from aiomt5._remote._isolation import ChildTerminal

START = "2026-03-04T10:00:00Z"
TIMEFRAME_M1 = 1

Operation = Callable[[AsyncMT5Connector], Awaitable[float]]


def settings(isolation: str) -> MT5Settings:
    return MT5Settings(  # type: ignore[call-arg]
        _env_file=None,
        backend="sim",
        isolation=isolation,
        sim_seed=3,
        sim_start=START,
        health_check=False,
        call_timeout=60.0,
    )


def back_to_back(function: str, *args: object, calls: int) -> Operation:
    async def run(mt5: AsyncMT5Connector) -> float:
        for _ in range(calls // 10):  # untimed: wake the other side up
            await mt5.call(function, *args)
        start = time.perf_counter()
        for _ in range(calls):
            await mt5.call(function, *args)
        return (time.perf_counter() - start) / calls * 1e6  # µs per call

    return run


def concurrent(tasks: int, calls: int) -> Operation:
    async def one(mt5: AsyncMT5Connector) -> None:
        for _ in range(calls):
            await mt5.call("symbol_info_tick", "EURUSD")

    async def run(mt5: AsyncMT5Connector) -> float:
        await one(mt5)
        start = time.perf_counter()
        await asyncio.gather(*(one(mt5) for _ in range(tasks)))
        return tasks * calls / (time.perf_counter() - start)  # calls per second

    return run


def bars(count: int, calls: int) -> Operation:
    async def run(mt5: AsyncMT5Connector) -> float:
        await mt5.call("copy_rates_from_pos", "EURUSD", TIMEFRAME_M1, 0, count)
        start = time.perf_counter()
        for _ in range(calls):
            rates = await mt5.call("copy_rates_from_pos", "EURUSD", TIMEFRAME_M1, 0, count)
            assert len(rates) == count
        return (time.perf_counter() - start) / calls * 1e3  # ms per call

    return run


# (label, unit, higher is better, operation)
CASES: list[tuple[str, str, bool, Operation]] = [
    ("latency: version()", "µs/call", False, back_to_back("version", calls=300)),
    ("latency: symbol_info_tick", "µs/call", False, back_to_back(
        "symbol_info_tick", "EURUSD", calls=300
    )),
    ("throughput: 100 tasks x 20 ticks", "calls/s", True, concurrent(100, 20)),
    ("copy_rates_from_pos 99,999 bars", "ms/call", False, bars(99_999, 3)),
]  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    options = parser.parse_args()
    rng = random.Random(1)
    async with (
        AsyncMT5Connector(settings("thread")) as thread,
        AsyncMT5Connector(settings("process")) as child,
    ):
        contenders = {"thread": thread, "child": child}
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(options.rounds):
            for label, _unit, _higher, operation in CASES:
                order = list(contenders)
                rng.shuffle(order)
                for name in order:
                    value = await operation(contenders[name])
                    results.setdefault((label, name), []).append(value)
    print(f"{'':36} {'thread':>12} {'child':>12} {'child ÷ thread':>15}")
    for label, unit, higher, _operation in CASES:
        medians = {name: statistics.median(results[label, name]) for name in contenders}
        ratio = medians["child"] / medians["thread"]
        note = "(higher is better)" if higher else ""
        print(
            f"{label:36} {medians['thread']:>9.1f} {medians['child']:>9.1f} {unit:8}"
            f"{ratio:>6.2f}x {note}"
        )


def child_alone(rounds: int) -> None:
    child = ChildTerminal("sim", settings=settings("process"))
    assert child.initialize()
    tick = ("symbol_info_tick", ("EURUSD",), None)

    def one_by_one() -> float:
        start = time.perf_counter()
        for _ in range(320):
            child.symbol_info_tick("EURUSD")
        return 320 / (time.perf_counter() - start)

    def sent_ahead() -> float:
        start = time.perf_counter()
        for _ in range(10):
            child.send_ahead([tick] * 32)
            for _ in range(32):
                child.symbol_info_tick("EURUSD")
        return 320 / (time.perf_counter() - start)

    try:
        one_by_one(), sent_ahead()  # untimed
        rates: dict[str, list[float]] = {"one by one": [], "sent ahead": []}
        for _ in range(rounds):
            rates["one by one"].append(one_by_one())
            rates["sent ahead"].append(sent_ahead())
    finally:
        child.close()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(
        f"ChildTerminal alone, symbol_info_tick: one by one {medians['one by one']:.0f} calls/s, "
        f"32 sent ahead {medians['sent ahead']:.0f} calls/s "
        f"({medians['sent ahead'] / medians['one by one']:.1f}x)"
    )


if __name__ == "__main__":
    asyncio.run(main())
    child_alone(9)
