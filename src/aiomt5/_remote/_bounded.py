"""What ``aiomt5 serve`` calls: the terminal, one call at a time, never unbounded work in one go.

``BoundedBackend`` wraps a MetaTrader5-shaped backend (the real module, the simulator, or a
child-process terminal) for a server with many clients:

* Every call holds the server's one lock (the terminal has one pipe), and ``last_error()`` is
  read under it and kept per thread, so another client's call cannot change what a client
  reads back.
* Tick history, the one request whose size nothing bounds, is fetched in slices: a range in
  windows of about ``SLICE_ROWS`` ticks, a count in chunks of that many. The lock is released
  between slices, so other clients' calls interleave with a long download.
* A request whose reply would exceed ``max_reply_bytes`` stops at the slice that crosses it and
  fails with ``REMOTE_REPLY_TOO_LARGE`` (the client raises ``MT5ReplyTooLargeError``, whose
  message says how to page), so the server never holds more than one reply's worth of it.
* All tick replies held at once, being built or waiting to be sent, share one budget
  (``max_reply_memory``): a request that would overdraw it fails the same way, so many clients
  asking at once (or not reading) cannot add up to more either.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from aiomt5._core._errors import REMOTE_REPLY_TOO_LARGE
from aiomt5._mt5.dtypes import RATES_DTYPE, TICKS_DTYPE

from ._wire import SERVED_FUNCTIONS

__all__ = ["DEFAULT_MAX_REPLY_BYTES", "SLICE_ROWS", "BoundedBackend", "reply_too_large"]

DEFAULT_MAX_REPLY_BYTES: Final = 64 << 20
"""``aiomt5 serve``'s default limit on one reply: about 1.1 million ticks or bars."""
SLICE_ROWS: Final = 100_000
"""Ticks fetched under the lock at a time (about 6 MB, some 50 ms of the simulator)."""
_FIRST_WINDOW: Final = 3600  # seconds: the first slice of a range, widened while sparse
_MAX_WINDOW: Final = 86400  # a day of ticks at most, however sparse the slices before it
_NO_DATA: Final = -1  # what a slice wholly outside the history fails with
_SUCCESS: Final = (1, "Success")


def reply_too_large(size: int, limit: int, what: str = "the reply") -> tuple[int, str]:
    """The ``last_error()`` of a request refused by the reply limit (names how to page)."""
    return (
        REMOTE_REPLY_TOO_LARGE,
        (
            f"{what} would exceed the server's max_reply_bytes ({size:,} > {limit:,} bytes): ask "
            "for less at a time (a shorter range or a smaller count; the connector's get_ticks and "
            "get_rates page by themselves with page_size=), or start aiomt5 serve with a higher "
            "--max-reply-mb"
        ),
    )


