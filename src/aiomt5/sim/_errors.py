"""``last_error()`` codes and texts of MetaTrader5 5.0.6231, and the simulator's failure signal."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["ERROR_TEXTS", "Failure", "error_text", "invalid_argument"]

ERROR_TEXTS: Final[dict[int, str]] = {
    1: "Success",
    -1: "Terminal: Call failed",
    -2: "Terminal: Invalid params",
    -3: "Terminal: Out of memory",
    -4: "Terminal: Not found",
    -5: (
        "Terminal: Incompatible versions, please install the latest version of Terminal and "
        "Python module"
    ),
    -6: "Terminal: Authorization failed",
    -7: "Terminal: Unsupported function",
    -8: "Auto-Trading using Python API disabled in Terminal",
    -10000: "IPC call failed",
    -10001: "IPC send failed",
    -10002: "IPC recv failed",
    -10003: "IPC initialize failed",
    -10004: "No IPC connection",
    -10005: "IPC timeout",
}
"""The text MetaTrader5 shows for each code (``-10003`` gets ``", <detail>"`` appended)."""


def error_text(code: int) -> str:
    """The text of ``code``; unknown terminal codes read as ``-1``'s text, as in MetaTrader5."""
    return ERROR_TEXTS.get(code, ERROR_TEXTS[-1])


def invalid_argument(name: str) -> str:
    """Text of a rejected named argument, e.g. ``Invalid "volume" argument``."""
    return f'Invalid "{name}" argument'


class Failure(Exception):
    """Raised inside the simulator to end a call with ``last_error() == (code, message)``.

    ``value`` overrides the function's usual failure return (``symbols_get`` returns False on
    argument errors but None otherwise). ``set_error=False`` leaves ``last_error()`` untouched, as
    ``market_book_add`` does on terminal failures.
    """

    _DEFAULT: Final = object()

    def __init__(
        self,
        code: int,
        message: str | None = None,
        *,
        value: Any = _DEFAULT,
        set_error: bool = True,
    ) -> None:
        self.code = code
        self.message = message if message is not None else error_text(code)
        self.value = value
        self.set_error = set_error
        super().__init__(code, self.message)

    @property
    def has_value(self) -> bool:
        """True when the failure carries its own return value."""
        return self.value is not Failure._DEFAULT
