"""Checks of connector method arguments, done before anything is sent to the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from ._errors import MT5InvalidArgumentError

__all__ = ["batch_calls", "check_symbol", "positive_int", "utc_timestamp"]

_INT32_MAX: Final = 2**31 - 1


def utc_timestamp(name: str, value: object) -> int:
    """Epoch seconds of an aware datetime; anything else is refused with what to pass instead."""
    if not isinstance(value, datetime):
        raise MT5InvalidArgumentError(
            f"{name} must be a timezone-aware datetime, got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise MT5InvalidArgumentError(
            f"{name}={value!r} is naive: MetaTrader5 would read it in this machine's local time "
            "zone. Pass an aware datetime, e.g. datetime(2026, 3, 2, tzinfo=UTC)"
        )
    seconds = int(value.timestamp())
    if not 0 < seconds <= _INT32_MAX:
        raise MT5InvalidArgumentError(
            f"{name}={value.isoformat()} is outside MetaTrader5's range (1970 to 2038-01-19)"
        )
    return seconds


def positive_int(name: str, value: object, *, allow_zero: bool = False) -> int:
    """``value`` if it is an int >= 1 (>= 0 with ``allow_zero``); bools are refused."""
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        least = "0 or more" if allow_zero else "1 or more"
        raise MT5InvalidArgumentError(f"{name} must be an int, {least}; got {value!r}")
    return value


def check_symbol(symbol: object) -> str:
    """``symbol`` if it is a non-empty str."""
    if not isinstance(symbol, str) or not symbol.strip():
        raise MT5InvalidArgumentError(f"symbol must be a non-empty str, got {symbol!r}")
    return symbol


def batch_calls(
    function: str, arguments: Iterable[Any]
) -> list[tuple[tuple[Any, ...], dict[str, Any] | None]]:
    """``call_many``'s ``arguments`` as ``(args, kwargs)`` per call.

    Each item is one call: a tuple is its positional arguments, a mapping its keyword
    arguments, anything else its one argument (``"EURUSD"`` is ``("EURUSD",)``).

    Raises:
        MT5InvalidArgumentError: ``arguments`` is a string, a mapping or not iterable.
    """
    if isinstance(arguments, str | bytes | Mapping) or not isinstance(arguments, Iterable):
        raise MT5InvalidArgumentError(
            f"call_many({function!r}, arguments): arguments must be an iterable of calls (a "
            f"list of symbols, or of argument tuples), got {type(arguments).__name__}; e.g. "
            f'call_many("{function}", ["EURUSD", "GBPUSD"])',
            function=function,
        )
    calls: list[tuple[tuple[Any, ...], dict[str, Any] | None]] = []
    for item in arguments:
        if isinstance(item, tuple):
            calls.append((item, None))
        elif isinstance(item, Mapping):
            calls.append(((), dict(item)))
        else:
            calls.append(((item,), None))
    return calls
