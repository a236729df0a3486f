"""The home page's example: connect, read, buy exactly once (prints what docs/index.md shows)."""

import asyncio

import aiomt5
from aiomt5.sim import SimClock, SimTerminal


async def main() -> None:
    # The built-in simulated terminal, its clock frozen on a Wednesday noon. With a real terminal
    # (Windows), use aiomt5.mt5_connection(): MT5_LOGIN, MT5_PASSWORD... come from .env.
    terminal = SimTerminal(seed=1, clock=SimClock.fixed("2026-03-04T12:00:00Z"))
    async with aiomt5.AsyncMT5Connector(backend=terminal) as mt5:
        account = await mt5.get_account_info()
        print(
            f"{mt5.state.name}: account {account.login}, {account.balance:,.2f} {account.currency}"
        )

        bars = await mt5.get_rates("EURUSD", "H1", count=3)
        print("last closes:", [round(float(close), 5) for close in bars["close"]])

        result = await mt5.buy("EURUSD", 0.1)  # tagged, and reconciled if the reply is lost
        print(
            f"{result.retcode_name}: order {result.order}, {result.volume} lots at {result.price}"
        )
        print(
            "positions:", [(p.symbol, p.volume, p.tag == result.tag) for p in await mt5.positions()]
        )


asyncio.run(main())
