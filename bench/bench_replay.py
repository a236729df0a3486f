"""Benchmark: replaying ``examples/bot.py`` on recorded M1 bars with ``aiomt5 replay --fast``.

The recording comes from the simulator itself: ``HistoryStore.update`` through a connector on a
``SimTerminal`` whose clock is fixed at the end of the span, so every run records the same bars.
Then the command a bot author types runs in a subprocess (startup included)::

    aiomt5 replay examples/bot.py --store DIR --fast --seed 1 -- --bars 1000000

The bot polls its bar stream every (virtual) second, so a day is 86 400 polls, each two
terminal calls. Printed: recording time, replay wall time, simulated days per real second, the
summary line, and the wall time per simulated day. ``--days 30`` is the month of issue 18.

For comparison, ``--minute-bot`` also replays (in process, ``aiomt5.replay.run``) a bot that
sleeps until each minute's bar has closed and then reads the last 64 bars and the tick once: the
same reads as ``examples/bot.py`` per bar, 60 times fewer polls.

Run: ``.venv/bin/python bench/bench_replay.py [--days N] [--rounds N] [--minute-bot] [--json PATH]``
(``--json docs/assets/bench/replay.json``: a table and figures the docs can quote).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _results
import aiomt5
from aiomt5 import HistoryStore
from aiomt5.sim import SimClock, SimTerminal

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


async def record(root: Path, days: float) -> int:
    """Record ``days`` of EURUSD M1 from the simulator into a HistoryStore at ``root``."""
    store = HistoryStore(root)
    terminal = SimTerminal(seed=11, clock=SimClock.fixed(START + timedelta(days=days)))
    settings = aiomt5.MT5Settings(backend="sim", health_check=False)
    async with aiomt5.AsyncMT5Connector(settings, backend=terminal) as mt5:
        result = await store.update(mt5, "EURUSD", "M1", start=START)
    return result.tail_rows


def replay(root: Path, report: Path) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5_")}
    command = [sys.executable, "-m", "aiomt5", "replay", str(ROOT / "examples" / "bot.py"),
               "--store", str(root), "--fast", "--seed", "1", "--report", str(report),
               "--", "--bars", "1000000"]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - began, done.stdout


async def minute_bot(mt5: aiomt5.AsyncMT5Connector) -> None:
    """Reads the latest bars once per closed M1 bar (sleeping to the next minute)."""
    loop = asyncio.get_running_loop()
    terminal_now = (await mt5.call("symbol_info_tick", "EURUSD")).time
    offset = terminal_now - loop.time()
    while True:
        now = loop.time() + offset
        await asyncio.sleep(60 - now % 60 + 1)
        await mt5.call("copy_rates_from_pos", "EURUSD", 1, 0, 64)
        await mt5.call("symbol_info_tick", "EURUSD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30.0, help="days recorded and replayed")
    parser.add_argument("--rounds", type=int, default=1, help="replays (the median is shown)")
    parser.add_argument("--minute-bot", action="store_true", help="also the once-a-minute bot")
    _results.add_option(parser)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "store"
        began = time.perf_counter()
        bars = asyncio.run(record(root, options.days))
        recorded = time.perf_counter() - began
        print(f"recorded {bars} M1 bars ({options.days:g} days) in "
              f"{recorded:.1f} s")  # fmt: skip
        walls = []
        for n in range(options.rounds):
            wall, stdout = replay(root, Path(folder) / f"report{n}.html")
            walls.append(wall)
            print(f"round {n + 1}: {wall:.1f} s")
            if n == 0:
                print(stdout.rstrip())
        wall = statistics.median(walls)
        days, polls = options.days, round(options.days * 86400)
        rows = [{"bot": "examples/bot.py, polls every second", "days": days, "bars": bars,
                 "polls": polls, "wall": wall, "per_day": wall / days}]  # fmt: skip
        figures: dict[str, float] = {"days": days, "bars": bars, "record_s": recorded,
                                     "polls": polls, "wall_s": wall, "per_day_s": wall / days,
                                     "sim_per_s": days * 86400 / wall,
                                     "per_poll_us": wall / polls * 1e6}  # fmt: skip
        print(f"replay of {options.days:g} days: {wall:.1f} s wall (median of {len(walls)}), "
              f"{wall / options.days:.2f} s per simulated day, "
              f"{options.days * 86400 / wall:.0f} simulated s per s")  # fmt: skip
        if options.minute_bot:
            import aiomt5.replay

            began = time.perf_counter()
            result = aiomt5.replay.run(minute_bot, store=root, seed=1)
            wall = time.perf_counter() - began
            print(f"once-a-minute bot, {options.days:g} days: {wall:.1f} s wall, "
                  f"{result.jumps} clock jumps")  # fmt: skip
            rows.append({"bot": "reads bars once per closed bar (--minute-bot)", "days": days,
                         "bars": bars, "polls": round(days * 1440), "wall": wall,
                         "per_day": wall / days})  # fmt: skip
            figures |= {"minute_bot_s": wall, "minute_bot_jumps": result.jumps}
        columns = [("bot", "bot"), ("days", "days replayed"), ("bars", "M1 bars"),
                   ("polls", "polls"), ("wall", "wall time, s"),
                   ("per_day", "s per day")]  # fmt: skip
        _results.write(
            options.json,
            tables={"replay": _results.table(columns, rows)},
            figures=figures,
            notes="examples/bot.py: `aiomt5 replay --fast` in a subprocess, startup included; "
            "--minute-bot: aiomt5.replay.run in process",
        )


if __name__ == "__main__":
    main()
