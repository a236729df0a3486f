"""What the simulator knows about an instrument: its contract and how its prices move.

A ``SymbolSpec`` is static broker data (the fields of ``SymbolInfo`` that do not move with the
market) plus the parameters of the synthetic price process. Trading hours are a weekly schedule in
server time; the simulated server clock is UTC, so bars and ticks carry UTC epoch seconds.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from aiomt5._mt5 import constants as c

__all__ = [
    "MINUTES_PER_WEEK",
    "SymbolSpec",
    "TradingHours",
    "minute_of_week",
]

MINUTES_PER_WEEK: Final = 7 * 24 * 60
# 1970-01-01 was a Thursday; MT5 numbers weekdays from Sunday (DAY_OF_WEEK_SUNDAY = 0).
_EPOCH_WEEKDAY: Final = c.DAY_OF_WEEK_THURSDAY


def minute_of_week(epoch_minutes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Minute of the week (0 = Sunday 00:00 server time) for epoch minutes."""
    result: npt.NDArray[np.int64] = (epoch_minutes + _EPOCH_WEEKDAY * 1440) % MINUTES_PER_WEEK
    return result


@dataclass(frozen=True, slots=True)
class TradingHours:
    """Weekly trading sessions: ``(day_of_week, start_minute, end_minute)``, end exclusive.

    ``day_of_week`` uses MT5's numbering (0 = Sunday). Minutes count from that day's midnight and
    may run to 1440.
    """

    sessions: tuple[tuple[int, int, int], ...]

    @property
    def week_mask(self) -> npt.NDArray[np.bool_]:
        """Open/closed for each of the 10080 minutes of the week (index 0 = Sunday 00:00)."""
        return _week_mask(self.sessions)

    def is_open(self, epoch_minutes: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Vectorised: is the market open during each given epoch minute."""
        result: npt.NDArray[np.bool_] = self.week_mask[minute_of_week(epoch_minutes)]
        return result

    def is_open_at(self, epoch: float) -> bool:
        """Whether the market is open at ``epoch`` seconds."""
        return bool(self.week_mask[_minute_of_week(int(epoch // 60))])

    def opens_at(self, epoch: float) -> float | None:
        """The first instant at or after ``epoch`` when the market is open (None: it never is)."""
        mask = self.week_mask
        minute = int(epoch // 60)
        if mask[_minute_of_week(minute)]:
            return epoch
        start = _minute_of_week(minute)
        # Look one week ahead, wrapping around the end of the week.
        ahead = np.flatnonzero(np.concatenate((mask[start:], mask[:start])))
        if not len(ahead):
            return None
        return float((minute + int(ahead[0])) * 60)

    def same_time_when_open(self, epoch: float, *, lasting: float = 3600.0) -> float | None:
        """The most recent instant at ``epoch``'s time of day, on ``epoch``'s day or up to a week
        before, when the market is open and stays open for ``lasting`` seconds (None: never).

        A market closed at ``epoch`` (a weekend, a night) then shows what it did at the same hour
        of its latest trading day: the simulator's clock can start there.
        """
        mask = self.week_mask
        span = max(1, math.ceil(lasting / 60))
        for days in range(8):
            start = int((epoch - days * 86_400) // 60)
            minutes = [_minute_of_week(start + m) for m in range(span)]
            if mask[minutes].all():
                return epoch - days * 86_400
        return None

    @classmethod
    def always(cls) -> TradingHours:
        """24/7 trading (crypto)."""
        return cls(tuple((day, 0, 1440) for day in range(7)))

    @classmethod
    def weekdays(cls, start: int = 0, end: int = 1440, *, daily_break: int = 0) -> TradingHours:
        """Monday to Friday from ``start`` to ``end`` minutes, with an optional break at the end.

        ``daily_break`` minutes are cut from the end of each day's session (e.g. metals' 60-minute
        pause before midnight).
        """
        return cls(
            tuple(
                (day, start, end - daily_break)
                for day in range(c.DAY_OF_WEEK_MONDAY, c.DAY_OF_WEEK_SATURDAY)
            )
        )


def _minute_of_week(epoch_minute: int) -> int:
    return (epoch_minute + _EPOCH_WEEKDAY * 1440) % MINUTES_PER_WEEK


@functools.cache
def _week_mask(sessions: tuple[tuple[int, int, int], ...]) -> npt.NDArray[np.bool_]:
    mask = np.zeros(MINUTES_PER_WEEK, dtype=np.bool_)
    for day, start, end in sessions:
        mask[day * 1440 + start : day * 1440 + end] = True
    mask.flags.writeable = False
    return mask


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolSpec:
    """Static description of one instrument plus its price-process parameters."""

    name: str
    description: str
    path: str
    currency_base: str
    currency_profit: str
    currency_margin: str
    digits: int
    contract_size: float
    calc_mode: int = c.SYMBOL_CALC_MODE_FOREX
    trade_mode: int = c.SYMBOL_TRADE_MODE_FULL
    exemode: int = c.SYMBOL_TRADE_EXECUTION_MARKET
    chart_mode: int = c.SYMBOL_CHART_MODE_BID
    #: Bitmask: 1 = FOK allowed, 2 = IOC allowed (MQL5 SYMBOL_FILLING_*). RETURN is always allowed
    #: for non-market execution.
    filling_mode: int = 1 | 2
    #: Bitmask of allowed order types (MQL5 SYMBOL_ORDER_*): market 1, limit 2, stop 4,
    #: stop limit 8, sl 16, tp 32, close by 64.
    order_mode: int = 127
    #: Bitmask of allowed expirations (MQL5 SYMBOL_EXPIRATION_*): GTC 1, DAY 2, SPECIFIED 4,
    #: SPECIFIED_DAY 8.
    expiration_mode: int = 15
    volume_min: float = 0.01
    volume_max: float = 100.0
    volume_step: float = 0.01
    volume_limit: float = 0.0
    #: Typical spread in points; the generated spread varies around it.
    spread: int = 10
    spread_float: bool = True
    stops_level: int = 0
    freeze_level: int = 0
    swap_mode: int = c.SYMBOL_SWAP_MODE_POINTS
    swap_long: float = -5.0
    swap_short: float = 1.0
    swap_rollover3days: int = c.DAY_OF_WEEK_WEDNESDAY
    margin_initial: float = 0.0
    margin_maintenance: float = 0.0
    #: Margin for hedged (opposite) positions per lot; contract size by default for FX.
    margin_hedged: float = 0.0
    #: Margin rate multiplier applied by the formulas (MQL5 SymbolInfoMarginRate).
    margin_rate: float = 1.0
    tick_size: float = 0.0
    #: Value of one ``trade_tick_size`` move of one lot in the profit currency (the broker's "tick
    #: price" used by the FUTURES and CFDINDEX formulas); 0 means contract_size * trade_tick_size.
    tick_price: float = 0.0
    category: str = ""
    exchange: str = ""
    isin: str = ""
    bank: str = ""
    basis: str = ""
    page: str = ""
    hours: TradingHours = field(default_factory=lambda: TradingHours.weekdays())
    # --- the synthetic price process
    #: Price level the process oscillates around (mid price).
    base_price: float = 1.0
    #: Annualised volatility of log returns.
    volatility: float = 0.08
    #: Mean number of ticks per open minute.
    ticks_per_minute: float = 40.0
    #: The instrument prints trades (exchange-traded): ticks carry ``last``/``volume`` and the
    #: chart is built from last prices.
    has_last: bool = False

    @property
    def point(self) -> float:
        """Smallest price change, 10 ** -digits."""
        return float(10.0**-self.digits)

    @property
    def trade_tick_size(self) -> float:
        """Minimal price change used for tick value; the point unless set."""
        return self.tick_size or self.point

    @property
    def trade_tick_price(self) -> float:
        """One tick of one lot in the profit currency: ``tick_price`` or contract x tick size."""
        return self.tick_price or self.contract_size * self.trade_tick_size
