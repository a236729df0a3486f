"""The ``group=`` symbol filter of ``symbols_get``, ``positions_get``, ``orders_get`` and history.

The rules (``mt5_api_notes.md`` section 7, read from the 5.0.6231 binary):

1. The group string is split on ``","``; each token loses its leading and trailing spaces and is at
   most 255 characters long.
2. A token is a glob in which only ``*`` is special (there is no ``?``), matched case sensitively
   against the whole name: ``EUR*`` matches ``EURUSD``, ``EUR`` does not.
3. A name is kept when at least one positive token matches it and no ``!`` token does. Exclusions
   win wherever they appear, and a group made only of ``!`` tokens matches nothing.

The binary's ``*`` does not backtrack fully: ``*AAB`` does not match ``AAAB``. The matcher below
reproduces that with the classic single-anchor loop: after a ``*`` it walks the name and, on a
mismatch, restarts the segment after the ``*`` at the *current* character instead of rewinding
to one past where the segment began. ``*AB`` still matches ``AAB`` (the restart happens on the
second ``A``), but ``*AAB`` against ``AAAB`` restarts on the third ``A``, leaving ``AB`` to match
``AAB``: no match. A matcher that skipped the mismatching character would already reject
``*AB``/``AAB``, so the notes' minimal example points at this variant. The simplification only
ever loses matches; whatever it accepts is a true glob match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_TOKEN_LENGTH", "GroupFilter", "compile_group", "glob_match"]

#: Tokens are copied into a fixed buffer; longer ones are cut to this length.
MAX_TOKEN_LENGTH: Final = 255


def glob_match(pattern: str, name: str) -> bool:
    """Match ``name`` against a ``*``-only glob with MT5's simplified backtracking.

    Args:
        pattern: The glob; ``*`` matches any run of characters (also none).
        name: The whole name to test (case sensitive).

    Returns:
        True when the single-anchor walk described in the module docstring accepts ``name``.
    """
    p = s = 0
    anchor = -1  # index in ``pattern`` just after the last ``*`` seen, -1 before any
    while s < len(name):
        if p < len(pattern) and pattern[p] == "*":
            p += 1
            anchor = p
        elif p < len(pattern) and pattern[p] == name[s]:
            p += 1
            s += 1
        elif anchor < 0:
            return False
        elif p != anchor:
            # Restart the segment at this same character: no rewind into what already matched.
            p = anchor
        else:
            s += 1
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


@dataclass(frozen=True, slots=True)
class GroupFilter:
    """A compiled group: call it with a symbol name to learn whether the group keeps it."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]

    def __call__(self, name: str) -> bool:
        """True when a positive token matches ``name`` and no ``!`` token does."""
        return any(glob_match(token, name) for token in self.include) and not any(
            glob_match(token, name) for token in self.exclude
        )


def compile_group(group: str) -> GroupFilter:
    """Parse a group string such as ``"*,!*USD*,!*EUR*"`` into a reusable filter.

    Args:
        group: Comma-separated tokens; a token starting with ``!`` excludes what it matches.

    Returns:
        A ``GroupFilter``. An empty token only matches the empty name, so ``""`` keeps nothing.
    """
    include: list[str] = []
    exclude: list[str] = []
    for raw in group.split(","):
        token = raw.strip(" ")[:MAX_TOKEN_LENGTH]
        if token.startswith("!"):
            exclude.append(token[1:])
        else:
            include.append(token)
    return GroupFilter(tuple(include), tuple(exclude))
