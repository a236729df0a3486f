"""Recovery from a broken pipe and from a trade-server drop, measured in wall time on the simulator.

Each outage runs on a live connector (default backoff: 1 s doubling to 30 s, jittered; the first
reconnect attempt is immediate) with a steady caller issuing ``symbol_info_tick`` back to back:

* **broken pipe, found by a call**: ``faults.break_pipe()`` while the caller runs; recovery is
  the time from the break to the ``Reconnected`` event;
* **broken pipe, found by the health check** (no traffic): the same, detected by the health
  loop (``health_check_interval``); recovery includes up to one interval of detection;
* **trade-server drop**: ``faults.drop_trade_server()``, then ``restore_trade_server()`` once
  the connector is DEGRADED; recovery is the time from the restore to CONNECTED (up to one
  health interval: only a check can see the server back). No reconnect should happen.

Reported per scenario: recovery p50/p99, calls failed per outage, reconnect attempts per outage.
Baseline, measured in the same run: a manual ``disconnect()`` + ``connect()`` (the cost of a
session), and the call round trip p50.

Usage::

    .venv/bin/python bench/bench_recovery.py [--outages N] [--interval SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import _results
from aiomt5 import AsyncMT5Connector, MT5Error, MT5Settings
from aiomt5._core._events import ConnectorEvent, Reconnected, StateChanged
from aiomt5._core._types import ConnectionState
from aiomt5.sim import SimClock, SimTerminal

START = "2026-03-02T10:00:00Z"


@dataclass
class Outage:
    recovery: float
    failed_calls: int
    attempts: int


class Watch:
    """Event hook: remembers when each kind of event happened."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.events: list[tuple[float, ConnectorEvent]] = []

    def __call__(self, event: ConnectorEvent) -> None:
        self.events.append((time.perf_counter(), event))
        self.arrived.set()

    async def until(self, match: Callable[[ConnectorEvent], bool]) -> float:
        seen = len(self.events)
        while True:
            for at, event in self.events[seen:]:
                if match(event):
                    return at
            seen = len(self.events)
            self.arrived.clear()
            await self.arrived.wait()


def settings(interval: float) -> MT5Settings:
    return MT5Settings(
        _env_file=None,
        backend="sim",
        call_timeout=5.0,
        health_check_interval=interval,
        health_check_timeout=1.0,
    )


class Caller:
    """Calls back to back, counting failures, until stopped."""

    def __init__(self, mt5: AsyncMT5Connector) -> None:
        self.mt5 = mt5
        self.failed = 0
        self.latencies: list[float] = []
        self.running = True

    async def run(self) -> None:
        while self.running:
            started = time.perf_counter()
            try:
                await self.mt5.call("symbol_info_tick", "EURUSD")
            except MT5Error:
                self.failed += 1
                await asyncio.sleep(0)  # a failing caller must not starve the supervisor
            else:
                self.latencies.append(time.perf_counter() - started)


def reconnected(event: ConnectorEvent) -> bool:
    return isinstance(event, Reconnected)


def became(state: ConnectionState) -> Callable[[ConnectorEvent], bool]:
    return lambda event: isinstance(event, StateChanged) and event.new is state


async def broken_pipe(interval: float, outages: int, *, traffic: bool) -> list[Outage]:
    term = SimTerminal(seed=1, clock=SimClock.fixed(START))
    watch = Watch()
    results = []
    async with AsyncMT5Connector(settings(interval), backend=term, event_hooks=[watch]) as mt5:
        caller = Caller(mt5)
        task = asyncio.create_task(caller.run()) if traffic else None
        for _ in range(outages):
            await asyncio.sleep(interval / 10)  # let the caller settle into its rhythm
            failed = caller.failed
            attempts = mt5.get_connection_stats().reconnect_attempts
            broke = time.perf_counter()
            term.faults.break_pipe()
            done = await watch.until(reconnected)
            results.append(
                Outage(
                    done - broke,
                    caller.failed - failed,
                    mt5.get_connection_stats().reconnect_attempts - attempts,
                )
            )
        caller.running = False
        if task is not None:
            await task
    return results


