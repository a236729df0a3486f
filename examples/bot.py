"""A small async trading bot: a moving-average crossover on closed M1 bars, trading exactly once.

The bot keeps no position state of its own. On every closed bar it works out the position it
wants (long, short or flat) and compares it with the positions the terminal reports, so a lost
reply, a reconnect or a restart of the bot cannot make it trade twice: the next bar sees the truth.
Orders go through the connector's exactly-once trader (tagged, reconciled after an ambiguous
outcome), and the bar stream resumes from its cursor after a reconnect.

Run it on the built-in simulator, where simulated time runs fast::

    python examples/bot.py --bars 240

With ``MT5_BACKEND`` set it takes its whole connection from the ``MT5_*`` settings instead: a
real terminal (use a demo account), or a replay of recorded prices, which runs this file
unchanged::

    aiomt5 replay examples/bot.py --store ~/mt5-history --fast -- --bars 100000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomt5

MAGIC = 20261124
log = logging.getLogger("bot")


@dataclass
class BotReport:
    """What a run did."""

    bars: int = 0
    trades: int = 0
    errors: list[str] = field(default_factory=list)


def signal(closes: collections.deque[float], fast: int, slow: int) -> int:
    """+1 (want long), -1 (want short) or 0 (not enough bars yet) from two moving averages."""
    if len(closes) < slow:
        return 0
    prices = list(closes)
    fast_ma = sum(prices[-fast:]) / fast
    slow_ma = sum(prices[-slow:]) / slow
    return 1 if fast_ma > slow_ma else -1


async def rebalance(mt5: aiomt5.AsyncMT5Connector, symbol: str, want: int, volume: float) -> int:
    """Make the bot's positions match ``want``; returns the number of orders sent."""
    sent = 0
    mine = [p for p in await mt5.positions(symbol) if p.magic == MAGIC]
    for position in mine:
        if (position.type == 0) != (want > 0):  # POSITION_TYPE_BUY is 0
            await mt5.close_position(position)
            sent += 1
    if not any((p.type == 0) == (want > 0) for p in mine):
        opener = mt5.buy if want > 0 else mt5.sell
        await opener(symbol, volume, magic=MAGIC, comment="ma-cross")
        sent += 1
    return sent


async def run_bot(
    mt5: aiomt5.AsyncMT5Connector,
    symbol: str = "EURUSD",
    *,
    fast: int = 5,
    slow: int = 20,
    volume: float = 0.1,
    bars: int = 120,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    on_bar: Callable[[int], object] | None = None,
) -> BotReport:
    """Trade ``bars`` closed bars of ``symbol``; trouble on one bar is logged, not fatal."""
    report = BotReport()
    closes: collections.deque[float] = collections.deque(maxlen=slow)
    name = await mt5.find_symbol(symbol)
    history = await mt5.get_rates(name, "M1", count=slow)
    closes.extend(float(c) for c in history["close"][:-1])  # the last one is still forming
    async with mt5.stream_bars(name, "M1", sleep=sleep) as stream:
        async for bar in stream:
            report.bars += 1
            closes.append(bar.close)
            want = signal(closes, fast, slow)
            if want:
                try:
                    report.trades += await rebalance(mt5, name, want, volume)
                except aiomt5.MT5Error as exc:  # the next bar looks at the terminal again
                    log.warning("bar %s: %s", bar.datetime, exc)
                    report.errors.append(type(exc).__name__)
            if on_bar is not None:
                on_bar(report.bars)
            if report.bars >= bars:
                break
    return report


async def main(bars: int) -> None:
    """Run the bot where ``MT5_*`` settings point, or on the simulator with a fast clock."""
    if os.environ.get("MT5_BACKEND"):
        async with aiomt5.AsyncMT5Connector(aiomt5.MT5Settings()) as mt5:
            report = await run_bot(mt5, bars=bars)
            account = await mt5.get_account_info()
        _print(report, account)
        return

    from aiomt5.sim import SimClock, SimTerminal

    terminal = SimTerminal(seed=7, clock=SimClock.fixed("2026-03-02T08:00:00Z"))

    async def fast_sleep(seconds: float) -> None:
        terminal.clock.advance(seconds)
        await asyncio.sleep(0)

    settings = aiomt5.MT5Settings(backend="sim", health_check=False)
    async with aiomt5.AsyncMT5Connector(settings, backend=terminal) as mt5:
        report = await run_bot(mt5, bars=bars, sleep=fast_sleep)
        account = await mt5.get_account_info()
    _print(report, account)


def _print(report: BotReport, account: Any) -> None:
    print(
        f"{report.bars} bars, {report.trades} orders, {len(report.errors)} errors; "
        f"balance {account.balance:.2f}, equity {account.equity:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=240, help="closed bars to trade")
    asyncio.run(main(parser.parse_args().bars))
