"""Benchmark: what a call holding the GIL does to the event loop, thread vs child process.

The real MetaTrader5 module holds the GIL for the whole of every call. With the simulator doing
the same (``sim_hold_gil=True``), a ``symbol_info_tick`` hung for ``--hang`` seconds with
``call_timeout=0.3``, while a task wants a turn every 10 ms:

* ``isolation="thread"``: the simulator in this process, called from the worker thread;
* ``isolation="auto"`` (the default, a child process for a GIL-holding terminal).

Printed per isolation: when ``MT5TimeoutError`` arrived, the ticker's longest wait past its
10 ms, and how many turns it got during the hang; then the ratio thread ÷ child of the stall.

Run: ``.venv/bin/python bench/bench_gil_stall.py [--hang SECONDS]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import _results
from aiomt5 import AsyncMT5Connector, MT5Settings, MT5TimeoutError

TIMEOUT = 0.3
TICK = 0.01


async def measure(isolation: str, hang: float) -> tuple[float, float, int]:
    settings = MT5Settings(  # type: ignore[call-arg]
        _env_file=None,
        backend="sim",
        sim_hold_gil=True,
        isolation=isolation,
        call_timeout=TIMEOUT,
        worker_wedged_after=hang + 5,  # let the hang run out, no replacement
        sim_start="2026-03-04T10:00:00Z",
    )
    worst = 0.0
    turns = 0

    async def ticker() -> None:
        nonlocal worst, turns
        last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            worst = max(worst, now - last - TICK)
            turns += 1
            last = now

    async with AsyncMT5Connector(settings) as mt5:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.1)
        worst, turns = 0.0, 0
        mt5.backend.faults.hang("symbol_info_tick", seconds=hang)
        started = time.perf_counter()
        try:
            await mt5.call("symbol_info_tick", "EURUSD")
        except MT5TimeoutError:
            raised = time.perf_counter() - started
        else:
            raise AssertionError("the hung call did not time out")
        await asyncio.sleep(max(0.0, hang + 0.1 - (time.perf_counter() - started)))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return raised, worst, turns


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hang", type=float, default=2.0)
    _results.add_option(parser)
    options = parser.parse_args()
    print(f"symbol_info_tick hung {options.hang} s, call_timeout={TIMEOUT}, 10 ms ticker")
    print(f"{'':22} {'timeout after':>14} {'longest stall':>14} {'ticker turns':>13}")
    stalls = {}
    rows = []
    for isolation in ("thread", "auto"):
        raised, worst, turns = await measure(isolation, options.hang)
        stalls[isolation] = worst
        label = "thread" if isolation == "thread" else "child (default)"
        print(f"{label:22} {raised:>12.3f} s {worst * 1e3:>11.1f} ms {turns:>13}")
        rows.append({"isolation": label, "raised": raised, "stall": worst * 1e3, "turns": turns})
    ratio = stalls["thread"] / max(stalls["auto"], 1e-6)
    print(f"stall, thread ÷ child: {ratio:.0f}x")
    rows[0]["isolation"] = 'GIL-holding simulator, in-process thread (`isolation="thread"`)'
    rows[1]["isolation"] = "GIL-holding simulator, child process (the default)"
    _results.write(
        options.json,
        tables={
            "stall": _results.table(
                [
                    (
                        "isolation",
                        f"symbol_info_tick hung {options.hang:g} s, call_timeout={TIMEOUT}",
                    ),
                    ("raised", "MT5TimeoutError after, s"),
                    ("stall", "longest event-loop stall, ms"),
                    ("turns", "turns of a 10 ms ticker"),
                ],
                rows,
            )
        },
        figures={"ratio": ratio},
    )


if __name__ == "__main__":
    asyncio.run(main())
