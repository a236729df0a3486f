"""The docs' home page example (docs/index.md shows its output)."""

import asyncio

import aiomt5
from aiomt5.sim import SimClock, SimTerminal


async def main() -> None:
    # A simulated terminal, its clock frozen on a Wednesday noon. With a real
    # one: aiomt5.mt5_connection(), credentials from MT5_* variables or .env.
    clock = SimClock.fixed("2026-03-04T12:00:00Z")
    terminal = SimTerminal(seed=1, clock=clock)
    async with aiomt5.AsyncMT5Connector(backend=terminal) as mt5:
        account = await mt5.get_account_info()
        print(mt5.state.name, account.login, account.balance)

        bars = await mt5.get_rates("EURUSD", "H1", count=3)
        print("closes:", bars["close"].round(5).tolist())

        # Tagged, and reconciled by its tag if the reply is lost:
        result = await mt5.buy("EURUSD", 0.1)
        print(result.retcode_name, result.order, result.price)

        positions = await mt5.positions()
        print([(p.symbol, p.volume, p.tag == result.tag) for p in positions])


asyncio.run(main())
