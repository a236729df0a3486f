"""Argument conversion with MetaTrader5's rules: what is accepted, and how each rejection looks.

Two kinds of rejection exist in the C module. Arguments it parses with ``PyArg_ParseTuple`` fail in
the interpreter: the module returns with a ``TypeError`` pending, which CPython turns into a
``SystemError``. Arguments it converts itself end the call with ``last_error() == (-2, text)``.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Final, NoReturn

from ._errors import Failure, invalid_argument

__all__ = [
    "INT32_MAX",
    "as_c_double",
    "as_c_int",
    "as_date",
    "as_symbol",
    "reject_type",
    "utf16_len",
]

INT32_MAX: Final = 2**31 - 1
INT32_MIN: Final = -(2**31)
SYMBOL_MAX: Final = 29


def reject_type(function: str, message: str) -> NoReturn:
    """Fail the way a ``PyArg_ParseTuple`` rejection surfaces from MetaTrader5."""
    error = TypeError(message)
    raised = SystemError(f"<built-in function {function}> returned a result with an exception set")
    raise raised from error


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (MT5 strings are wide strings)."""
    return len(text.encode("utf-16-le")) // 2


def as_c_int(function: str, value: Any, *, unsigned: bool = False) -> int:
    """A C ``int``/``long`` argument (``PyArg`` ``i``/``l``/``k``): ints only, range-checked."""
    if not isinstance(value, int):
        reject_type(
            function, f"'{type(value).__name__}' object cannot be interpreted as an integer"
        )
    low = 0 if unsigned else INT32_MIN
    high = 2 * INT32_MAX + 1 if unsigned else INT32_MAX
    if not low <= value <= high:
        reject_type(function, "Python int too large to convert to C long")
    return int(value)


def as_c_double(function: str, value: Any) -> float:
    """A C ``double`` argument (``PyArg`` ``d``): floats and ints."""
    if isinstance(value, float | int):
        return float(value)
    reject_type(function, f"must be real number, not {type(value).__name__}")


def as_symbol(function: str, value: Any) -> str:
    """A symbol name: a str (``PyArg`` ``U``) of at most 29 characters."""
    if not isinstance(value, str):
        reject_type(function, f"argument 1 must be str, not {type(value).__name__}")
    if utf16_len(value) > SYMBOL_MAX:
        raise Failure(-2, "Invalid arguments")
    return value


def as_date(value: Any) -> int:
    """A ``date_from``/``date_to`` argument as MetaTrader5 converts it.

    ``datetime`` (any subclass, e.g. ``pandas.Timestamp``) goes through ``.timestamp()``, so a naive
    one is read as *local* time; an ``int`` is epoch seconds; a ``float`` is truncated. The result
    must fit a 32-bit C ``long``; 0 means "not given" and is refused. Anything else (``date``,
    ``numpy.datetime64``, strings) is ``(-2, "Invalid arguments")``.
    """
    if isinstance(value, _dt.datetime):
        seconds = math.trunc(value.timestamp())
    elif isinstance(value, bool):
        raise Failure(-2, "Invalid arguments")
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and math.isfinite(value):
        seconds = math.trunc(value)
    else:
        raise Failure(-2, "Invalid arguments")
    if not INT32_MIN <= seconds <= INT32_MAX or seconds == 0:
        raise Failure(-2, "Invalid arguments")
    return seconds


def check_str(name: str, value: Any, limit: int) -> str:
    """A keyword str argument with its length limit, else ``Invalid "<name>" argument``."""
    if not isinstance(value, str) or utf16_len(value) > limit:
        raise Failure(-2, invalid_argument(name))
    return value


def check_int(name: str, value: Any) -> int:
    """A keyword int argument (bool accepted), else ``Invalid "<name>" argument``."""
    if not isinstance(value, int):
        raise Failure(-2, invalid_argument(name))
    return int(value)
