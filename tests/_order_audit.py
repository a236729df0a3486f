"""Shared by the order soaks: every order sent is in the terminal's history exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from aiomt5 import Trader

ALL_TIME = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC))


async def audit_history(trader: Trader, sent: Iterable[str]) -> Counter[str]:
    """``duplicates``, ``lost`` and ``unexpected`` tags in the history against ``sent``."""
    sent = set(sent)
    history = Counter(o.tag for o in await trader.history_orders(*ALL_TIME) if o.tag is not None)
    return Counter(
        duplicates=sum(1 for n in history.values() if n > 1),
        lost=sum(1 for tag in sent if history[tag] != 1),
        unexpected=sum(1 for tag in history if tag not in sent),
    )
