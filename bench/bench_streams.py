"""Benchmark: event-loop CPU of ``stream_ticks`` over 100 symbols at a 250 ms poll interval.

The simulator runs on a fixed clock that the stream's ``sleep`` advances by the poll interval,
so every round covers the same simulated time (the same ticks) without waiting for real.
The CPU counted is the event-loop thread's own (``time.thread_time``): the backend calls run on
the connector's worker thread, so the simulator's work is not in it.

* **bare calls** (baseline): the same ``copy_ticks_from`` call per symbol per poll through
  ``connector.call``, results thrown away: what any polling costs the loop through the connector.
* **stream_ticks**: the real stream, every tick consumed.

Rounds alternate (bare, stream, bare, stream, ...); per round: loop CPU per poll, per symbol,
and the share of one core at the poll interval. The figure is the stream's median; the ratio is
the median of the per-round stream / bare ratios (what the stream adds on top of its calls).

Run: ``.venv/bin/python bench/bench_streams.py [--rounds N] [--polls N] [--symbols N]``
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
from typing import Any

import _results
from aiomt5._connector import AsyncMT5Connector
from aiomt5._market._streams import stream_ticks
from aiomt5._settings import MT5Settings
from aiomt5.sim import CATALOGUE, SimClock, SimTerminal

NOW = "2026-03-04T10:00:00Z"  # a Wednesday, FX and metals trading
POLL = 0.25


def symbols(count: int) -> list[str]:
    """``count`` names: the catalogue's FX pairs and metals, then renamed copies of them."""
    base = [s.name for s in CATALOGUE if s.path.startswith(("Forex", "Metals"))]
    names = list(base)
    copy = 1
    while len(names) < count:
        names.extend(f"{name}.{copy}" for name in base)
        copy += 1
    return names[:count]


def terminal(names: list[str]) -> SimTerminal:
    by_name = {spec.name: spec for spec in CATALOGUE}
    specs = [dataclasses.replace(by_name[name.split(".")[0]], name=name) for name in names]
    return SimTerminal(seed=1, clock=SimClock.fixed(NOW), symbols=specs, market_watch=names)


def settings() -> MT5Settings:
    return MT5Settings(_env_file=None, backend="sim", testing=True, call_timeout=60.0)


class SimSleep:
    """The stream's sleep: advance the simulated clock by the interval, yield to the loop.

    It also times the stream: loop CPU from the first sleep (the stream has started and caught
    up) to the sleep after ``polls`` more polls.
    """

    def __init__(self, term: SimTerminal, polls: int) -> None:
        self.term = term
        self.polls = polls
        self.sleeps = 0
        self.started = 0.0
        self.spent = 0.0

    @property
    def done(self) -> bool:
        return self.sleeps > self.polls

    async def __call__(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps == 1:
            self.started = time.thread_time()
        elif self.sleeps == self.polls + 1:
            self.spent = time.thread_time() - self.started
        self.term.clock.advance(seconds)
        await asyncio.sleep(0)


async def bare(
    connector: AsyncMT5Connector, term: SimTerminal, names: list[str], polls: int, share: int
) -> tuple[float, int]:
    flags = term.COPY_TICKS_ALL
    rows = 0
    started = time.thread_time()
    for _ in range(polls):
        second = int(term.clock.now()) - 1
        for name in names:
            rows += len(await connector.call("copy_ticks_from", name, second, share, flags))
        term.clock.advance(POLL)
        await asyncio.sleep(0)
    return time.thread_time() - started, rows


async def streamed(
    connector: AsyncMT5Connector, term: SimTerminal, names: list[str], polls: int
) -> tuple[float, int]:
    sleep = SimSleep(term, polls)
    ticks = 0
    async with stream_ticks(connector, *names, poll_interval=POLL, sleep=sleep) as stream:
        async for _tick in stream:
            ticks += 1 if sleep.sleeps else 0
            if sleep.done:
                break
    return sleep.spent, ticks


async def run(rounds: int, polls: int, count: int) -> dict[str, Any]:
    names = symbols(count)
    term = terminal(names)
    term.initialize()
    share = 10_000 // len(names)
    async with AsyncMT5Connector(settings(), backend=term) as connector:
        await bare(connector, term, names, 4, share)  # warm-up
        await streamed(connector, term, names, 4)
        base: list[float] = []
        real: list[float] = []
        ticks = 0
        for _ in range(rounds):
            spent, _rows = await bare(connector, term, names, polls, share)
            base.append(spent / polls)
            spent, ticks = await streamed(connector, term, names, polls)
            real.append(spent / polls)
    ratio = statistics.median(r / b for r, b in zip(real, base, strict=True))
    per_poll = statistics.median(real)
    per_bare = statistics.median(base)
    print(
        f"stream_ticks, {len(names)} symbols, poll {POLL * 1000:.0f} ms, {polls} polls x "
        f"{rounds} rounds, ~{ticks / polls:.0f} ticks per poll"
    )
    print(
        f"  bare calls:   loop CPU {per_bare * 1e3:7.2f} ms/poll "
        f"{per_bare / len(names) * 1e6:6.1f} us/symbol  {per_bare / POLL:6.1%} of a core"
    )
    print(
        f"  stream_ticks: loop CPU {per_poll * 1e3:7.2f} ms/poll "
        f"{per_poll / len(names) * 1e6:6.1f} us/symbol  {per_poll / POLL:6.1%} of a core"
    )
    print(f"  ratio stream / bare calls, median of rounds {ratio:6.2f}")
    return {
        "rows": [
            {
                "case": case,
                "poll_ms": spent * 1e3,
                "symbol_us": spent / len(names) * 1e6,
                "core": spent / POLL * 100,
            }
            for case, spent in (
                ("bare connector.call reads (baseline)", per_bare),
                ("stream_ticks", per_poll),
            )
        ],
        "ratio": ratio,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--polls", type=int, default=40)
    parser.add_argument("--symbols", type=int, default=100)
    _results.add_option(parser)
    args = parser.parse_args()
    found = asyncio.run(run(args.rounds, args.polls, args.symbols))
    _results.write(
        args.json,
        tables={
            "loop_cpu": _results.table(
                [
                    ("case", f"Loop CPU, {args.symbols} symbols, {POLL * 1000:.0f} ms polls"),
                    ("poll_ms", "ms per poll"),
                    ("symbol_us", "µs per symbol"),
                    ("core", "% of one core"),
                ],
                found["rows"],
            )
        },
        figures={"ratio": found["ratio"]},
    )


if __name__ == "__main__":
    main()
