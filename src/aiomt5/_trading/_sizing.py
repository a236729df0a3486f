"""The volumes and prices a symbol accepts: rounding, checking, and sizing a position from risk.

``SymbolRules`` is read from a symbol's ``SymbolInfo``. Prices (entry, SL, TP, stop-limit) are
rounded to the symbol's tick size and digits, silently: ``1.3178999999999998`` is meant as
``1.31790``. Volumes are *checked*, never silently changed when an order is sent — a volume is
money — and a bad one is refused with an error naming the symbol's minimum, maximum and step;
``nearest_volume`` is there for code that wants the nearest valid one.

``volume_for_risk`` sizes a position with the terminal's own ``order_calc_profit``, so contract
size, tick value and currency conversion are the broker's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Self

from aiomt5._core._errors import MT5InvalidArgumentError, MT5TradeError
from aiomt5._mt5.enums import OrderType, TradeRetcode

if TYPE_CHECKING:
    from aiomt5._connector import AsyncMT5Connector
    from aiomt5._core._types import TimeoutArg

__all__ = ["SymbolRules", "volume_for_risk"]

_STEP_TOLERANCE: Final = 1e-7
"""How far (in steps) a float volume may sit from a step and still count as on it."""


def _decimals(step: float) -> int:
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolRules:
    """What a symbol accepts: price grid and volume limits (from its ``SymbolInfo``)."""

    symbol: str
    digits: int
    tick_size: float
    volume_min: float
    volume_max: float
    volume_step: float

    @classmethod
    def from_info(cls, info: Any) -> Self:
        """From MetaTrader5's ``SymbolInfo``; a zero tick size falls back to the point."""
        tick = info.trade_tick_size or info.point or 10.0**-info.digits
        return cls(
            symbol=info.name,
            digits=int(info.digits),
            tick_size=float(tick),
            volume_min=float(info.volume_min),
            volume_max=float(info.volume_max),
            volume_step=float(info.volume_step or info.volume_min or 0.01),
        )

    def price(self, price: float) -> float:
        """``price`` on the symbol's tick grid, rounded to its digits (0 stays 0)."""
        if price == 0:
            return 0.0
        ticks = round(price / self.tick_size)
        return round(ticks * self.tick_size, self.digits)

    def _steps(self, volume: float) -> float:
        return volume / self.volume_step

    def _volume(self, steps: int) -> float:
        return round(steps * self.volume_step, _decimals(self.volume_step))

    def limits(self) -> str:
        """``"min 0.01, max 100.0, step 0.01"``, for messages."""
        return f"min {self.volume_min:g}, max {self.volume_max:g}, step {self.volume_step:g}"

    def check_volume(self, volume: float) -> float:
        """``volume`` as sent (exactly on a step), or an error naming the symbol's limits.

        Raises:
            MT5TradeError: ``TRADE_RETCODE_INVALID_VOLUME`` — below the minimum, above the
                maximum or off the step — raised before anything is sent (the server would
                refuse it with that retcode, without saying the limits).
        """
        steps = self._steps(volume)
        nearest = round(steps)
        on_step = abs(steps - nearest) <= _STEP_TOLERANCE * max(1.0, abs(steps))
        valid = self._volume(nearest)
        if not on_step or valid < self.volume_min - 1e-12 or valid > self.volume_max + 1e-12:
            raise MT5TradeError(
                f"volume {volume:g} is not valid for {self.symbol} ({self.limits()}); "
                f"the nearest valid volume is {self.nearest_volume(volume):g} "
                "(normalize_volume() gives it); nothing was sent",
                retcode=TradeRetcode.INVALID_VOLUME,
                retcode_name="TRADE_RETCODE_INVALID_VOLUME",
            )
        return valid

    def nearest_volume(self, volume: float) -> float:
        """The valid volume nearest to ``volume``: on a step, within ``[min, max]``."""
        if not math.isfinite(volume):
            raise MT5InvalidArgumentError(f"volume must be finite, got {volume!r}")
        low = math.ceil(self.volume_min / self.volume_step - _STEP_TOLERANCE)
        high = math.floor(self.volume_max / self.volume_step + _STEP_TOLERANCE)
        return self._volume(min(max(round(self._steps(volume)), low), high))

    def largest_within(self, volume: float) -> float | None:
        """The largest valid volume not above ``volume`` (None: even the minimum is above)."""
        steps = math.floor(self._steps(volume) + _STEP_TOLERANCE)
        high = math.floor(self.volume_max / self.volume_step + _STEP_TOLERANCE)
        candidate = self._volume(min(steps, high))
        return candidate if candidate >= self.volume_min - 1e-12 and candidate > 0 else None


async def volume_for_risk(
    connector: AsyncMT5Connector,
    rules: SymbolRules,
    order_type: int,
    price: float,
    sl: float,
    risk: float,
    timeout: TimeoutArg,
) -> float:
    """The largest valid volume whose loss from ``price`` to ``sl`` is at most ``risk``.

    The loss comes from ``order_calc_profit`` (the terminal's own arithmetic); the candidate is
    checked with it too, and stepped down while its loss exceeds ``risk`` (rounding in the
    broker's conversion could make the linear estimate overshoot by a step).

    Raises:
        MT5InvalidArgumentError: A non-market order type, ``sl`` not on the losing side of
            ``price``, a risk that is not positive, or a risk below the loss of the minimum volume.
    """
    kind = _direction(order_type)
    if not (math.isfinite(risk) and risk > 0):
        raise MT5InvalidArgumentError(f"risk must be a positive amount, got {risk!r}")
    price, sl = rules.price(price), rules.price(sl)
    losing = sl < price if kind == OrderType.BUY else sl > price
    if price <= 0 or sl <= 0 or not losing:
        side = "below" if kind == OrderType.BUY else "above"
        raise MT5InvalidArgumentError(
            f"sl={sl} must be {side} price={price} for a {kind.name.lower()} on {rules.symbol}"
        )

    async def loss(volume: float) -> float:
        profit = await connector.call(
            "order_calc_profit", int(kind), rules.symbol, volume, price, sl, timeout=timeout
        )
        return -float(profit)

    per_lot = await loss(1.0)
    if per_lot <= 0:
        raise MT5InvalidArgumentError(
            f"order_calc_profit reports no loss from {price} to {sl} on {rules.symbol}"
        )
    volume = rules.largest_within(risk / per_lot)
    while volume is not None and await loss(volume) > risk:
        volume = rules.largest_within(volume - rules.volume_step)
    while volume is not None:  # the estimate may also undershoot: take every step that fits
        bigger = rules.largest_within(volume + rules.volume_step)
        if bigger is None or bigger <= volume or await loss(bigger) > risk:
            break
        volume = bigger
    if volume is None:
        minimum = await loss(rules.volume_min)
        raise MT5InvalidArgumentError(
            f"risk {risk:g} is below the loss of the smallest volume of {rules.symbol} "
            f"({rules.volume_min:g} lots lose {minimum:.2f} from {price} to {sl})"
        )
    return volume


def _direction(order_type: int) -> OrderType:
    """Buy or sell for any order type (limits and stops trade in their direction)."""
    try:
        kind = OrderType(order_type)
    except ValueError:
        kind = None
    if kind is None or kind is OrderType.CLOSE_BY:
        raise MT5InvalidArgumentError(
            f"order_type={order_type!r} is not a buy or sell order type (OrderType.BUY, "
            "OrderType.SELL_LIMIT...)"
        )
    return OrderType.BUY if kind % 2 == 0 else OrderType.SELL
