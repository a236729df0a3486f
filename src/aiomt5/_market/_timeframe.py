"""Chart timeframes: MetaTrader5's ``TIMEFRAME_*`` values as an enum, and parsing of user input."""

from __future__ import annotations

import enum

from aiomt5._core._errors import MT5InvalidArgumentError

__all__ = ["Timeframe", "TimeframeLike"]


class Timeframe(enum.IntEnum):
    """A chart timeframe; each member's value is MetaTrader5's ``TIMEFRAME_*`` constant.

    Minute frames count minutes; hour frames are ``0x4000 | hours``; W1 and MN1 set bits 15 and
    14+15 (that is how MT5 numbers them).
    """

    M1 = 1
    M2 = 2
    M3 = 3
    M4 = 4
    M5 = 5
    M6 = 6
    M10 = 10
    M12 = 12
    M15 = 15
    M20 = 20
    M30 = 30
    H1 = 16385
    H2 = 16386
    H3 = 16387
    H4 = 16388
    H6 = 16390
    H8 = 16392
    H12 = 16396
    D1 = 16408
    W1 = 32769
    MN1 = 49153

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