class BoundedBackend:
    """``backend`` behind ``lock``, with bounded replies (see the module doc).

    Looks like the MetaTrader5 module to ``_wire.serve_call``: every served function, and a
    ``last_error()`` that answers for the calling thread.
    """

    def __init__(
        self,
        backend: Any,
        lock: threading.Lock,
        max_reply_bytes: int,
        max_reply_memory: int | None = None,
    ) -> None:
        self._backend = backend
        self._lock = lock
        self._limit = max_reply_bytes
        self._budget = _Budget(
            4 * max_reply_bytes if max_reply_memory is None else max_reply_memory
        )
        self._errors = threading.local()
        self.copy_ticks_range = self._ticks_range
        self.copy_ticks_from = self._ticks_from
        for name in ("copy_rates_from", "copy_rates_from_pos"):
            setattr(self, name, functools.partial(self._rates_by_count, name))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Reached once per function: the locked call is then kept as an attribute.
        if name not in SERVED_FUNCTIONS:
            raise AttributeError(name)
        call = functools.partial(self._call, name)
        setattr(self, name, call)
        return call

    def last_error(self) -> tuple[int, str]:
        """What ``last_error()`` said right after this thread's last call."""
        error: tuple[int, str] = getattr(self._errors, "value", _SUCCESS)
        return error

    def _call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                return getattr(self._backend, name)(*args, **kwargs)
            finally:
                self._errors.value = self._backend.last_error()

    def _refuse(self, size: int, what: str) -> None:
        self._errors.value = reply_too_large(size, self._limit, what)

    # ------------------------------------------------------------------ bars: counted up front

    def _rates_by_count(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        count = args[3] if len(args) == 4 else kwargs.get("count")
        if type(count) is int and count * RATES_DTYPE.itemsize > self._limit:
            self._refuse(count * RATES_DTYPE.itemsize, f"{name} of {count:,} bars")
            return None
        return self._call(name, *args, **kwargs)

    # ------------------------------------------------------------------ ticks: in slices

    def _ticks_range(self, *args: Any, **kwargs: Any) -> Any:
        window = _range_seconds(args, kwargs)
        if window is None:  # not the plain positional form: the backend judges it whole
            return self._checked(self._call("copy_ticks_range", *args, **kwargs))
        with self._budget.reservation() as held:
            return self._sliced_range(args, window, held)

    def _sliced_range(self, args: tuple[Any, ...], window: tuple[int, int], held: _Held) -> Any:
        symbol, start, end, flags = args
        parts: list[Any] = []
        size = 0
        width = _FIRST_WINDOW
        left = window[0]
        outside: tuple[int, str] | None = None
        while True:
            right = min(left + width, window[1])
            last = right >= window[1]
            # Each slice but the last ends inside the next one's first second, and keeps only
            # the ticks before it: whether the terminal's end is inclusive to the second or
            # to its last millisecond, every tick lands in exactly one slice.
            chunk = self._call(
                "copy_ticks_range",
                symbol,
                start if left == window[0] else left,
                end if last else right,
                flags,
            )
            if chunk is None:
                if self.last_error()[0] != _NO_DATA:
                    return None  # a real failure (no such symbol...), not "no history there"
                outside = self.last_error()
                chunk = np.empty(0, TICKS_DTYPE)
            elif not last:
                chunk = chunk[chunk["time_msc"] < right * 1000]
            parts.append(chunk)
            size += chunk.nbytes
            if size > self._limit:
                self._refuse(size, "copy_ticks_range over this range")
                return None
            if not held.add(chunk.nbytes):
                self._errors.value = self._budget.refusal()
                return None
            if last:
                break
            width = _next_width(width, len(chunk))
            left = right
        if outside is not None and size == 0:
            self._errors.value = outside  # the whole range lies outside the history
            return None
        self._errors.value = _SUCCESS
        return held.hand_to(_joined(parts))

    def _ticks_from(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) != 4 or kwargs or type(args[2]) is not int or args[2] < 0:
            return self._checked(self._call("copy_ticks_from", *args, **kwargs))
        count = args[2]
        if count * TICKS_DTYPE.itemsize > self._limit:
            self._refuse(count * TICKS_DTYPE.itemsize, f"copy_ticks_from of {count:,} ticks")
            return None
        with self._budget.reservation() as held:
            return self._sliced_count(args, held)

    def _sliced_count(self, args: tuple[Any, ...], held: _Held) -> Any:
        symbol, start, count, flags = args
        parts: list[Any] = []
        have = 0
        skip = 0  # ticks of the next chunk's first second that the last chunk already has
        while True:
            want = min(count - have, SLICE_ROWS)
            chunk = self._call("copy_ticks_from", symbol, start, want + skip, flags)
            if chunk is None:
                return None
            chunk = chunk[skip:]
            parts.append(chunk)
            have += len(chunk)
            if not held.add(chunk.nbytes):
                self._errors.value = self._budget.refusal()
                return None
            if have >= count or len(chunk) < want:
                return held.hand_to(_joined(parts))
            # Go on from the last tick's second: the ticks of that second already here are
            # the first ones the terminal returns again.
            second = int(chunk["time_msc"][-1]) // 1000
            start = second
            skip = sum(int(np.count_nonzero(p["time_msc"] >= second * 1000)) for p in parts[-2:])

    def _checked(self, result: Any) -> Any:
        if isinstance(result, np.ndarray) and result.nbytes > self._limit:
            self._refuse(result.nbytes, "the reply")
            return None
        return result


class _Budget:
    """Bytes of tick replies the server may hold at once, shared by every client."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0
        self._lock = threading.Lock()

    def reservation(self) -> _Held:
        return _Held(self)

    def take(self, size: int) -> bool:
        with self._lock:
            if self.held + size > self.total:
                return False
            self.held += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.held -= size

    def refusal(self) -> tuple[int, str]:
        return reply_too_large(
            self.held, self.total, "with the replies other clients are waiting for, this one"
        )


class _Held:
    """One request's share of the budget: returned when the request fails, or when the reply
    it produced is freed (sent, or its client dropped)."""

    def __init__(self, budget: _Budget) -> None:
        self._budget = budget
        self._size = 0
        self._handed = False

    def add(self, size: int) -> bool:
        if not self._budget.take(size):
            return False
        self._size += size
        return True

    def hand_to(self, reply: Any) -> Any:
        weakref.finalize(reply, self._budget.give_back, self._size)
        self._handed = True
        return reply

    def __enter__(self) -> _Held:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._handed:
            self._budget.give_back(self._size)


def _range_seconds(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, int] | None:
    if len(args) != 4 or kwargs:
        return None
    start, end = _seconds(args[1]), _seconds(args[2])
    if start is None or end is None or end < start:
        return None
    return start, end


def _seconds(value: Any) -> int | None:
    """A date argument as MetaTrader5 reads it, or None when it is not a plain one."""
    if isinstance(value, _dt.datetime):
        try:
            return math.trunc(value.timestamp())
        except (OverflowError, OSError, ValueError):
            return None
    if type(value) is int:
        return value
    return None


def _next_width(width: int, rows: int) -> int:
    # Aim each slice at about SLICE_ROWS ticks from the density just seen, growing at most
    # fourfold (the history may turn dense right after a sparse stretch).
    aimed = width * SLICE_ROWS // max(rows, 1)
    return max(1, min(aimed, width * 4, _MAX_WINDOW))


def _joined(parts: list[Any]) -> Any:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
