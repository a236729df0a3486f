"""When a market opens again, where the backend can say.

The MetaTrader5 module exposes no trading sessions to Python; the simulator does
(``SimTerminal.market_opens_at``). Trading (``MT5MarketClosedError.opens_at``) and streams (the
"market closed" log line) ask here, and get None from a backend that cannot tell.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["market_opens_at"]


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
