"""Benchmark: memory of a tick stream (frames from paged history: ``bench/bench_frames.py``).

**Tick stream memory.** One simulated hour of ``stream_ticks`` over two symbols, driven by the
simulator's fixed clock (one poll per simulated second): traced memory after the first 10
minutes and at the end must be about the same (flat: the stream keeps nothing).

Run: ``.venv/bin/python bench/bench_history.py``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc

import numpy as np

from aiomt5._connector import AsyncMT5Connector
from aiomt5._market._streams import stream_ticks
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal

NOW = "2026-03-02T10:00:00Z"


def settings() -> MT5Settings:
    return MT5Settings(_env_file=None, backend="sim", testing=True, call_timeout=120.0)


class SimSleep:
    """The stream's sleep: advance the simulated clock, yield to the loop."""

    def __init__(self, term: SimTerminal) -> None:
        self.term = term

    async def __call__(self, seconds: float) -> None:
        self.term.clock.advance(seconds)
        await asyncio.sleep(0)


async def bench_stream_memory() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    async with AsyncMT5Connector(settings(), backend=term) as connector:
        stream = stream_ticks(
            connector, "EURUSD", "GBPUSD", poll_interval=1.0, sleep=SimSleep(term)
        )
        end = term.clock.now() + 3600
        marks: dict[str, int] = {}
        ticks = 0
        checksum = 0.0
        tracemalloc.start()
        async for tick in stream:
            ticks += 1
            checksum += tick.bid
            if "10min" not in marks and term.clock.now() >= end - 3000:
                gc.collect()
                marks["10min"] = tracemalloc.get_traced_memory()[0]
            if term.clock.now() >= end:
                break
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        await stream.aclose()
    assert np.isfinite(checksum)
    print(f"tick stream, 1 simulated hour, 2 symbols, {ticks} ticks:")
    print(f"  traced memory after 10 min     {marks['10min'] / 1024:8.1f} KiB")
    print(f"  traced memory after 60 min     {current / 1024:8.1f} KiB   (peak {peak / 1024:.1f})")
    print(f"  ratio 60 min / 10 min          {current / marks['10min']:8.2f}   (flat: ~1)")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    asyncio.run(bench_stream_memory())


if __name__ == "__main__":
    main()
