"""Waits that keep the GIL, the way the real MetaTrader5 extension waits on its pipe.

``MetaTrader5``'s C functions never call ``PyEval_SaveThread``: while one waits for the terminal
(an ``order_send`` waiting for the trade server, a large ``copy_ticks_range``, a wedged terminal)
no other thread of the process runs Python code. A ``SimTerminal(hold_gil=True)`` waits the same
way: through a foreign function called with ``ctypes.PyDLL`` semantics, which keep the GIL for
the duration of the call (``usleep`` from the C library; ``Sleep`` from kernel32 on Windows,
with kernel32's calling convention).

A long wait (a hang) holds the GIL in chunks of ``CHUNK`` seconds and gives other threads a
moment in between, so that a hang can still be released, a fault script still reaches the
terminal, and a child process still notices that its parent is gone. Each chunk still stalls
every other thread of the process for up to ``CHUNK`` seconds, which is what matters to an event
loop sharing the process.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ["CHUNK", "hold_gil", "hold_gil_until"]

CHUNK: Final = 0.25
"""Longest single GIL-holding wait, in seconds."""


def _foreign_sleep() -> Callable[[float], None]:
    if sys.platform == "win32":

        class KeepingGilWinDLL(ctypes.CDLL):
            # WinDLL's calling convention (stdcall on 32-bit Windows) with PyDLL's rule: the
            # call keeps the GIL (WinDLL and CDLL release it).
            _func_flags_ = ctypes.WinDLL._func_flags_ | (
                ctypes.PyDLL._func_flags_ & ~ctypes.CDLL._func_flags_
            )

        sleep_ms = KeepingGilWinDLL("kernel32").Sleep  # milliseconds
        sleep_ms.argtypes = (ctypes.c_uint32,)
        sleep_ms.restype = None
        return lambda seconds: sleep_ms(max(1, round(seconds * 1000)))
    else:  # one branch per platform, for mypy
        usleep = ctypes.PyDLL(None).usleep  # the C library, already loaded in this process
        usleep.argtypes = (ctypes.c_uint,)
        usleep.restype = ctypes.c_int
        return lambda seconds: usleep(max(1, round(seconds * 1_000_000)))


_sleep_holding_gil: Final = _foreign_sleep()


def hold_gil(seconds: float) -> None:
    """Block the calling thread for ``seconds`` without letting any other thread run Python."""
    hold_gil_until(None, seconds)


def hold_gil_until(event: threading.Event | None, seconds: float | None) -> None:
    """Hold the GIL until ``event`` is set or ``seconds`` have passed (None: no limit).

    Waits in chunks of at most ``CHUNK`` seconds; between two chunks the interpreter may hand the
    GIL to another thread (one that waited for it asks for it), which is when ``event`` can be
    set.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    while event is None or not event.is_set():
        left = CHUNK if deadline is None else min(CHUNK, deadline - time.monotonic())
        if left <= 0:
            return
        _sleep_holding_gil(left)
