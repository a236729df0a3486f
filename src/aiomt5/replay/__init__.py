"""Replay: a bot's unchanged code on recorded market data, faster than real time.

```python
import aiomt5.replay

result = aiomt5.replay.run("bot.py", store="~/mt5-history", fast=True, args=["--bars", "100000"])
print(result.text())  # trades, net profit, max drawdown, win rate, profit factor, exposure
result.deals, result.equity  # pandas frames
result.write_report("report.html")
```

The bot runs against a ``SimTerminal`` serving the recording (``aiomt5.sim.Recording``): a
script connects through its ``MT5_*`` settings (``backend="sim"`` reaches the replay's terminal)
or ``aiomt5.sim.install()``; an ``async def bot(mt5)`` gets a connected connector. With
``fast=True`` the event loop runs on virtual time (``VirtualTimeLoop``): whenever the bot and the
terminal are all waiting, the clock jumps to the next timer, so a month of bars takes as long as
computing it does. ``speed=N`` runs the simulated clock N times faster than real time instead.
See docs/replay.md.
"""

from __future__ import annotations

from ._loop import VirtualClock, VirtualTimeLoop
from ._report import DEALS_DTYPE, EQUITY_DTYPE, ReplayResult, Summary
from ._run import BotError, ReplayError, run

__all__ = [
    "DEALS_DTYPE",
    "EQUITY_DTYPE",
    "BotError",
    "ReplayError",
    "ReplayResult",
    "Summary",
    "VirtualClock",
    "VirtualTimeLoop",
    "run",
]
