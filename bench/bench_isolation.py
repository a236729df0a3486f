"""Benchmark: what the child process costs per call, against the in-process worker thread.

Two connectors in the same run on the same simulated terminal (seeded, frozen clock): one with
``isolation="thread"`` (the simulator in this process, called from the worker thread) and one
with ``isolation="process"`` (the same simulator in a child process, the default for the real
MetaTrader5 module and for ``sim_hold_gil``). Measured through ``AsyncMT5Connector.call``, what a
bot sees:

* latency: one task, back-to-back calls, each timed: ``version()`` (trivial) and
  ``symbol_info_tick``; mean, p50 and p99 over every call of every round;
* throughput: 100 tasks calling ``symbol_info_tick`` at once; and the same 2000 calls made
  by one task as 20 ``call_many`` batches of 100 (one worker job, and one round trip to the
  child, per batch), with the batched child against the thread's per-call and batched rates;
* 100k bars: ``copy_rates_from_pos`` of 99,999 M1 bars (6 MB), the most a default terminal
  (``maxbars`` 100,000) returns;
* 1M ticks: ``copy_ticks_from`` of 1,000,000 ticks (60 MB).

Rounds interleave the two (in a shuffled order, each after a few untimed calls) so load spikes hit
both; throughput and arrays report the median of the rounds. Each line ends with the ratio
child ÷ thread.

Then a ``ChildTerminal`` alone, without the connector: ``symbol_info_tick`` one call at a time,
against batches of 32 sent ahead (``send_ahead``), median of the rounds and their ratio.

Last, why arrays cross as raw bytes on the child's socket and not through shared memory: 60 MB
(1M ticks) handed from a process to its parent, interleaved rounds, median: over a Unix
socketpair into a fresh array (what the child does), against a ``multiprocessing.shared_memory``
segment the sender creates and fills and the receiver maps and unlinks (no copy on its side).
Either way the receiver ends with every page of the array in hand (one byte per page read).

Run: ``.venv/bin/python bench/bench_isolation.py [--rounds N] [--json PATH]`` (``--json
docs/assets/bench/isolation.json``: the docs' table, chart and quoted figures).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import pathlib
import random
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory
from multiprocessing.connection import Connection

import numpy as np

import _results
from aiomt5 import AsyncMT5Connector, MT5Settings
from aiomt5._remote._isolation import ChildTerminal

START = "2026-03-04T10:00:00Z"
TIMEFRAME_M1 = 1
TICKS_FROM = dt.datetime(2026, 2, 11, 10, tzinfo=dt.UTC)  # 1M simulated EURUSD ticks from here
COPY_TICKS_ALL = -1

Operation = Callable[[AsyncMT5Connector], Awaitable[list[float]]]


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
    async def run(mt5: AsyncMT5Connector) -> list[float]:
        for _ in range(calls // 10):  # untimed: wake the other side up
            await mt5.call(function, *args)
        samples = []
        clock = time.perf_counter
        for _ in range(calls):
            start = clock()
            await mt5.call(function, *args)
            samples.append((clock() - start) * 1e6)  # µs
        return samples

    return run


def concurrent(tasks: int, calls: int) -> Operation:
    async def one(mt5: AsyncMT5Connector) -> None:
        for _ in range(calls):
            await mt5.call("symbol_info_tick", "EURUSD")

    async def run(mt5: AsyncMT5Connector) -> list[float]:
        await one(mt5)
        start = time.perf_counter()
        await asyncio.gather(*(one(mt5) for _ in range(tasks)))
        return [tasks * calls / (time.perf_counter() - start)]  # calls per second

    return run


def batched(batches: int, size: int) -> Operation:
    symbols = ["EURUSD"] * size

    async def run(mt5: AsyncMT5Connector) -> list[float]:
        await mt5.call_many("symbol_info_tick", symbols)
        start = time.perf_counter()
        for _ in range(batches):
            await mt5.call_many("symbol_info_tick", symbols)
        return [batches * size / (time.perf_counter() - start)]  # calls per second

    return run


def array(function: str, *args: object, count: int, calls: int) -> Operation:
    async def run(mt5: AsyncMT5Connector) -> list[float]:
        await mt5.call(function, *args)
        start = time.perf_counter()
        for _ in range(calls):
            result = await mt5.call(function, *args)
            assert len(result) == count, (function, len(result))
        return [(time.perf_counter() - start) / calls * 1e3]  # ms per call

    return run


@dataclass(frozen=True)
class Case:
    label: str
    unit: str
    operation: Operation
    per_call: bool = False  # latency samples: mean, p50, p99 over all of them
    higher_is_better: bool = False


CASES = [
    Case("version()", "µs", back_to_back("version", calls=300), per_call=True),
    Case("symbol_info_tick", "µs", back_to_back("symbol_info_tick", "EURUSD", calls=300),
         per_call=True),
    Case("100 tasks x 20 symbol_info_tick", "calls/s", concurrent(100, 20),
         higher_is_better=True),
    Case("20 call_many x 100 symbol_info_tick", "calls/s", batched(20, 100),
         higher_is_better=True),
    Case("copy_rates_from_pos 99,999 bars", "ms", array(
        "copy_rates_from_pos", "EURUSD", TIMEFRAME_M1, 0, 99_999, count=99_999, calls=3
    )),
    Case("copy_ticks_from 1,000,000 ticks", "ms", array(
        "copy_ticks_from", "EURUSD", TICKS_FROM, 1_000_000, COPY_TICKS_ALL,
        count=1_000_000, calls=1,
    )),
]  # fmt: skip


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summaries(case: Case, samples: list[float]) -> list[tuple[str, float]]:
    if case.per_call:
        return [
            ("mean", statistics.fmean(samples)),
            ("p50", percentile(samples, 0.50)),
            ("p99", percentile(samples, 0.99)),
        ]
    return [("median", statistics.median(samples))]


async def main(rounds: int) -> dict[tuple[str, str], list[float]]:
    rng = random.Random(1)
    async with (
        AsyncMT5Connector(settings("thread")) as thread,
        AsyncMT5Connector(settings("process")) as child,
    ):
        contenders = {"thread": thread, "child": child}
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):
            for case in CASES:
                order = list(contenders)
                rng.shuffle(order)
                for name in order:
                    samples = await case.operation(contenders[name])
                    results.setdefault((case.label, name), []).extend(samples)
    print(f"{'':44} {'thread':>10} {'child':>10} {'':8} {'child ÷ thread':>14}")
    for case in CASES:
        thread_stats = summaries(case, results[case.label, "thread"])
        child_stats = summaries(case, results[case.label, "child"])
        for (stat, at_thread), (_, at_child) in zip(thread_stats, child_stats, strict=True):
            note = " (higher is better)" if case.higher_is_better else ""
            print(
                f"{case.label + ', ' + stat:44} {at_thread:>10.1f} {at_child:>10.1f} "
                f"{case.unit:8} {at_child / at_thread:>13.2f}x{note}"
            )
    per_call = {
        name: statistics.median(results["100 tasks x 20 symbol_info_tick", name])
        for name in contenders
    }
    many = {
        name: statistics.median(results["20 call_many x 100 symbol_info_tick", name])
        for name in contenders
    }
    print(
        f"child call_many ÷ thread call: {many['child'] / per_call['thread']:.2f}x, "
        f"÷ thread call_many: {many['child'] / many['thread']:.2f}x, "
        f"÷ child call: {many['child'] / per_call['child']:.2f}x (throughput)"
    )
    return results


def child_alone(rounds: int) -> dict[str, float]:
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
    return medians


TRANSFER_BYTES = 60_000_000  # 1M ticks
PAGE = 4096


def sender(control: Connection, sock: socket.socket) -> None:
    """The other process: on each request, send fresh 60 MB the way it names."""
    data = np.random.default_rng(1).integers(0, 255, TRANSFER_BYTES, np.uint8)
    while (how := control.recv()) is not None:
        payload = data.copy()  # what a terminal call hands over: a fresh array
        if how == "socket":
            sock.sendall(payload.data)
        else:
            segment = shared_memory.SharedMemory(create=True, size=TRANSFER_BYTES)
            np.frombuffer(segment.buf or b"", np.uint8)[:] = payload
            # The receiver unlinks it: this process must not (nor its resource tracker).
            resource_tracker.unregister(segment._name, "shared_memory")  # type: ignore[attr-defined]
            segment.close()
            control.send(segment.name)
        del payload


def receive_by_socket(
    control: Connection, sock: socket.socket
) -> tuple[np.ndarray, Callable[[], None]]:
    control.send("socket")
    array = np.empty(TRANSFER_BYTES, np.uint8)  # as FrameReader does for a trusted peer
    have = 0
    with array.data as view:
        while have < TRANSFER_BYTES:
            have += sock.recv_into(view[have:], TRANSFER_BYTES - have)
    return array, lambda: None


def receive_by_shared_memory(
    control: Connection, _sock: socket.socket
) -> tuple[np.ndarray, Callable[[], None]]:
    control.send("shm")
    segment = shared_memory.SharedMemory(name=control.recv())
    segment.unlink()  # the receiver's job: the memory lives on while mapped
    array = np.frombuffer(segment.buf or b"", np.uint8)
    return array, segment.close  # closed once the array is gone


def transfer(rounds: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = socket.socketpair()
    control, their_control = context.Pipe()
    process = context.Process(target=sender, args=(their_control, theirs), daemon=True)
    process.start()
    ways = {"unix socketpair": receive_by_socket, "shared memory": receive_by_shared_memory}
    times: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for index in range(rounds + 1):
            for name, receive in ways.items():
                start = time.perf_counter()
                array, release = receive(control, ours)
                touched = int(array[::PAGE].sum())  # every page in hand
                elapsed = time.perf_counter() - start
                del array
                release()
                if index:  # the first round is untimed
                    times[name].append(elapsed * 1e3)
                assert touched >= 0
    finally:
        control.send(None)
        process.join(10)
        ours.close()
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"60 MB to the parent: unix socketpair {medians['unix socketpair']:.1f} ms, "
        f"shared memory {medians['shared memory']:.1f} ms "
        f"(shared memory ÷ socket {medians['shared memory'] / medians['unix socketpair']:.2f}x)"
    )
    return medians


CASE_KEYS = {
    "version()": "version",
    "symbol_info_tick": "tick",
    "100 tasks x 20 symbol_info_tick": "tasks",
    "20 call_many x 100 symbol_info_tick": "many",
    "copy_rates_from_pos 99,999 bars": "bars",
    "copy_ticks_from 1,000,000 ticks": "ticks",
}
"""Each case's short name in the figures: ``<case>_<stat>_thread``, ``_child``, ``_ratio``."""


