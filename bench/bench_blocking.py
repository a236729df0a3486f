"""What the blocking facade costs: ``MT5Connector`` calls vs the same calls awaited directly.

The same simulator call (``call("symbol_info_tick", "EURUSD")`` on a ``SimTerminal`` with a frozen
clock) is made back to back, in the same run, rounds interleaved, medians reported:

* **async**: awaited on an ``AsyncMT5Connector`` from a coroutine (the floor for the facade);
* **blocking**: through ``MT5Connector`` from plain code (one hop to its portal loop thread);
* **compat**: through ``aiomt5.compat.install()``'s ``MetaTrader5.symbol_info_tick``.

"Added" is the per-call time minus the async floor: the price of not writing ``await``.

Usage::

    .venv/bin/python bench/bench_blocking.py [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import _results
import aiomt5.compat
from aiomt5 import AsyncMT5Connector, MT5Connector, MT5Settings
from aiomt5.sim import SimClock, SimTerminal

SYMBOL = "EURUSD"
START = "2026-03-04T12:00:00Z"
SETTINGS = {"testing": True, "health_check": False, "call_timeout": 10.0}


def _terminal() -> SimTerminal:
    return SimTerminal(seed=1, clock=SimClock.fixed(START))


async def _async_round(connector: AsyncMT5Connector, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await connector.call("symbol_info_tick", SYMBOL)
    return (time.perf_counter() - started) / calls


def _blocking_round(connector: MT5Connector, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        connector.call("symbol_info_tick", SYMBOL)
    return (time.perf_counter() - started) / calls


def _compat_round(module: object, calls: int) -> float:
    tick = module.symbol_info_tick  # type: ignore[attr-defined]
    started = time.perf_counter()
    for _ in range(calls):
        tick(SYMBOL)
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    _results.add_option(parser)
    args = parser.parse_args()

    loop = asyncio.new_event_loop()
    direct = AsyncMT5Connector(MT5Settings(backend="sim", **SETTINGS), backend=_terminal())
    loop.run_until_complete(direct.connect())
    facade = MT5Connector(MT5Settings(backend="sim", **SETTINGS), backend=_terminal())
    facade.connect()
    module = aiomt5.compat.install(backend=_terminal(), **SETTINGS)
    assert module.initialize()  # type: ignore[attr-defined]

    times: dict[str, list[float]] = {"async": [], "blocking": [], "compat": []}
    try:
        for _ in range(args.rounds):
            times["async"].append(loop.run_until_complete(_async_round(direct, args.calls)))
            times["blocking"].append(_blocking_round(facade, args.calls))
            times["compat"].append(_compat_round(module, args.calls))
    finally:
        loop.run_until_complete(direct.close())
        loop.close()
        facade.close()
        aiomt5.compat.uninstall()

    floor = statistics.median(times["async"])
    print(f"{args.calls} calls x {args.rounds} rounds, median per call:")
    labels = {
        "async": "await connector.call(...)",
        "blocking": "MT5Connector.call(...)",
        "compat": "MetaTrader5.symbol_info_tick(...) via aiomt5.compat",
    }
    rows = []
    for mode, values in times.items():
        per_call = statistics.median(values)
        added = per_call - floor
        print(
            f"  {mode:9} {per_call * 1e6:8.1f} us   added {added * 1e6:7.1f} us   "
            f"ratio to async {per_call / floor:5.2f}x"
        )
        rows.append(
            {
                "mode": labels[mode],
                "us": per_call * 1e6,
                "added": added * 1e6,
                "ratio": per_call / floor,
                "key": mode,
            }
        )
    _results.write(
        args.json,
        tables={
            "modes": _results.table(
                [
                    ("mode", "Mode"),
                    ("us", "µs per call"),
                    ("added", "added to the async call, µs"),
                    ("ratio", "÷ async"),
                ],
                rows,
            )
        },
        figures={f"{row['key']}.{k}": row[k] for row in rows for k in ("us", "added", "ratio")},
    )


if __name__ == "__main__":
    main()