async def trade_server(interval: float, outages: int) -> list[Outage]:
    term = SimTerminal(seed=1, clock=SimClock.fixed(START))
    watch = Watch()
    results = []
    async with AsyncMT5Connector(settings(interval), backend=term, event_hooks=[watch]) as mt5:
        caller = Caller(mt5)
        task = asyncio.create_task(caller.run())
        for _ in range(outages):
            failed = caller.failed
            attempts = mt5.get_connection_stats().reconnect_attempts
            term.faults.drop_trade_server()
            await watch.until(became(ConnectionState.DEGRADED))
            restored = time.perf_counter()
            term.faults.restore_trade_server()
            done = await watch.until(became(ConnectionState.CONNECTED))
            results.append(
                Outage(
                    done - restored,
                    caller.failed - failed,
                    mt5.get_connection_stats().reconnect_attempts - attempts,
                )
            )
        caller.running = False
        await task
    return results


async def manual_reconnect(samples: int) -> tuple[float, float]:
    """(p50 of disconnect()+connect(), p50 call round trip): the baselines."""
    term = SimTerminal(seed=1, clock=SimClock.fixed(START))
    cycles = []
    async with AsyncMT5Connector(settings(30.0), backend=term) as mt5:
        for _ in range(samples):
            started = time.perf_counter()
            await mt5.disconnect()
            await mt5.connect()
            cycles.append(time.perf_counter() - started)
        calls = []
        for _ in range(2000):
            started = time.perf_counter()
            await mt5.call("symbol_info_tick", "EURUSD")
            calls.append(time.perf_counter() - started)
    return statistics.median(cycles), statistics.median(calls)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def report(name: str, outages: list[Outage], session: float, interval: float) -> dict[str, object]:
    recovery = [o.recovery for o in outages]
    p50, p99 = pct(recovery, 0.5), pct(recovery, 0.99)
    print(
        f"{name:<32} recovery p50 {p50 * 1e3:8.2f} ms  p99 {p99 * 1e3:8.2f} ms  "
        f"= {p50 / session:5.2f}x session, {p50 / interval:5.2f}x interval  "
        f"failed calls/outage {statistics.mean(o.failed_calls for o in outages):6.2f}  "
        f"attempts/outage {statistics.mean(o.attempts for o in outages):4.2f}"
    )
    return {
        "outage": name,
        "p50": p50 * 1e3,
        "p99": p99 * 1e3,
        "failed": statistics.mean(o.failed_calls for o in outages),
        "attempts": statistics.mean(o.attempts for o in outages),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.05, help="health_check_interval")
    _results.add_option(parser)
    args = parser.parse_args()
    logging.getLogger("aiomt5").setLevel(logging.CRITICAL)  # the outages are deliberate
    session, call = await manual_reconnect(args.outages)
    print(
        f"baseline: disconnect()+connect() p50 {session * 1e3:.2f} ms; "
        f"call round trip p50 {call * 1e6:.0f} us; health_check_interval {args.interval}s"
    )
    rows = []
    rows.append(
        report(
            "broken pipe, found by a call",
            await broken_pipe(args.interval, args.outages, traffic=True),
            session,
            args.interval,
        )
    )
    rows.append(
        report(
            "broken pipe, found by health",
            await broken_pipe(args.interval, args.outages, traffic=False),
            session,
            args.interval,
        )
    )
    rows.append(
        report(
            "trade server drop (from restore)",
            await trade_server(args.interval, args.outages),
            session,
            args.interval,
        )
    )
    keys = ["pipe_call", "pipe_health", "trade_server"]
    _results.write(
        args.json,
        tables={
            "outages": _results.table(
                [
                    ("outage", "Outage"),
                    ("p50", "recovery p50 ms"),
                    ("p99", "p99 ms"),
                    ("failed", "failed calls per outage"),
                    ("attempts", "reconnect attempts"),
                ],
                rows,
            )
        },
        figures={
            "manual_ms": session * 1e3,
            **{
                f"{k}.{q}": row[q]
                for k, row in zip(keys, rows, strict=True)
                for q in ("p50", "p99")
            },
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
