"""Benchmark: paged history into a frame versus raw simulator calls; memory of a tick stream.

1. **1M M1 bars.** ``fetch_rates_frame`` (pandas) through an ``AsyncMT5Connector`` (worker
   thread, one call per page under ``maxbars``, symbol resolution, Market Watch select, the
   frame built from the pages), divided by the raw ``SimTerminal.copy_rates_range`` calls that
   return the same bars, made directly with the fewest pages ``maxbars`` allows. Both read a
   warmed market (the simulator caches generated days); ``--repeat`` back-to-back pairs, the
   median pair ratio is the figure. Goal: <= 1.5.
2. **Tick stream memory.** One simulated hour of ``stream_ticks`` over two symbols, driven by
   the simulator's fixed clock (one poll per simulated second): traced memory after the first
   10 minutes and at the end must be about the same (flat: the stream keeps nothing).

Run: ``.venv/bin/python bench/bench_history.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import tracemalloc
from datetime import UTC, datetime

import numpy as np

from aiomt5._connector import AsyncMT5Connector
from aiomt5._market._frames import fetch_rates_frame
from aiomt5._market._streams import stream_ticks
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal

ROWS = 1_000_000
# Monday 2010-01-04 00:00 UTC; FX trades 7200 minutes a week, so 138 weeks + 4 days + 640
# minutes hold exactly 1M M1 bars.
FX_FROM = int(datetime(2010, 1, 4, tzinfo=UTC).timestamp())
FX_TO = FX_FROM + (138 * 7 + 4) * 86_400 + 640 * 60 - 60
NOW = "2026-03-02T10:00:00Z"


def settings() -> MT5Settings:
    return MT5Settings(_env_file=None, backend="sim", testing=True, call_timeout=120.0)


def raw_calls(term: SimTerminal) -> int:
    """The same bars by direct copy_rates_range calls, windows of maxbars - 1 minutes."""
    span = (term.maxbars - 1) * 60
    rows = 0
    low = FX_FROM
    while low <= FX_TO:
        high = min(low + span - 1, FX_TO)
        rows += len(term.copy_rates_range("EURUSD", term.TIMEFRAME_M1, low, high))
        low = high + 1
    return rows


async def paged_frame(connector: AsyncMT5Connector) -> int:
    frame = await fetch_rates_frame(
        connector,
        "EURUSD",
        "M1",
        datetime.fromtimestamp(FX_FROM, UTC),
        datetime.fromtimestamp(FX_TO, UTC),
        engine="pandas",
    )
    return len(frame)


def best(seconds: list[float]) -> float:
    return min(seconds)


async def bench_rates(repeat: int) -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    term.initialize()
    async with AsyncMT5Connector(settings(), backend=term) as connector:
        assert raw_calls(term) == ROWS  # warms the simulator's caches
        assert await paged_frame(connector) == ROWS
        raw: list[float] = []
        paged: list[float] = []
        for _ in range(repeat):
            started = time.perf_counter()
            raw_calls(term)
            raw.append(time.perf_counter() - started)
            started = time.perf_counter()
            await paged_frame(connector)
            paged.append(time.perf_counter() - started)
    # Each run pairs a raw pass with a paged one back to back; the median of the pair ratios
    # is robust to load from other processes, the ratio of the best times is reported too.
    pairs = statistics.median(p / r for p, r in zip(paged, raw, strict=True))
    print(f"1M M1 bars, maxbars={term.maxbars}, {repeat} runs:")
    print(f"  raw copy_rates_range calls     {best(raw) * 1000:8.1f} ms (best)")
    print(f"  fetch_rates_frame (pandas)     {best(paged) * 1000:8.1f} ms (best)")
    print(f"  ratio of best times            {best(paged) / best(raw):8.2f}")
    print(f"  ratio, median of pairs         {pairs:8.2f}   (goal <= 1.5)")


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(bench_rates(args.repeat))
    asyncio.run(bench_stream_memory())


if __name__ == "__main__":
    main()