def write_json(
    path: pathlib.Path | None,
    results: dict[tuple[str, str], list[float]],
    alone: dict[str, float],
    moved: dict[str, float],
) -> None:
    """The results as ``docs/assets/bench/isolation.json`` (``--json``; nothing without it)."""
    rows: list[dict[str, object]] = []
    figures: dict[str, float] = {}
    for case in CASES:
        thread_stats = summaries(case, results[case.label, "thread"])
        child_stats = summaries(case, results[case.label, "child"])
        for (stat, at_thread), (_, at_child) in zip(thread_stats, child_stats, strict=True):
            key = f"{CASE_KEYS[case.label]}_{stat}"
            rows.append(
                {
                    "case": case.label,
                    "stat": stat,
                    "unit": case.unit,
                    "thread": at_thread,
                    "child": at_child,
                    "ratio": at_child / at_thread,
                    "better": "higher" if case.higher_is_better else "lower",
                }
            )
            figures |= {f"{key}_thread": at_thread, f"{key}_child": at_child}
            figures[f"{key}_ratio"] = at_child / at_thread
    figures["tick_p50_added"] = figures["tick_p50_child"] - figures["tick_p50_thread"]
    figures["version_p50_added"] = figures["version_p50_child"] - figures["version_p50_thread"]
    figures["many_vs_thread_call"] = figures["many_median_child"] / figures["tasks_median_thread"]
    figures["many_vs_child_call"] = figures["many_median_child"] / figures["tasks_median_child"]
    figures |= {
        "alone_one_by_one": alone["one by one"],
        "alone_sent_ahead": alone["sent ahead"],
        "alone_ratio": alone["sent ahead"] / alone["one by one"],
        "transfer_socket": moved["unix socketpair"],
        "transfer_shm": moved["shared memory"],
        "transfer_ratio": moved["shared memory"] / moved["unix socketpair"],
    }
    _results.write(
        path,
        tables={
            "calls": _results.table(
                [
                    ("case", "Case"),
                    ("stat", "statistic"),
                    ("unit", "unit"),
                    ("thread", "thread"),
                    ("child", "child"),
                    ("ratio", "child ÷ thread"),
                    ("better", "better"),
                ],
                rows,
            ),
            "other": _results.table(
                [
                    ("case", "Without the connector"),
                    ("a", "first"),
                    ("b", "second"),
                    ("ratio", "second ÷ first"),
                ],
                [
                    {
                        "case": "ChildTerminal, symbol_info_tick: one by one, then 32 sent ahead "
                        "(calls/s)",
                        "a": alone["one by one"],
                        "b": alone["sent ahead"],
                        "ratio": figures["alone_ratio"],
                    },
                    {
                        "case": "60 MB to the parent: unix socketpair, then shared memory (ms)",
                        "a": moved["unix socketpair"],
                        "b": moved["shared memory"],
                        "ratio": figures["transfer_ratio"],
                    },
                ],
            ),
        },
        figures=figures,
        notes="latencies over every call of every round; the rest the median of the rounds",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    _results.add_option(parser)
    options = parser.parse_args()
    results = asyncio.run(main(options.rounds))
    alone = child_alone(options.rounds)
    moved = transfer(options.rounds)
    write_json(options.json, results, alone, moved)
