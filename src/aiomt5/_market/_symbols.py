"""Broker symbol names: finding ``EURUSD.m`` when asked for ``EURUSD``."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from aiomt5._core._errors import MT5SymbolNotFoundError

__all__ = ["pick_symbol"]


def _is_decoration(text: str) -> bool:
    """Broker decorations around a symbol: ``.m``, ``_i``, ``#``, ``m``, ``pro``, ``-ECN``..."""
    if not 0 < len(text) <= 6:
        return False
    return not text.isalnum() or text == text.lower()


def pick_symbol(name: str, names: Sequence[str]) -> str:
    """Resolve ``name`` among the broker's ``names`` (exact match already failed).

    A case-insensitive exact match wins; otherwise a unique broker-decorated form
    (``EURUSD`` → ``EURUSD.m``, ``EURUSDm`` or ``#EURUSD``).

    Raises:
        MT5SymbolNotFoundError: No match, or several (``candidates`` lists them).
    """
    wanted = name.upper()
    same = [n for n in names if n.upper() == wanted]
    if len(same) == 1:
        return same[0]
    decorated = same or [
        n
        for n in names
        if (n.upper().startswith(wanted) and _is_decoration(n[len(wanted) :]))
        or (n.upper().endswith(wanted) and _is_decoration(n[: len(n) - len(wanted)]))
    ]
    if len(decorated) == 1:
        return decorated[0]
    if decorated:
        raise MT5SymbolNotFoundError(
            f"{name!r} is ambiguous on this server: it could be {', '.join(sorted(decorated))}; "
            "pass the exact name",
            function="find_symbol",
            candidates=sorted(decorated),
        )
    close = difflib.get_close_matches(name, list(names), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise MT5SymbolNotFoundError(
        f"no symbol {name!r} on this server (nor a broker-decorated form of it){hint}",
        function="find_symbol",
    )
