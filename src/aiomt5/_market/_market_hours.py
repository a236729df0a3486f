"""When a market opens again, where the backend can say.

The MetaTrader5 module exposes no trading sessions to Python; the simulator does
(``SimTerminal.market_opens_at``). Trading (``MT5MarketClosedError.opens_at``) and streams (the
"market closed" log line) ask here, and get None from a backend that cannot tell.

Likewise the server's own clock (``SimTerminal.server_time``), where the backend knows it exactly
and it moves one to one with the event loop's clock (a replay): bar streams then sleep through
polls that cannot find a closed bar.
"""

from __future__ import annotations

import math
from datetime import datetime

__all__ = ["market_opens_at", "server_time"]


def market_opens_at(backend: object, symbol: str) -> datetime | None:
    """When ``symbol``'s closed market opens again; None while open, or if the backend can't say.

    Only a pure, local lookup is made (no terminal call): it is safe on the event loop.
    """
    lookup = getattr(backend, "market_opens_at", None)
    if not callable(lookup) or not symbol:
        return None
    try:
        when = lookup(symbol)
    except Exception:  # noqa: BLE001  # an optional extra must never mask what the caller reports
        return None
    return when if isinstance(when, datetime) else None


def server_time(backend: object) -> float | None:
    """The backend's exact "now" (epoch seconds) if it offers one; None for the real module.

    A pure, local lookup like ``market_opens_at``: no terminal call.
    """
    lookup = getattr(backend, "server_time", None)
    if not callable(lookup):
        return None
    try:
        now = lookup()
    except Exception:  # noqa: BLE001  # an optional extra must never break a stream
        return None
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        return None
    return float(now)
