"""The bar still forming: when a bar counts as closed, for history and streams alike.

MetaTrader5's ``copy_rates_*`` include the newest bar while it is still forming (its close is
the latest price and it changes until the period ends). ``get_rates(closed_only=True)`` leaves
it out and ``stream_bars`` yields a bar only once it is closed, both by the rule here: a bar is
closed once a later bar exists or the symbol's latest tick is at or past the bar's end. So the
last bar before a market closure (a weekend) closes when the terminal's clock shows it ended.

History followed by a stream, with no bar twice and none missing::

    bars = await mt5.get_rates("EURUSD", "M1", count=500, closed_only=True)
    last = datetime.fromtimestamp(bars["time"][-1], UTC)
    async for bar in mt5.stream_bars("EURUSD", "M1", since=last):
        ...
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiomt5._core._errors import MT5CallError

from ._timeframe import Timeframe

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from aiomt5._connector import AsyncMT5Connector
    from aiomt5._core._types import TimeoutArg

__all__ = ["drop_forming", "period_end"]


def period_end(timeframe: Timeframe, open_time: int) -> int:
    """When the bar of ``timeframe`` opened at ``open_time`` (epoch seconds) ends."""
    if timeframe is not Timeframe.MN1:
        return open_time + timeframe.seconds
    start = datetime.fromtimestamp(open_time, UTC)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0))


async def drop_forming(
    connector: AsyncMT5Connector,
    symbol: str,
    timeframe: Timeframe,
    rows: npt.NDArray[np.void],
    timeout: TimeoutArg | None = None,
) -> npt.NDArray[np.void]:
    """``rows`` (oldest first) without the newest bar if that one is still forming.

    ``symbol`` is the broker's name. Without a quote only bars followed by a later bar count
    as closed.
    """
    if not len(rows):
        return rows
    options = {} if timeout is None else {"timeout": timeout}
    try:
        tick = await connector.call("symbol_info_tick", symbol, **options)
        now = int(tick.time_msc) // 1000
    except MT5CallError:
        now = 0
    if now >= period_end(timeframe, int(rows["time"][-1])):
        return rows
    return rows[:-1]
