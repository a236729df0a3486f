"""Orders per second through the connector, and how long reconciling a lost reply takes.

Every mode trades on a fresh ``SimTerminal`` (netting account, frozen clock, EURUSD 0.01 lots,
buy and sell alternating so the book stays one position) in the same run:

* **direct**: ``SimTerminal.order_send(dict)`` on one thread: the floor (the simulated trade
  server's own cost);
* **connector.call**: ``AsyncMT5Connector.call("order_send", dict)``: the worker hop;
* **Trader.order_send**: typed request, tag, filling picked from the symbol, typed result;
* **Trader x8 tasks**: the same with 8 concurrent tasks (orders still go one at a time through
  the terminal, as MT5 requires).

Reconciliation latency: with ``faults.lose_reply("order_send")`` (the order executes, the reply
is lost) and ``faults.break_pipe_on("order_send", after_execution=True)`` (plus a reconnect), the
time from the failed send to the reconciled result, p50/p99, after ``--history`` earlier orders
(the lookup reads the history window, so it grows with the account's recent history).

Usage::

    .venv/bin/python bench/bench_trade.py [--orders N] [--samples N] [--history N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import _results
from aiomt5 import AsyncMT5Connector, MT5Settings
from aiomt5._mt5 import constants as c
from aiomt5._trading._models import TradeRequest
from aiomt5._trading._trader import TradeEvent, Trader
from aiomt5.sim import SimClock, SimTerminal

SYMBOL = "EURUSD"
START = "2026-03-02T10:00:00Z"


def new_terminal() -> SimTerminal:
    return SimTerminal(
        seed=1, clock=SimClock.fixed(START), margin_mode=c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    )


def settings() -> MT5Settings:
    return MT5Settings(_env_file=None, backend="sim", testing=True, call_timeout=10.0)


def request(i: int, tick: Any) -> dict[str, Any]:
    """The i-th market order (buys and sells alternate), at ``tick``'s price: the simulator,
    like a market-execution server, refuses a market order without one (10015)."""
    buy = i % 2 == 0
    return {
        "action": c.TRADE_ACTION_DEAL,
        "symbol": SYMBOL,
        "volume": 0.01,
        "type": c.ORDER_TYPE_BUY if buy else c.ORDER_TYPE_SELL,
        "price": tick.ask if buy else tick.bid,
        "deviation": 20,
        "type_filling": c.ORDER_FILLING_FOK,
        "comment": f"bench {i}",
    }


def direct(orders: int) -> float:
    term = new_terminal()
    term.initialize()
    tick = term.symbol_info_tick(SYMBOL)  # the clock is frozen: one price for the whole run
    start = time.perf_counter()
    for i in range(orders):
        assert term.order_send(request(i, tick)).retcode == c.TRADE_RETCODE_DONE
    return orders / (time.perf_counter() - start)


async def through_call(orders: int) -> float:
    async with AsyncMT5Connector(settings(), backend=new_terminal()) as mt5:
        tick = await mt5.call("symbol_info_tick", SYMBOL)
        start = time.perf_counter()
        for i in range(orders):
            result = await mt5.call("order_send", request(i, tick))
            assert result.retcode == c.TRADE_RETCODE_DONE
        return orders / (time.perf_counter() - start)


async def through_trader(orders: int, tasks: int) -> float:
    async with AsyncMT5Connector(settings(), backend=new_terminal()) as mt5:
        trader = Trader(mt5, settle=0)
        await trader.buy(SYMBOL, 0.01)  # symbol facts cached, as in a running strategy
        await trader.sell(SYMBOL, 0.01)

        async def run(first: int) -> None:
            for i in range(first, orders, tasks):
                kind = c.ORDER_TYPE_BUY if i % 2 == 0 else c.ORDER_TYPE_SELL
                req = TradeRequest(symbol=SYMBOL, volume=0.01, type=kind, deviation=20)
                await trader.order_send(req)

        start = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for first in range(tasks):
                group.create_task(run(first))
        return orders / (time.perf_counter() - start)


async def reconcile_latency(fault: str, samples: int, history: int) -> list[float]:
    term = new_terminal()
    async with AsyncMT5Connector(settings(), backend=term) as mt5:
        began: dict[str, float] = {}
        took: list[float] = []

        def on_event(event: TradeEvent) -> None:
            if event.kind == "ambiguous":
                began[event.tag] = time.perf_counter()
            elif event.kind == "reconciled":
                took.append(time.perf_counter() - began.pop(event.tag))

        # The connector's own supervisor reconnects after a broken pipe; the trader looks
        # again as soon as it has.
        trader = Trader(mt5, settle=0, on_event=on_event)
        for i in range(history):
            await (trader.buy if i % 2 == 0 else trader.sell)(SYMBOL, 0.01)
        for i in range(samples):
            if fault == "lose_reply":
                term.faults.lose_reply("order_send")
            else:
                term.faults.break_pipe_on("order_send", after_execution=True)
            result = await (trader.buy if i % 2 == 0 else trader.sell)(SYMBOL, 0.01)
            assert result.reconciled
        return took


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    _results.add_option(parser)
    args = parser.parse_args()

    rates: dict[str, list[float]] = {
        "direct SimTerminal.order_send": [],
        "connector.call('order_send')": [],
        "Trader.order_send": [],
        "Trader.order_send x8 tasks": [],
    }
    for _ in range(args.rounds):  # interleaved rounds: a noisy machine hits every mode alike
        rates["direct SimTerminal.order_send"].append(direct(args.orders))
        rates["connector.call('order_send')"].append(await through_call(args.orders))
        rates["Trader.order_send"].append(await through_trader(args.orders, 1))
        rates["Trader.order_send x8 tasks"].append(await through_trader(args.orders, 8))
    floor = statistics.median(rates["direct SimTerminal.order_send"])
    print(f"orders per second ({args.orders} orders, median of {args.rounds} rounds)")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"  {name:32} {rate:9.0f}/s   {rate / floor:5.2f}x of direct")

    print(f"\nreconciliation latency ({args.samples} samples after {args.history} orders)")
    reconciled = []
    for fault in ("lose_reply", "break_pipe_after_execution"):
        took = await reconcile_latency(fault, args.samples, args.history)
        per_order = 1 / statistics.median(rates["Trader.order_send"])
        p50, p99 = pct(took, 0.5), pct(took, 0.99)
        print(
            f"  {fault:28} p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"
            f"   p50 = {p50 / per_order:5.1f} plain orders"
        )
        reconciled.append({"fault": fault, "p50": p50 * 1000, "p99": p99 * 1000})
    orders = [
        {"path": name, "rate": statistics.median(v), "ratio": statistics.median(v) / floor}
        for name, v in rates.items()
    ]
    _results.write(
        args.json,
        tables={
            "orders": _results.table(
                [("path", "Path"), ("rate", "orders/s"), ("ratio", "÷ direct")], orders
            ),
            "reconcile": _results.table(
                [("fault", "Ambiguous outcome"), ("p50", "p50 ms"), ("p99", "p99 ms")], reconciled
            ),
        },
        figures={
            **{f"rate.{row['path']}": row["rate"] for row in orders},
            **{f"{row['fault']}.{q}": row[q] for row in reconciled for q in ("p50", "p99")},
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
