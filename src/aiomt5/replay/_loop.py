"""Virtual time: an asyncio event loop whose clock jumps to the next timer when all is waiting.

Why not ``looptime``: it patches the same two places (``loop.time()`` and the selector's
``select``), but it cannot see aiomt5's worker thread (it is not an executor), so while a call
runs it would fast-forward to the next timer, which is that call's own deadline: every call would
time out. For executor work it advances fake time in real-time-sized steps, so a result would
depend on how fast the machine is. Here the loop asks the workers (``calls_in_flight``) and its
own executor futures, and while any thread work is pending it waits for real without moving the
clock; time only ever moves to exactly the next timer. Same code, same data, same seed: same run.

The rule, in ``_select`` (the selector's ``select`` replaced on this loop only):

1. I/O or a thread's wake-up ready now (``select(0)``), or callbacks ready: run them; no jump.
2. Thread work pending (a backend call queued, running or on its way back; an executor job):
   wait for real (the thread wakes the loop when done); the clock stands still.
3. Otherwise every task is waiting for a timer: the clock jumps to the earliest one.

Several loops built from one ``VirtualClock`` (a script calling ``asyncio.run`` twice) share its
time, so the simulated clock that follows it never runs backwards.
"""

from __future__ import annotations

import asyncio
import selectors
import threading
from collections.abc import Callable
from typing import Any, Final

from aiomt5._core._worker import calls_in_flight

__all__ = ["VirtualClock", "VirtualTimeLoop"]

# Real seconds one wait for thread work lasts before the loop looks again (the thread's
# call_soon_threadsafe wakes it at once; this only bounds a missed wake-up).
_THREAD_POLL: Final = 0.05
# Real seconds of waiting for thread work before the clock may move on all the same.
_THREAD_PATIENCE: Final = 10.0


# Virtual time is kept on a grid of this many steps per second. Sums of float seconds drift (a
# thousand polls of 1.001 s do not add up to 1001.0 exactly), and a drift across a millisecond
# moves a simulated tick read: on the grid, one instant reached by different sums (one long sleep
# or many short ones) is the same float.
_GRID: Final = 1_000_000


def on_grid(seconds: float) -> float:
    """``seconds`` rounded to the nearest microsecond of the virtual-time grid."""
    return round(seconds * _GRID) / _GRID


class VirtualClock:
    """Virtual seconds shared by the loops of one replay (and what the simulated clock follows).

    ``on_advance(old, new)`` is called before each jump from the loop thread, with everything
    waiting: a replay takes its equity samples there.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.jumps = 0
        self.on_advance: Callable[[float, float], None] | None = None
        self._lock = threading.Lock()

    def time(self) -> float:
        """Current virtual time, seconds."""
        return self.now

    def advance_to(self, when: float) -> None:
        """Jump forward to ``when`` (never back); ``on_advance`` sees the jump first."""
        old = self.now
        when = on_grid(when)
        if when <= old:
            return
        hook = self.on_advance
        if hook is not None:
            hook(old, when)
        with self._lock:  # a worker thread's pipe time may move it too
            if when > self.now:
                self.now = when
            self.jumps += 1


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time (see the module docstring).

    Args:
        clock: The shared virtual clock (default: a new one).
        in_flight: Whether thread work the loop cannot see is pending (default: aiomt5's
            workers' ``calls_in_flight``).
        inline_backend_calls: Ask aiomt5's workers to run backend calls on this loop's thread
            (``Worker.run`` reads this attribute). Virtual time stands still during a call
            either way; the thread hop only costs time. False keeps the worker thread.
    """

    def __init__(
        self,
        clock: VirtualClock | None = None,
        *,
        in_flight: Callable[[], bool] = calls_in_flight,
        inline_backend_calls: bool = True,
    ) -> None:
        super().__init__()
        self.inline_backend_calls = inline_backend_calls
        self.clock = clock if clock is not None else VirtualClock()
        self._in_flight = in_flight
        self._executor_jobs: set[asyncio.Future[Any]] = set()
        selector: selectors.BaseSelector = self._selector  # type: ignore[attr-defined]
        self._real_select = selector.select
        selector.select = self._select  # type: ignore[method-assign]

    def time(self) -> float:
        return self.clock.now

    def call_at(  # type: ignore[override]  # same behaviour, looser types
        self, when: float, callback: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> asyncio.TimerHandle:
        # Timers on the clock's grid (``call_later`` comes here too): the jump lands on them.
        return super().call_at(on_grid(when), callback, *args, **kwargs)

    def run_in_executor(  # type: ignore[override]  # same behaviour, looser types
        self, executor: Any, func: Callable[..., Any], *args: Any
    ) -> Any:
        future = super().run_in_executor(executor, func, *args)
        self._executor_jobs.add(future)
        future.add_done_callback(self._executor_jobs.discard)
        return future

    def _threads_busy(self) -> bool:
        return bool(self._executor_jobs) or self._in_flight()

    def _select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real_select(0)
        if ready or timeout == 0:
            return ready
        waited = 0.0
        while self._threads_busy():
            if waited >= _THREAD_PATIENCE:
                # A thread stuck for real: let time run on, so its caller's timeout can fire
                # as it would in real time.
                break
            ready = self._real_select(_THREAD_POLL)
            if ready:
                return ready
            waited += _THREAD_POLL
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        if not scheduled:
            # No timer and no thread work: only outside I/O (or a signal) can wake the loop.
            return self._real_select(_THREAD_POLL)
        self.clock.advance_to(scheduled[0].when())
        return []
