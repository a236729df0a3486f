"""Benchmark: paged history into pandas and polars frames versus the raw page copy.

* **1M M1 bars.** ``fetch_rates_frame`` (pandas, polars) through an ``AsyncMT5Connector``
  (worker thread, one call per page under ``maxbars``, symbol resolution, Market Watch select,
  the frame built from the pages), against the baseline: the raw ``SimTerminal.copy_rates_range``
  calls for the same bars, made directly with the fewest pages ``maxbars`` allows, joined into
  one array (``np.concatenate``). Goals: pandas <= 1.5x, polars <= 1.3x. For reference, the
  same raw calls with the pages dropped as they come (not joined) are timed too, and each frame
  against them.
* **From pages in memory** (no download to overlap with): the frame of the same 1M bars in
  ``maxbars`` pages already fetched, against ``np.concatenate`` of those pages: what building
  the frame costs the event loop, compared with the one copy any joined result needs.
* **Ticks.** ``fetch_ticks_frame`` over one FX week (~430k ticks) against raw
  ``copy_ticks_range`` calls of one day each, joined.

Every case reads a warmed market (the simulator caches generated history). Rounds are
interleaved (baseline, then each case, the case order rotating every round); the figure is
the median over rounds of case time / baseline time of the same round.

Run: ``.venv/bin/python bench/bench_frames.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import numpy as np

import _results
from aiomt5._connector import AsyncMT5Connector
from aiomt5._market._frames import _build, fetch_rates_frame, fetch_ticks_frame
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal

ROWS = 1_000_000
# Monday 2010-01-04 00:00 UTC; FX trades 7200 minutes a week, so 138 weeks + 4 days + 640
# minutes hold exactly 1M M1 bars.
FX_FROM = int(datetime(2010, 1, 4, tzinfo=UTC).timestamp())
FX_TO = FX_FROM + (138 * 7 + 4) * 86_400 + 640 * 60 - 60
TICKS_FROM = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp())  # Monday
TICKS_TO = TICKS_FROM + 5 * 86_400 - 1  # through Friday
NOW = "2026-03-09T10:00:00Z"

Case = Callable[[], Awaitable[int]]
UNJOINED = "raw calls, pages not joined"


def settings() -> MT5Settings:
    return MT5Settings(_env_file=None, backend="sim", testing=True, call_timeout=120.0)


def raw_pages(term: SimTerminal) -> list[np.ndarray]:
    """The bars by direct copy_rates_range calls, windows of maxbars - 1 minutes."""
    span = (term.maxbars - 1) * 60
    pages = []
    low = FX_FROM
    while low <= FX_TO:
        high = min(low + span - 1, FX_TO)
        pages.append(term.copy_rates_range("EURUSD", term.TIMEFRAME_M1, low, high))
        low = high + 1
    return pages


def raw_rates(term: SimTerminal) -> int:
    """The same bars by direct copy_rates_range calls, joined."""
    return len(np.concatenate(raw_pages(term)))


def in_memory(pages: list[np.ndarray], engine: str) -> Case:
    async def case() -> int:
        return len(_build(pages, None, "rates", engine))  # type: ignore[arg-type]

    return case


def raw_ticks(term: SimTerminal) -> int:
    """The same ticks by direct copy_ticks_range calls of one day each, joined."""
    pages = [
        term.copy_ticks_range("EURUSD", low, min(low + 86_399, TICKS_TO), term.COPY_TICKS_ALL)
        for low in range(TICKS_FROM, TICKS_TO + 1, 86_400)
    ]
    return len(np.concatenate(pages))


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def rounds_of(
    baseline: Callable[[], int], cases: dict[str, Case], rounds: int
) -> tuple[list[float], dict[str, list[float]]]:
    base: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    for index in range(rounds):
        gc.collect()  # the last round's frames (pandas' hold reference cycles) freed untimed
        started = time.perf_counter()
        baseline()
        base.append(time.perf_counter() - started)
        shift = index % len(order)
        for name in order[shift:] + order[:shift]:
            gc.collect()
            started = time.perf_counter()
            await cases[name]()
            times[name].append(time.perf_counter() - started)
    return base, times


def report(
    title: str,
    base: list[float],
    times: dict[str, list[float]],
    goals: dict[str, str],
    baseline: str = "raw pages, joined (baseline)",
) -> list[dict[str, object]]:
    print(title)
    print(f"  {baseline:34} {statistics.median(base) * 1000:8.1f} ms")
    for name, seconds in times.items():
        ratio = statistics.median(s / b for s, b in zip(seconds, base, strict=True))
        goal = f"   (goal {goals[name]})" if name in goals else ""
        print(f"  {name:34} {statistics.median(seconds) * 1000:8.1f} ms  {ratio:5.2f}x{goal}")
    return [{"case": baseline, "ms": statistics.median(base) * 1000, "ratio": 1.0}] + [
        {
            "case": name,
            "ms": statistics.median(seconds) * 1000,
            "ratio": statistics.median(s / b for s, b in zip(seconds, base, strict=True)),
        }
        for name, seconds in times.items()
    ]


async def bench(rounds: int) -> dict[str, list[dict[str, object]]]:
    term = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    term.initialize()
    async with AsyncMT5Connector(settings(), backend=term) as connector:

        def rates(engine: str) -> Case:
            async def case() -> int:
                frame = await fetch_rates_frame(
                    connector, "EURUSD", "M1", utc(FX_FROM), utc(FX_TO), engine=engine
                )
                return len(frame)

            return case

        def ticks(engine: str) -> Case:
            async def case() -> int:
                frame = await fetch_ticks_frame(
                    connector, "EURUSD", utc(TICKS_FROM), utc(TICKS_TO), engine=engine
                )
                return len(frame)

            return case

        async def unjoined() -> int:
            return sum(len(page) for page in raw_pages(term))

        rate_cases = {f"fetch_rates_frame ({e})": rates(e) for e in ("pandas", "polars")}
        rate_cases[UNJOINED] = unjoined
        tick_cases = {f"fetch_ticks_frame ({e})": ticks(e) for e in ("pandas", "polars")}
        # Warm the simulator's caches and check every case returns the same rows.
        assert raw_rates(term) == ROWS
        for case in rate_cases.values():
            assert await case() == ROWS
        tick_rows = raw_ticks(term)
        for case in tick_cases.values():
            assert await case() == tick_rows
        base, times = await rounds_of(lambda: raw_rates(term), rate_cases, rounds)
        bars = report(
            f"1M M1 bars, maxbars={term.maxbars}, median of {rounds} interleaved rounds:",
            base,
            times,
            {"fetch_rates_frame (pandas)": "<= 1.5", "fetch_rates_frame (polars)": "<= 1.3"},
        )
        # Each unjoined page is freed before the next is made, so it reuses the same (cached)
        # memory: a floor no result that holds 1M bars at once can reach.
        for engine in ("pandas", "polars"):
            frame = times[f"fetch_rates_frame ({engine})"]
            ratio = statistics.median(f / u for f, u in zip(frame, times[UNJOINED], strict=True))
            print(f"  {engine + ' frame / pages not joined':34} {ratio:20.2f}x")
        pages = raw_pages(term)
        built = {f"frame of the pages ({e})": in_memory(pages, e) for e in ("pandas", "polars")}
        base, times = await rounds_of(lambda: len(np.concatenate(pages)), built, rounds)
        in_memory_rows = report(
            f"the same bars in {len(pages)} pages in memory:",
            base,
            times,
            {},
            "np.concatenate(pages) (baseline)",
        )
        base, times = await rounds_of(lambda: raw_ticks(term), tick_cases, rounds)
        tick_rows_report = report(f"{tick_rows} EURUSD ticks (one FX week):", base, times, {})
    return {"bars": bars, "in_memory": in_memory_rows, "ticks": tick_rows_report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    _results.add_option(parser)
    args = parser.parse_args()
    tables = asyncio.run(bench(args.rounds))
    columns = [("case", "Case"), ("ms", "ms (median)"), ("ratio", "÷ baseline (median of rounds)")]
    _results.write(
        args.json,
        tables={name: _results.table(columns, rows) for name, rows in tables.items()},
        figures={
            f"{name}.{row['case']}": row["ratio"] for name, rows in tables.items() for row in rows
        },
    )


if __name__ == "__main__":
    main()
