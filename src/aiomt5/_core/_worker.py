"""The worker: one dedicated thread, the only one that ever calls the backend.

MetaTrader5 is a process-global, blocking C extension on one named pipe; two threads in it at once
break in-flight calls. So every backend call goes through one long-lived thread (named
``aiomt5-worker-N``), in FIFO order. How a call ends:

* it completes: the result (or exception) is handed to the awaiting coroutine;
* its caller gives up (timeout or cancellation) **while it is still queued**: it never runs. The
  worker takes a job only through an atomic ``PENDING → RUNNING`` step under a lock, and the
  caller's ``PENDING → CANCELLED`` step takes the same lock, so exactly one of them wins;
* its caller gives up **while it runs**: the C call cannot be interrupted. A read is abandoned:
  the caller gets ``MT5TimeoutError`` at once and the late result is dropped (counted). A write
  (``order_send``, ``symbol_select``, ``login``...) may have taken effect, so the caller gets
  ``MT5OutcomeUnknownError`` and the late result is reported (a ``LateResult`` event and an
  ``aiomt5.worker.late_result`` log line).

A call that stays stuck for ``wedged_after`` seconds past its caller's deadline makes the worker
WEDGED: new calls fail at once with ``MT5WorkerBusyError`` instead of piling up behind it. The
queue is also bounded (``max_queued``).

Performance: results travel back in batches. The thread appends finished jobs to a per-loop outbox
and wakes the loop with one ``call_soon_threadsafe`` per batch (not per call). The job is itself
the ``asyncio`` future its caller awaits (no ``concurrent.futures`` → ``wrap_future`` chaining, no
coroutine around the wait: ``submit`` returns it), all deadlines of a loop wait in a queue and a
heap under one timer (no ``call_later`` handle per call), and statistics are recorded per
batch. An idle thread polls for the next call for ``idle_spin`` seconds (yielding the CPU and
the GIL) before it sleeps, which saves the kernel wake-up that dominates the latency of
back-to-back calls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import enum
import functools
import heapq
import itertools
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from time import perf_counter as _perf_counter
from typing import Any, Final, TypeVar

from ._errors import (
    MT5ClosedError,
    MT5OutcomeUnknownError,
    MT5TimeoutError,
    MT5WorkerBusyError,
    summarize_call,
)
from ._events import ConnectorEvent, LateResult, WorkerWedged
from ._log import get_logger
from ._stats import CallRecorder

__all__ = [
    "WRITE_FUNCTIONS",
    "Batch",
    "InFlightCall",
    "Worker",
    "WorkerState",
    "calls_in_flight",
    "plain_call",
]

T = TypeVar("T")

log = get_logger("aiomt5.worker")

WRITE_FUNCTIONS: Final = frozenset(
    {
        "order_send",
        "order_check",
        "symbol_select",
        "market_book_add",
        "market_book_release",
        "login",
        "initialize",
        "Buy",
        "Sell",
        "Close",
    }
)
"""Functions whose started call is never silently dropped (they change terminal state)."""

# Job states. Transitions: PENDING → RUNNING → DONE (worker), PENDING → CANCELLED (caller).
_PENDING: Final = 0
_RUNNING: Final = 1
_DONE: Final = 2
_CANCELLED: Final = 3

_thread_ids = itertools.count(1)
# Calls run inline (``_run_inline``) between two yields to the event loop.
_INLINE_YIELD_EVERY: Final = 8
# Every worker not yet collected, for ``calls_in_flight``.
_workers: weakref.WeakSet[Worker] = weakref.WeakSet()


def calls_in_flight() -> bool:
    """Whether any worker holds a call its caller has not been handed yet.

    A virtual-time event loop (``aiomt5.replay``) asks this before it jumps its clock: while a
    call is queued, running, or its result is on its way back, the loop must wait for real, or
    the call's own deadline would be the next timer and fire at once.
    """
    return any(worker.busy for worker in list(_workers))


# A poll of the idle spin normally takes about a microsecond, or a GIL hand-off (tens to hundreds
# of microseconds) while the event loop runs Python code; one this long means the thread lost its
# CPU to another process, and polling is paused for _SPIN_PAUSE seconds. (At 50 us, GIL waits
# were taken for preemption and the spin was off most of the time on an idle machine.)
_PREEMPTED: Final = 2e-3
_SPIN_PAUSE: Final = 1.0

# Give up the CPU (and the GIL) for an instant; Windows has no sched_yield, Sleep(0) does it there.
_yield_cpu: Callable[[], object] = getattr(os, "sched_yield", None) or functools.partial(
    time.sleep, 0
)


class WorkerState(enum.Enum):
    """What the worker thread is doing."""

    NEW = "new"
    """Not started yet."""
    IDLE = "idle"
    """Waiting for calls."""
    BUSY = "busy"
    """Running a call (possibly past its caller's deadline, within the grace period)."""
    WEDGED = "wedged"
    """Stuck in a call ``wedged_after`` seconds past its caller's deadline; new calls fail fast."""
    CLOSED = "closed"
    """Closed; no new calls."""


@dataclass(frozen=True, slots=True)
class InFlightCall:
    """The call the worker thread is in right now.

    Attributes:
        function: MetaTrader5 function name.
        running_for: Seconds since it started.
        overdue_for: Seconds since its caller gave up (None: the caller is still waiting).
    """

    function: str
    running_for: float
    overdue_for: float | None


@dataclass(frozen=True, slots=True)
class Batch:
    """What makes a job a batch of calls (``Worker.submit(batch=...)``).

    The job's ``fn`` returns ``(results, failed)``: per call, its result or its exception,
    and the indices of the failed ones (``_backends._checked.checked_many``).

    Attributes:
        size: Calls in the batch (statistics count each one).
        raise_first: The caller gets the first failure raised instead of the list.
        summary: How errors and logs show the batch.
    """

    size: int
    raise_first: bool
    summary: str


_future_init: Final = asyncio.Future.__init__
_base_time: Final = asyncio.BaseEventLoop.time


class _Outbox:
    """Per event loop: finished jobs waiting to be handed back, and pending deadlines.

    Deadlines wait here under ONE loop timer, set for the earliest of them; no call has a
    ``call_later`` handle of its own. Calls complete in FIFO order, and most share the default
    timeout, so their deadlines grow in submission order: those wait in ``deadlines`` (oldest
    first; an append), and finished calls leave from its front as batches are delivered. A
    call whose deadline comes before the newest one there (a shorter per-call timeout) waits
    in the heap ``early`` instead. Finished calls are dropped lazily, from the front of either.
    """

    __slots__ = (
        "deadlines",
        "early",
        "items",
        "loop",
        "scheduled",
        "seq",
        "time",
        "timer",
        "timer_at",
        "worker",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
        self.loop = loop
        # asyncio's own loops read time.monotonic(): call it directly (loop.time is Python).
        self.time = time.monotonic if type(loop).time is _base_time else loop.time
        self.worker = worker
        self.items: list[_Job] = []
        self.scheduled = False
        self.deadlines: collections.deque[_Job] = collections.deque()
        self.early: list[tuple[float, int, _Job]] = []
        self.seq = itertools.count()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    def next_deadline(self) -> float | None:
        """The earliest deadline still waiting (finished calls may hold it)."""
        deadlines, early = self.deadlines, self.early
        if deadlines:
            first = deadlines[0].deadline
            return min(first, early[0][0]) if early else first
        return early[0][0] if early else None

    def prune(self) -> None:
        """Drop finished calls from the front of both deadline queues."""
        deadlines, early = self.deadlines, self.early
        while deadlines and deadlines[0].done():
            deadlines.popleft()
        while early and early[0][2].done():
            heapq.heappop(early)


class _Job(asyncio.Future[Any]):
    """One call: what to run, its state, and (being the future its caller awaits) its outcome.

    The caller awaits the job itself: no coroutine wraps the wait, and a cancellation of the
    awaiting task reaches ``cancel`` directly (the caller gives up).
    """

    __slots__ = (
        "args",
        "context",
        "deadline",
        "error",
        "fn",
        "function",
        "gave_up_at",
        "kwargs",
        "outbox",
        "started",
        "state",
        "submitted",
        "timeout",
        "value",
        "write",
    )

    def __init__(
        self,
        function: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        write: bool,
        outbox: _Outbox,
    ) -> None:
        _future_init(self, loop=outbox.loop)
        self.function = function
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.write = write
        self.outbox = outbox
        # Worker-side logs and contextvars-based instrumentation see the caller's context.
        self.context = contextvars.copy_context()
        self.state = _PENDING
        self.value: Any = None
        self.error: BaseException | None = None
        self.started = 0.0
        self.submitted = _perf_counter()
        self.gave_up_at: float | None = None
        self.timeout: float | None = None
        self.deadline = 0.0

    def cancel(self, msg: Any | None = None) -> bool:
        """The caller gave up (its task was cancelled): a queued call will never run."""
        if not super().cancel(msg):
            return False
        self.outbox.worker._give_up(self, None)
        return True

    batch: Batch | None = None  # a class attribute: only batch jobs set it (_BatchJob)

    def summary(self) -> str:
        return summarize_call(self.function, self.args, self.kwargs or {})


class _BatchJob(_Job):
    """A job making a batch of calls back to back (``Worker.submit(batch=...)``)."""

    __slots__ = ("batch",)

    def summary(self) -> str:
        assert self.batch is not None
        return self.batch.summary


_STOP: Final = object()
_AHEAD_MAX: Final = 32  # requests sent ahead at once: enough to keep a child busy


def plain_call(function: Callable[..., T]) -> Callable[..., T]:
    """Mark ``function`` as calling the backend function its job is named after, as is.

    Only such jobs (reads among them) can be sent ahead to a backend that takes requests before
    their calls (``Worker(send_ahead=...)``).
    """
    function.plain_call = True  # type: ignore[attr-defined]
    return function


def _is_plain_read(job: Any) -> bool:
    return (
        job is not _STOP
        and not job.write
        and job.state == _PENDING
        and getattr(job.fn, "plain_call", False)
    )


CALL_TAG: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar(
    "aiomt5_call_tag", default=None
)
"""The correlation tag of the calls made in this context (see ``tagged``)."""


@contextlib.contextmanager
def tagged(tag: str | None) -> Iterator[None]:
    """Calls made in the block carry ``tag``: a late result reports it (``LateResult.tag``).

    The worker already runs each call in a copy of its caller's context, so this costs a call
    nothing; the tag is read only when a late result is reported.
    """
    token = CALL_TAG.set(tag)
    try:
        yield
    finally:
        CALL_TAG.reset(token)


class Worker:
    """A dedicated backend thread with FIFO calls, timeouts, and wedge detection.

    Args:
        name: Thread name prefix; the thread is ``<name>-<n>``.
        wedged_after: Seconds a call may run past its caller's deadline before new calls fail
            fast with ``MT5WorkerBusyError``.
        max_queued: Calls allowed to wait at once; more fail with ``MT5WorkerBusyError``.
        on_event: Receives ``LateResult`` and ``WorkerWedged`` events, on the caller's loop.
        recorder: Counts calls, failures and latencies as their callers see them.
        send_ahead: The backend's ``send_ahead(requests)``, when it can take requests before
            their calls (a child process): before a plain read, the plain reads queued right
            behind it are handed to it, so their round trips overlap (see ``plain_call``).
        on_failure: Told of every call that raised (the supervisor's liveness signal; loop
            thread). Calls that returned are counted in ``answered``.
        idle_spin: Seconds the idle thread polls for the next call (yielding the CPU and the
            GIL) before it goes to sleep, when calls come back to back; it halves their
            latency. 0 disables.
        clock: Monotonic clock (tests may pass a fake one).
    """

    def __init__(
        self,
        *,
        name: str = "aiomt5-worker",
        wedged_after: float = 1.0,
        max_queued: int = 10_000,
        on_event: Callable[[ConnectorEvent], None] | None = None,
        idle_spin: float = 0.0005,
        recorder: CallRecorder | None = None,
        send_ahead: Callable[[list[tuple[str, tuple[Any, ...], Any]]], None] | None = None,
        on_failure: Callable[[BaseException], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._send_ahead = send_ahead
        # Jobs taken from the queue to be sent ahead, run before the queue's (worker thread;
        # appends and close()'s cancellations under _lock).
        self._ahead: collections.deque[Any] = collections.deque()
        self._on_failure = on_failure
        self.answered = 0
        """Calls that returned: a rising count is proof that the terminal answers."""
        self._idle_spin = idle_spin
        self._recorder = recorder
        self._wedged_after = wedged_after
        self._max_queued = max_queued
        self._on_event = on_event
        self._clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._exited = False
        self._exit_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._outbox: _Outbox | None = None
        self._outboxes: dict[asyncio.AbstractEventLoop, _Outbox] = {}
        self._current: _Job | None = None
        self._wedged_reported: _Job | None = None
        self.completed = 0
        """Calls that ran to completion and were delivered."""
        self.abandoned = 0
        """Reads whose caller gave up while they ran (their results are dropped)."""
        self.outcome_unknown = 0
        """Writes whose caller gave up while they ran."""
        self.late_results = 0
        """Late results of writes reported so far."""
        self.cancelled_before_start = 0
        """Calls whose caller gave up while they were queued (they never ran)."""
        self.rejected_busy = 0
        """Calls refused with ``MT5WorkerBusyError``."""
        # Calls handed to the thread (loop side) and calls the thread is done with (thread
        # side): each counter has one writer, so neither needs the lock.
        self._submitted = 0
        self._settled = 0
        self._inline_calls = 0
        _workers.add(self)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._closed:
            raise MT5ClosedError("the worker is closed; a new connection starts a new worker")
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._main, name=f"{self._name}-{next(_thread_ids)}", daemon=True
        )
        self._thread.start()

    @property
    def thread(self) -> threading.Thread | None:
        """The worker thread (None before ``start()``)."""
        return self._thread

    @property
    def closed(self) -> bool:
        """True once ``close``/``aclose`` was called."""
        return self._closed

    async def aclose(self, timeout: float | None = 5.0) -> bool:
        """Stop accepting calls, let queued calls finish, and join the thread.

        Cancellation-safe: it is meant to run shielded from the caller's cancellation.

        Args:
            timeout: Seconds to wait for the thread; ``None`` waits forever.

        Returns:
            True if the thread exited and was joined; False if it is still stuck in a call
            after ``timeout`` (it is a daemon thread and is left behind; queued calls fail with
            ``MT5ClosedError``).
        """
        if not self._begin_close():
            return True
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._exited:
                exited.set_result(None)
            else:
                self._exit_waiters.append((loop, exited))
        try:
            async with asyncio.timeout(timeout):
                await exited
        except TimeoutError:
            return self._left_behind()
        assert self._thread is not None  # _begin_close returned True only with a thread
        self._thread.join()
        return True

    def close(self, timeout: float | None = 1.0) -> bool:
        """Synchronous close: fail queued calls with ``MT5ClosedError`` and join the thread.

        Blocks the calling thread up to ``timeout``; prefer ``aclose`` in async code.

        Returns:
            True if the thread was joined.
        """
        if not self._begin_close():
            return True
        self._cancel_queued()
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            return self._left_behind()
        return True

    def stop_soon(self) -> None:
        """Close without waiting (for finalizers).

        Queued calls fail with ``MT5ClosedError``; the thread exits once its current call (if
        any) returns.
        """
        if self._begin_close():
            self._cancel_queued()

    def _begin_close(self) -> bool:
        already, self._closed = self._closed, True
        if self._thread is None or (already and self._exited):
            return False
        if not already:
            self._queue.put(_STOP)
        return True

    def _left_behind(self) -> bool:
        current = self._current
        log.warning(
            "aiomt5.worker.close_timed_out",
            function=current.function if current else None,
            worker_thread=self._thread.name if self._thread else None,
        )
        self._cancel_queued()
        return False

    def _cancel_queued(self) -> None:
        """Fail every call still queued with ``MT5ClosedError`` (they never run)."""
        stop_seen = False
        with self._lock:  # taken ahead by the worker: it skips them once cancelled
            taken = [job for job in self._ahead if job is not _STOP]
        while True:
            if taken:
                job = taken.pop()
            else:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
            if job is _STOP:
                stop_seen = True
                continue
            with self._lock:
                if job.state != _PENDING:
                    continue
                job.state = _CANCELLED
            self.cancelled_before_start += 1
            error = MT5ClosedError(
                "the connector closed before this call ran; it was not sent",
                function=job.function,
                args_summary=job.summary(),
            )
            _call_on_loop(job.outbox.loop, self._fail, job, error)
        if stop_seen:
            self._queue.put(_STOP)

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> WorkerState:
        """NEW, IDLE, BUSY, WEDGED or CLOSED."""
        if self._closed:
            return WorkerState.CLOSED
        if self._thread is None:
            return WorkerState.NEW
        current = self._current
        if current is None:
            return WorkerState.IDLE
        if self._is_wedged(current):
            return WorkerState.WEDGED
        return WorkerState.BUSY

    @property
    def in_flight(self) -> InFlightCall | None:
        """The call running right now, with its age, or None."""
        current = self._current
        if current is None:
            return None
        now = self._clock()
        gave_up = current.gave_up_at
        return InFlightCall(
            current.function,
            now - current.started,
            None if gave_up is None else now - gave_up,
        )

    @property
    def busy(self) -> bool:
        """A call is queued or running, its result is not yet handed back to its loop, or the
        thread is closing."""
        if self._exited or self._thread is None:
            return False
        # A closing thread wakes its loop when it exits. ``scheduled`` is set before
        # ``_settled`` moves, so reading in this order misses nothing.
        return (
            self._closed
            or self._submitted != self._settled
            or any(outbox.scheduled for outbox in list(self._outboxes.values()))
        )

    @property
    def queued(self) -> int:
        """Calls waiting (approximate: includes calls already given up, not yet skipped)."""
        return self._queue.qsize() + len(self._ahead)

    def _is_wedged(self, job: _Job) -> bool:
        gave_up = job.gave_up_at
        return gave_up is not None and self._clock() - gave_up >= self._wedged_after

    # ------------------------------------------------------------------ calls (loop side)

    async def run(
        self,
        function: str,
        fn: Callable[..., T],
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None,
        write: bool | None = None,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` on the worker thread and await its result.

        Args:
            function: The MetaTrader5 function name (for errors, logs and the write policy).
            fn: What to run on the worker thread.
            args: Positional arguments (also shown, secrets masked, in errors).
            kwargs: Keyword arguments.
            timeout: Seconds before the caller gives up; ``None`` waits forever; ``<= 0``
                fails at once without queueing.
            write: Whether a started call must not be dropped silently; default: ``function``
                is in ``WRITE_FUNCTIONS``.

        Raises:
            MT5TimeoutError: Timed out while queued (never ran) or while running a read.
            MT5OutcomeUnknownError: Timed out while running a write.
            MT5WorkerBusyError: The worker is wedged, or the queue is full.
            MT5ClosedError: The worker is closed.
        """
        result: T = await self.submit(function, fn, args, kwargs, timeout=timeout, write=write)
        return result

    def submit(
        self,
        function: str,
        fn: Callable[..., T],
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None,
        write: bool | None = None,
        batch: Batch | None = None,
    ) -> asyncio.Future[T]:
        """Queue the call and return the future its caller awaits (``run`` without a frame).

        The same call as ``run`` (same arguments, same errors, raised here at once when the
        call cannot be queued). Cancelling the returned future is the caller giving up: a
        queued call never runs; a running one is abandoned (a read) or reported later (a
        write). Must be called on the event loop thread.

        With ``batch``, the job is a batch of calls (see ``Batch``): one place in the queue,
        one timeout for all of them; the future's result is the list of their results (or
        their first failure, raised, with ``batch.raise_first``), and statistics count every
        call of it.
        """
        if timeout is not None and timeout <= 0:
            raise MT5TimeoutError(
                f"timeout={timeout!r} leaves no time to run; it was not sent",
                function=function,
                args_summary=summarize_call(function, args, kwargs or {}),
            )
        if self._closed or self._thread is None:
            state = "closed" if self._closed else "not started"
            raise MT5ClosedError(f"the worker is {state}; connect first", function=function)
        current = self._current
        if current is not None and current.gave_up_at is not None and self._is_wedged(current):
            self._reject_wedged(current, function, args, kwargs)
        calls = self._queue
        if calls.qsize() >= self._max_queued:
            self.rejected_busy += 1
            raise MT5WorkerBusyError(
                f"{self._max_queued} calls are already waiting for the terminal; slow down or "
                "raise MT5Settings.max_queued_calls",
                function=function,
                args_summary=summarize_call(function, args, kwargs or {}),
            )
        loop = asyncio.get_running_loop()
        if getattr(loop, "inline_backend_calls", False):
            return self._run_inline(loop, fn, args, kwargs, batch)
        outbox = self._outbox
        if outbox is None or outbox.loop is not loop:
            outbox = self._outbox_for(loop)
        job = (_Job if batch is None else _BatchJob)(
            function,
            fn,
            args,
            kwargs,
            function in WRITE_FUNCTIONS if write is None else write,
            outbox,
        )
        if batch is not None:
            job.batch = batch
        if timeout is not None:
            # Inline (the hot path): the deadline joins the loop's queues under its one timer.
            job.timeout = timeout
            job.deadline = deadline = outbox.time() + timeout
            deadlines = outbox.deadlines
            if deadlines and deadline < deadlines[-1].deadline:
                heapq.heappush(outbox.early, (deadline, next(outbox.seq), job))
            else:
                deadlines.append(job)
            # The timer may still be set for a later deadline of a call that already finished.
            if outbox.timer is None or deadline < outbox.timer_at:
                self._arm_timer(outbox, deadline)
        self._submitted += 1
        calls.put(job)
        return job

    def _run_inline(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        batch: Batch | None = None,
    ) -> asyncio.Future[T]:
        """The call on the loop's own thread, for a loop that asks for it (``submit``).

        A virtual-time loop (``aiomt5.replay``) does: its clock stands still during a call
        either way, so no deadline can fire, and the simulator's calls are quick; the thread
        hop is then pure cost (more than half of a replay's time). The future comes back done,
        except every few calls, when it is resolved on the loop's next turn: the caller then
        yields, so a bot calling in a loop without sleeping still lets other tasks (and timers)
        run.
        """
        future: asyncio.Future[T] = loop.create_future()
        started = _perf_counter()
        try:
            value = fn(*args, **kwargs) if kwargs else fn(*args)
        except Exception as exc:  # noqa: BLE001  # the caller gets every failure
            future.set_exception(exc)
            if self._recorder is not None:
                self._recorder.failed(exc, _perf_counter() - started)
            if self._on_failure is not None:
                self._on_failure(exc)
            return future
        latency = _perf_counter() - started
        if batch is not None:  # every call of it counts, as in _deliver_batch
            results, error, succeeded = self._settle_batch(value, batch, latency)
            self.answered += succeeded
            self.completed += len(results)
            if self._recorder is not None and succeeded:
                self._recorder.succeeded_many([latency] * succeeded)
            if error is not None:
                future.set_exception(error)
                return future
            value = results  # type: ignore[assignment]
        else:
            self.answered += 1
            self.completed += 1
            if self._recorder is not None:
                self._recorder.succeeded_many([latency])
        self._inline_calls += 1
        if self._inline_calls % _INLINE_YIELD_EVERY:
            future.set_result(value)
        else:
            loop.call_soon(_settle, future, value)
        return future

    def _arm_timer(self, outbox: _Outbox, when: float) -> None:
        if outbox.timer is not None:
            outbox.timer.cancel()
        outbox.timer = outbox.loop.call_at(when, self._check_deadlines, outbox)
        outbox.timer_at = when

    def _check_deadlines(self, outbox: _Outbox) -> None:
        """The shared deadline timer fired: give up on overdue calls, re-arm for the next."""
        outbox.timer = None
        now = outbox.time()
        deadlines, early = outbox.deadlines, outbox.early
        while True:
            outbox.prune()
            first = outbox.next_deadline()
            if first is None:
                return
            if first > now:
                self._arm_timer(outbox, first)
                return
            if deadlines and deadlines[0].deadline == first:
                job = deadlines.popleft()
            else:
                job = heapq.heappop(early)[2]
            self._give_up(job, job.timeout)

    def _outbox_for(self, loop: asyncio.AbstractEventLoop) -> _Outbox:
        outbox = self._outboxes.get(loop)
        if outbox is None:
            # Drop outboxes of closed loops (pytest runs each test in a fresh loop).
            for old in [old for old in self._outboxes if old.is_closed()]:
                del self._outboxes[old]
            outbox = self._outboxes[loop] = _Outbox(loop, self)
        self._outbox = outbox
        return outbox

    def _reject_wedged(
        self,
        current: _Job,
        function: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
    ) -> None:
        self.rejected_busy += 1
        now = self._clock()
        running_for = now - current.started
        overdue = now - (current.gave_up_at or now)
        stuck = current.summary()
        self._report_wedged(current)
        raise MT5WorkerBusyError(
            f"the terminal is stuck in {stuck} for {running_for:.1f}s, {overdue:.1f}s past its "
            "timeout; refusing new calls until it returns (check the terminal; a reconnect "
            "cannot help while the call is stuck)",
            function=function,
            args_summary=summarize_call(function, args, kwargs or {}),
        )

    def _report_wedged(self, current: _Job) -> None:
        """Log and emit ``WorkerWedged`` for ``current``, once per stuck call (loop thread)."""
        if self._wedged_reported is current:
            return
        self._wedged_reported = current
        now = self._clock()
        running_for = now - current.started
        overdue = now - (current.gave_up_at or now)
        stuck = current.summary()
        log.error(
            "aiomt5.worker.wedged",
            function=current.function,
            call=stuck,
            running_for=round(running_for, 3),
            overdue=round(overdue, 3),
        )
        self._emit(
            WorkerWedged(
                function=current.function,
                args_summary=stuck,
                running_for=running_for,
                overdue=overdue,
            )
        )

    def _check_wedged(self, job: _Job) -> None:
        """``wedged_after`` seconds after its caller gave up: is ``job`` still stuck?"""
        if self._current is job and not self._closed:
            self._report_wedged(job)

    def _give_up(self, job: _Job, timeout: float | None) -> None:
        """The caller stopped waiting: ``timeout`` seconds elapsed, or (None) it was cancelled."""
        with self._lock:
            state = job.state
            if state == _PENDING:
                job.state = _CANCELLED
            elif state == _RUNNING:
                job.gave_up_at = self._clock()
        if state == _PENDING:
            self.cancelled_before_start += 1
            if timeout is not None and not job.done():
                log.warning(
                    "aiomt5.worker.call_timed_out",
                    function=job.function,
                    phase="queued",
                    timeout=timeout,
                    queued=self._queue.qsize(),
                )
                self._fail(
                    job,
                    MT5TimeoutError(
                        f"timed out after {timeout}s while queued behind other calls; it never ran",
                        function=job.function,
                        args_summary=job.summary(),
                    ),
                )
            return
        if state != _RUNNING:
            return  # finished; its result is on the way and wins over the timeout
        # Say so as soon as the call counts as stuck, not only when a new call is refused:
        # whoever can end it (the supervisor, with a child process) should not wait for that.
        job.outbox.loop.call_later(self._wedged_after, self._check_wedged, job)
        summary = job.summary()
        how = f"timed out after {timeout}s" if timeout is not None else "was cancelled"
        if job.write:
            self.outcome_unknown += 1
            log.warning(
                "aiomt5.worker.outcome_unknown", function=job.function, call=summary, reason=how
            )
            error: Exception = MT5OutcomeUnknownError(
                f"{how} while the terminal was running it; it may have taken effect. The "
                "late result will be reported as a LateResult event: reconcile before retrying",
                function=job.function,
                args_summary=summary,
            )
        else:
            self.abandoned += 1
            if timeout is not None:
                log.warning(
                    "aiomt5.worker.call_timed_out",
                    function=job.function,
                    phase="running",
                    timeout=timeout,
                    call=summary,
                )
            error = MT5TimeoutError(
                f"{how} while the terminal was running it; the call was abandoned and its "
                "late result will be dropped",
                function=job.function,
                args_summary=summary,
            )
        if timeout is not None:
            self._fail(job, error)

    # ------------------------------------------------------------------ worker thread

    def _main(self) -> None:
        get = self._queue.get
        empty = self._queue.empty
        clock = self._clock
        spin = self._idle_spin
        ahead = self._ahead
        send_ahead = self._send_ahead
        paused_until = 0.0
        gap = float("inf")  # idle time before the last call arrived
        idle_since = clock()
        try:
            while True:
                # Poll only while calls come back to back: after a long gap it is wasted CPU.
                if spin and gap <= spin and not ahead and empty() and idle_since >= paused_until:
                    paused_until = self._spin(spin)
                if ahead:
                    with self._lock:  # close() may be looking at it
                        job = ahead.popleft()
                else:
                    job = get()
                if job is _STOP:
                    break
                gap = clock() - idle_since
                if send_ahead is not None and not ahead and _is_plain_read(job):
                    self._look_ahead(job, send_ahead)
                self._execute(job)
                idle_since = clock()
                # Hold no reference to the last call while idle: it would keep its caller's
                # objects alive (and an abandoned connector could never be collected).
                del job
        finally:
            self._thread_exit()

    def _look_ahead(
        self, job: _Job, send_ahead: Callable[[list[tuple[str, tuple[Any, ...], Any]]], None]
    ) -> None:
        """Hand ``job`` and the plain reads queued right behind it to the backend at once.

        They run in order all the same; the backend only sends their requests before their
        calls, so the terminal answers them back to back. Writes are never sent ahead: a call
        cancelled while queued must not run.
        """
        requests = [(job.function, job.args, job.kwargs)]
        taken: list[Any] = []
        while len(requests) < _AHEAD_MAX:
            try:
                queued = self._queue.get_nowait()
            except queue.Empty:
                break
            taken.append(queued)
            if queued is not _STOP and queued.state == _CANCELLED:
                continue  # given up while queued: it never runs, nothing to send
            if not _is_plain_read(queued):
                break
            requests.append((queued.function, queued.args, queued.kwargs))
        if taken:
            with self._lock:
                self._ahead.extend(taken)
        if len(requests) > 1:
            send_ahead(requests)

    def _spin(self, spin: float) -> float:
        """Poll for the next call for up to ``spin`` seconds; return until when not to spin.

        Back-to-back calls are the common case (a strategy awaiting one call after another).
        Polling a little before sleeping saves the kernel wake-up, which is most of a call's
        latency; sched_yield releases the CPU and the GIL between polls. The caller polls only
        when the previous call came within ``spin`` of the one before. On an oversubscribed
        machine an idle poller only steals time from the event loop (it may even be preempted
        holding the GIL), so a poll that lost the CPU pauses polling for a while.
        """
        empty = self._queue.empty
        clock = self._clock
        last = clock()
        deadline = last + spin
        while empty():
            now = clock()
            if now - last > _PREEMPTED:
                return now + _SPIN_PAUSE
            if now >= deadline:
                break
            last = now
            _yield_cpu()
        return 0.0

    def _execute(self, job: _Job) -> None:
        lock = self._lock
        with lock:
            if job.state != _PENDING:
                self._settled += 1
                return  # its caller gave up while it was queued: it never runs
            job.state = _RUNNING
            job.started = self._clock()
            self._current = job
        try:
            if job.kwargs:
                job.value = job.context.run(job.fn, *job.args, **job.kwargs)
            else:
                job.value = job.context.run(job.fn, *job.args)
        except BaseException as exc:  # noqa: BLE001  # every outcome goes to the caller
            job.error = exc
        with lock:
            self._current = None
            job.state = _DONE
            if job.gave_up_at is not None:
                late = True
            else:
                late = False
                outbox = job.outbox
                outbox.items.append(job)
                wake = not outbox.scheduled
                outbox.scheduled = True
            self._settled += 1
        if late:
            self._finish_late(job)
        elif wake and not _call_on_loop(outbox.loop, self._deliver, outbox):
            with lock:
                outbox.items.clear()  # the loop is gone, and so are the callers
                outbox.scheduled = False

    def _thread_exit(self) -> None:
        with self._lock:
            self._exited = True
            self._current = None
            waiters, self._exit_waiters = self._exit_waiters, []
        for loop, future in waiters:
            _call_on_loop(loop, _resolve_future, future, None)

    def _finish_late(self, job: _Job) -> None:
        """A call whose caller gave up has returned (worker thread)."""
        now = self._clock()
        overdue = now - (job.gave_up_at or now)
        if not job.write:
            if log.enabled(logging.DEBUG):
                log.debug(
                    "aiomt5.worker.abandoned_result_dropped",
                    function=job.function,
                    overdue=round(overdue, 3),
                )
            return
        self._report_late(job, overdue)

    def _report_late(self, job: _Job, overdue: float) -> None:
        self.late_results += 1
        summary = job.summary()
        duration = self._clock() - job.started
        log.warning(
            "aiomt5.worker.late_result",
            function=job.function,
            call=summary,
            outcome="error" if job.error is not None else "returned",
            result=_short(job.error if job.error is not None else job.value),
            duration=round(duration, 3),
            overdue=round(overdue, 3),
        )
        event = LateResult(
            function=job.function,
            args_summary=summary,
            result=job.value,
            error=job.error,
            duration=duration,
            overdue=overdue,
            tag=job.context.get(CALL_TAG),
        )
        if threading.current_thread() is self._thread:
            _call_on_loop(job.outbox.loop, self._emit, event)
        else:
            self._emit(event)

    # ------------------------------------------------------------------ loop side delivery

    def _deliver(self, outbox: _Outbox) -> None:
        """Resolve a batch of finished calls (event loop thread; one wake-up per batch).

        Their statistics are recorded here in bulk: latency runs from the submission to this
        delivery (the caller resumes right after).
        """
        with self._lock:
            items, outbox.items = outbox.items, []
            outbox.scheduled = False
        self.completed += len(items)
        now = _perf_counter()
        latencies: list[float] = []
        for job in items:
            if job.done():
                # Cancelled after it finished but before this batch arrived: for a write the
                # caller never saw the outcome, so report it like any late result.
                if job.write and job.cancelled():
                    self._report_late(job, 0.0)
                continue
            if job.error is None:
                if job.batch is not None:
                    self._deliver_batch(job, job.batch, now, latencies)
                    continue
                job.set_result(job.value)
                latencies.append(now - job.submitted)
            else:
                self._fail(job, job.error, now)
        if latencies:
            self.answered += len(latencies)
            if self._recorder is not None:
                self._recorder.succeeded_many(latencies)
        outbox.prune()

    def _deliver_batch(self, job: _Job, batch: Batch, now: float, latencies: list[float]) -> None:
        """Resolve a finished batch: every call of it counts, with the batch's latency."""
        latency = now - job.submitted
        results, error, succeeded = self._settle_batch(job.value, batch, latency)
        self.completed += len(results) - 1
        latencies.extend(itertools.repeat(latency, succeeded))
        if error is not None:
            job.set_exception(error)
        else:
            job.set_result(results)

    def _settle_batch(
        self, outcome: Any, batch: Batch, latency: float
    ) -> tuple[list[Any], Exception | None, int]:
        """A finished batch's ``(results, failed)``: record each failure; return the results,
        the error to raise (the first failure, with ``raise_first``) and how many succeeded."""
        results, failed = outcome
        for index in failed:
            self._record_failure(results[index], latency)
        error = results[failed[0]] if failed and batch.raise_first else None
        return results, error, len(results) - len(failed)

    def _fail(self, job: _Job, error: BaseException, now: float | None = None) -> None:
        """Fail the call with ``error`` and record it, unless its caller gave up (loop thread)."""
        if job.done():
            return
        if isinstance(error, StopIteration | KeyboardInterrupt | SystemExit):
            # Futures refuse StopIteration, and process-level exits belong to the main thread.
            wrapped = RuntimeError(f"worker call raised {type(error).__name__}")
            wrapped.__cause__ = error
            error = wrapped
        job.set_exception(error)
        if not isinstance(error, Exception):
            return  # a cancellation raised by the call itself: not a failure to count
        self._record_failure(error, (now or _perf_counter()) - job.submitted)

    def _record_failure(self, error: Exception, latency: float) -> None:
        if self._recorder is not None:
            self._recorder.failed(error, latency)
        if self._on_failure is not None:
            self._on_failure(error)

    def _emit(self, event: ConnectorEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:197]}..."


def _call_on_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any
) -> bool:
    """``call_soon_threadsafe`` that tolerates a closed loop; returns whether it was scheduled."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # loop closed: nobody is left to receive it
        return False
    return True


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():  # its caller may have given up meanwhile
        future.set_result(value)


def _resolve_future(future: asyncio.Future[None], value: None) -> None:
    if not future.done():
        future.set_result(value)
