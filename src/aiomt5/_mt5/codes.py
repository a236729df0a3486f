"""``last_error()`` codes of MetaTrader5 5.0.6231 and the text the package shows for each.

The codes themselves are the ``RES_*`` constants (``constants.py``); this adds their texts.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ERROR_TEXTS", "error_text"]

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
