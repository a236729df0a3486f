"""Chart timeframes: MetaTrader5's ``TIMEFRAME_*`` values as an enum, and parsing of user input."""

from __future__ import annotations

import enum

from aiomt5._core._errors import MT5InvalidArgumentError
from aiomt5._mt5 import constants as c

__all__ = ["Timeframe", "TimeframeLike"]


class Timeframe(enum.IntEnum):
    """A chart timeframe; each member's value is MetaTrader5's ``TIMEFRAME_*`` constant.

    Minute frames count minutes; hour frames are ``0x4000 | hours``; W1 and MN1 set bits 15 and
    14+15 (that is how MT5 numbers them).
    """

    M1 = c.TIMEFRAME_M1
    M2 = c.TIMEFRAME_M2
    M3 = c.TIMEFRAME_M3
    M4 = c.TIMEFRAME_M4
    M5 = c.TIMEFRAME_M5
    M6 = c.TIMEFRAME_M6
    M10 = c.TIMEFRAME_M10
    M12 = c.TIMEFRAME_M12
    M15 = c.TIMEFRAME_M15
    M20 = c.TIMEFRAME_M20
    M30 = c.TIMEFRAME_M30
    H1 = c.TIMEFRAME_H1
    H2 = c.TIMEFRAME_H2
    H3 = c.TIMEFRAME_H3
    H4 = c.TIMEFRAME_H4
    H6 = c.TIMEFRAME_H6
    H8 = c.TIMEFRAME_H8
    H12 = c.TIMEFRAME_H12
    D1 = c.TIMEFRAME_D1
    W1 = c.TIMEFRAME_W1
    MN1 = c.TIMEFRAME_MN1

    @classmethod
    def parse(cls, value: TimeframeLike) -> Timeframe:
        """Turn ``Timeframe.H1``, ``"H1"``/``"h1"``/``"TIMEFRAME_H1"`` or ``16385`` into a member.

        Args:
            value: A member, a name, or an MT5 integer value.

        Raises:
            MT5InvalidArgumentError: Not an MT5 timeframe; the message lists the valid ones.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            key = value.strip().upper().removeprefix("TIMEFRAME_")
            member = cls.__members__.get(key)
            if member is not None:
                return member
        elif not isinstance(value, bool):  # True == 1 must not mean M1
            try:
                return cls(value)
            except ValueError:
                pass
        valid = ", ".join(cls.__members__)
        raise MT5InvalidArgumentError(
            f"unknown timeframe {value!r}: use a Timeframe member, one of the names "
            f"{valid}, or their MetaTrader5 integer values (e.g. 16385 for H1)"
        )

    @property
    def seconds(self) -> int:
        """Nominal length of one bar in seconds (MN1 counts 30 days)."""
        value = int(self)
        if value < 0x4000:
            return value * 60
        if self is Timeframe.W1:
            return 7 * 86400
        if self is Timeframe.MN1:
            return 30 * 86400
        return (value & 0x3FFF) * 3600


TimeframeLike = Timeframe | str | int
"""What connector methods accept as a timeframe."""
