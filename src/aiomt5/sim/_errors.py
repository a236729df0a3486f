"""The simulator's failure signal (the codes and texts are in ``aiomt5._mt5.codes``)."""

from __future__ import annotations

from typing import Any, Final

from aiomt5._mt5.codes import error_text

__all__ = ["Failure", "invalid_argument"]


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
