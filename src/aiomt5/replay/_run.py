"""Running a bot's unchanged code on a recorded market (see ``aiomt5.replay``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import math
import os
import random
import runpy
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from aiomt5._core._errors import MT5InvalidArgumentError
from aiomt5.sim import SimAccount, SimClock, SimTerminal
from aiomt5.sim._account import default_accounts
from aiomt5.sim._clock import TimeLike, to_epoch_seconds
from aiomt5.sim._recorded import Recording, RecordingError
from aiomt5.sim._setup import providing

from ._loop import VirtualClock, VirtualTimeLoop
from ._report import EQUITY_DTYPE, ReplayResult, deals_array

__all__ = ["BotError", "ReplayError", "run"]

Bot = str | os.PathLike[str] | Callable[[Any], Awaitable[Any]]
"""A script path (run as ``__main__``), or ``async def bot(mt5)`` given a connected connector."""
Progress = Callable[[float, float, float], None]
"""``progress(simulated_now, start, end)``, epoch seconds, called a few times a second."""

# Settings a bot could read that would point it away from the replay's terminal.
_HIDDEN_ENV: Final = ("MT5_LOGIN", "MT5_PASSWORD", "MT5_SERVER", "MT5_PATH", "MT5_SIM_START")
_HEALTH_ENV: Final = "MT5_HEALTH_CHECK"
# Equity samples: one per simulated minute.
_SAMPLE_EVERY: Final = 60
# Real seconds between progress reports.
_PROGRESS_EVERY: Final = 0.1
# After the end, how often (simulated seconds) and how many times the bot is cancelled before
# the loop is stopped outright (a bot that swallows cancellation).
_CANCEL_EVERY: Final = 10.0
_CANCEL_TRIES: Final = 6


class ReplayError(Exception):
    """A replay could not run: bad arguments, an unusable recording, or the bot failed."""


class BotError(ReplayError):
    """The bot raised (its exception is the ``__cause__``) or exited with an error status."""


class _ReplayEnded(BaseException):
    """Raised in a synchronous bot's ``time.sleep`` once the replay reaches its end."""


@dataclasses.dataclass
class _Sampler:
    """Equity/balance samples of the replay's terminal, one per simulated minute."""

    terminal: SimTerminal
    start: float
    end: float
    progress: Progress | None
    rows: list[tuple[int, float, float, float]] = dataclasses.field(default_factory=list)
    next_at: float = 0.0
    last_report: float = 0.0

    def __post_init__(self) -> None:
        self.next_at = (math.floor(self.start / _SAMPLE_EVERY) + 1) * _SAMPLE_EVERY

    def sample(self, at: float) -> None:
        # A read of the replay's own: no simulated pipe time (it would move the clock).
        terminal = self.terminal
        cost, terminal.ipc_seconds = terminal.ipc_seconds, 0.0
        try:
            account = terminal.account_info()
        finally:
            terminal.ipc_seconds = cost
        if account is not None:
            self.rows.append((int(at), account.balance, account.equity, account.margin))

    def due(self, now: float) -> None:
        """Take the samples due by simulated ``now`` (the clock must read each one's time)."""
        while self.next_at <= now and self.next_at <= self.end:
            self.sample(self.next_at)
            self.next_at += _SAMPLE_EVERY
        self.report(now)

    def report(self, now: float, *, force: bool = False) -> None:
        if self.progress is None:
            return
        real = time.monotonic()
        if force or real - self.last_report >= _PROGRESS_EVERY:
            self.last_report = real
            self.progress(min(now, self.end), self.start, self.end)


def _recording(store: Any, data: Any, recording: Recording | None, server: str | None) -> Recording:
    given = [x is not None for x in (store, data, recording)]
    if sum(given) != 1:
        raise ReplayError("give exactly one market: store=..., data=[files] or recording=...")
    try:
        if recording is not None:
            return recording
        if store is not None:
            return Recording.from_store(store, server=server)
        return Recording.from_files(data)
    except RecordingError as exc:
        raise ReplayError(str(exc)) from None


def _epoch(name: str, value: TimeLike | None, default: float) -> float:
    if value is None:
        return default
    try:
        return to_epoch_seconds(value)
    except (TypeError, ValueError) as exc:
        raise ReplayError(f"{name}: {exc}") from None


def _accounts(balance: float) -> tuple[SimAccount, ...]:
    if not (math.isfinite(balance) and balance > 0):
        raise ReplayError(f"balance must be a positive amount, got {balance!r}")
    return tuple(dataclasses.replace(a, balance=float(balance)) for a in default_accounts())


@contextlib.contextmanager
def _environment() -> Iterator[None]:
    """``MT5_BACKEND=sim`` for the bot, without settings that would point it elsewhere.

    Health checks are off unless ``MT5_HEALTH_CHECK`` says otherwise: a recording has no terminal
    to lose, and each ping would take its ``call_cost`` of simulated time whenever the bot is
    idle, so a replay whose stream skips idle polls would drift (by a millisecond here and there)
    from the same replay polling every second.
    """
    saved = {name: os.environ.get(name) for name in (*_HIDDEN_ENV, "MT5_BACKEND", _HEALTH_ENV)}
    for name in _HIDDEN_ENV:
        os.environ.pop(name, None)
    os.environ["MT5_BACKEND"] = "sim"
    os.environ.setdefault(_HEALTH_ENV, "false")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Policy(asyncio.DefaultEventLoopPolicy):
    def __init__(self, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
        super().__init__()
        self._factory = factory

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return self._factory()


@contextlib.contextmanager
def _loops(factory: Callable[[], asyncio.AbstractEventLoop]) -> Iterator[None]:
    """Every event loop the bot creates (``asyncio.run``) comes from ``factory``."""
    saved = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_Policy(factory))
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(saved)


@contextlib.contextmanager
def _seeded_tags(seed: int) -> Iterator[None]:
    """The trader's order tags from a generator seeded by ``seed`` (same seed, same comments)."""
    from aiomt5._trading import _models

    saved = _models.random_bits
    _models.random_bits = random.Random(f"aiomt5.replay.tags:{seed}").getrandbits
    try:
        yield
    finally:
        _models.random_bits = saved


@contextlib.contextmanager
def _sleeping(sleep: Callable[[float], None]) -> Iterator[None]:
    """A synchronous bot's ``time.sleep`` goes through ``sleep`` (the replay's clock)."""
    saved = time.sleep
    time.sleep = sleep  # type: ignore[assignment]
    try:
        yield
    finally:
        time.sleep = saved


class _Run:
    """One replay: the terminal, the clocks, the loops, the samples."""

    def __init__(
        self,
        recording: Recording,
        *,
        start: float,
        end: float,
        fast: bool,
        speed: float,
        seed: int,
        balance: float,
        progress: Progress | None,
        call_cost: float = 0.0,
    ) -> None:
        self.recording = recording
        self.start, self.end, self.fast, self.speed = start, end, fast, speed
        self.seed = seed
        self.vclock = VirtualClock()
        clock = (
            SimClock.following(self.vclock.time, start)
            if fast
            else SimClock.running(start, speed=speed)
        )
        # Each call takes ``call_cost`` simulated seconds of pipe time (``ipc_seconds``, slept
        # through ``time.sleep``, which the replay routes to its clock): a bot that calls in a
        # loop without sleeping still sees time pass, as it would live.
        self.terminal = recording.terminal(
            seed=seed, clock=clock, accounts=_accounts(balance), ipc_seconds=call_cost
        )
        self._thread = threading.current_thread()
        self.sampler = _Sampler(self.terminal, start, end, progress)
        self.ended = False
        self._real_sleep = time.sleep
        if fast:
            self.vclock.on_advance = self._on_advance

    def sim_now(self) -> float:
        return self.terminal.clock.now()

    # fast mode: samples at the jumps, when everything waits ---------------------------
    def _on_advance(self, old: float, new: float) -> None:
        sampler = self.sampler
        target = self.start + new
        if target < sampler.next_at:  # most jumps: no sample due
            sampler.report(self.start + old)
            return
        while sampler.next_at <= min(target, self.end):
            # The simulated clock must read the sample's time: move the virtual one there first.
            self.vclock.now = max(self.vclock.now, sampler.next_at - self.start)
            sampler.sample(sampler.next_at)
            sampler.next_at += _SAMPLE_EVERY
        sampler.report(self.start + old)

    # the loops --------------------------------------------------------------------
    def new_loop(self) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop = (
            VirtualTimeLoop(self.vclock) if self.fast else asyncio.SelectorEventLoop()
        )
        first: list[asyncio.Task[Any]] = []

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            task = asyncio.Task(coro, loop=loop, **kwargs)
            if not first:
                first.append(task)
            return task

        loop.set_task_factory(factory)
        tries = [0]

        def finish() -> None:
            self.ended = True
            if first and not first[0].done():
                tries[0] += 1
                if tries[0] > _CANCEL_TRIES:
                    loop.stop()
                    return
                first[0].cancel()
                loop.call_later(self._loop_seconds(_CANCEL_EVERY), finish)

        remaining = max(0.0, self.end - self.sim_now())
        loop.call_later(self._loop_seconds(remaining), finish)
        if not self.fast:
            self._tick(loop)
        return loop

    def _loop_seconds(self, simulated: float) -> float:
        return simulated if self.fast else simulated / self.speed

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """Speed mode: samples and progress from a real-time timer."""
        self.sampler.due(self.sim_now())
        loop.call_later(min(_PROGRESS_EVERY, _SAMPLE_EVERY / self.speed), self._tick, loop)

    def sleep(self, seconds: float) -> None:
        """``time.sleep`` during a replay: simulated time passes, not real time.

        A synchronous bot's sleep (no event loop in the replay's thread) ends the bot at the
        replay's end; a sleep inside a call (the terminal's pipe time) only moves the clock.
        """
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        in_loop = asyncio._get_running_loop() is not None
        if in_loop and self.fast:  # a call's pipe time, on the loop's thread: the hot path
            self.vclock.advance_to(self.vclock.now + seconds)
            return
        may_end = not in_loop and threading.current_thread() is self._thread
        left = max(self.end - self.sim_now(), 0.0)
        step = min(seconds, left) if may_end else seconds
        if self.fast:
            self.vclock.advance_to(self.vclock.now + step)
        else:
            self._real_sleep(step / self.speed)
            self.sampler.due(self.sim_now())
        if may_end and seconds >= left:
            self.ended = True
            raise _ReplayEnded

    # running ----------------------------------------------------------------------
    def run_script(self, path: Path, args: list[str]) -> None:
        if not path.is_file():
            raise ReplayError(f"{path}: no such bot script")
        saved_argv, saved_path = sys.argv, list(sys.path)
        sys.argv = [str(path), *args]
        sys.path.insert(0, str(path.resolve().parent))
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise BotError(f"{path.name} exited with status {exc.code}") from None
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path

    def run_function(self, bot: Callable[[Any], Awaitable[Any]]) -> None:
        from aiomt5 import AsyncMT5Connector, MT5Settings

        async def main() -> None:
            async with AsyncMT5Connector(MT5Settings(backend="sim")) as mt5:
                await bot(mt5)

        asyncio.run(main())

    def execute(self, bot: Bot, args: list[str]) -> None:
        if callable(bot) and not inspect.iscoroutinefunction(bot):
            raise ReplayError("a bot function must be `async def bot(mt5)`")
        with (
            providing(self.terminal),
            _environment(),
            _loops(self.new_loop),
            _sleeping(self.sleep),
            _seeded_tags(self.seed),
        ):
            try:
                if callable(bot):
                    self.run_function(bot)
                else:
                    self.run_script(Path(bot), args)
            except (asyncio.CancelledError, _ReplayEnded):
                if not self.ended:
                    raise
            except RuntimeError as exc:
                if not (self.ended and "Event loop stopped" in str(exc)):
                    raise BotError(f"the bot raised {type(exc).__name__}: {exc}") from exc
            except ReplayError:
                raise
            except Exception as exc:
                raise BotError(f"the bot raised {type(exc).__name__}: {exc}") from exc


def run(
    bot: Bot,
    *,
    store: Any = None,
    data: Any = None,
    recording: Recording | None = None,
    server: str | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    fast: bool = True,
    speed: float | None = None,
    seed: int = 0,
    balance: float = 10_000.0,
    args: list[str] | tuple[str, ...] = (),
    progress: Progress | None = None,
    call_cost: float = 0.0005,
) -> ReplayResult:
    """Run ``bot`` on a recorded market and return what it did.

    Args:
        bot: A script path (run as ``__main__``, unmodified: it connects through ``MT5_*``
            settings or ``aiomt5.sim.install()``, which reach the replay's terminal), or
            ``async def bot(mt5)``, called with a connected ``AsyncMT5Connector``.
        store: A ``HistoryStore`` (or its directory) holding M1 bars.
        data: Files from ``aiomt5 rates/ticks --out`` (see ``Recording.from_files``).
        recording: A ready ``aiomt5.sim.Recording``.
        server: The trade server's series to use when the store holds several.
        start: When the bot starts (default: an hour after the first recorded bar, so it has
            some history to look back on).
        end: When the bot is stopped (default: the end of the last recorded bar).
        fast: Virtual time: the clock jumps ahead whenever the bot and the terminal are all
            waiting, so the run takes as long as the computing does.
        speed: Instead of ``fast``: simulated seconds per real second (``MT5_SIM_SPEED``).
        seed: Seed of the synthesised ticks and of the simulation.
        balance: The account's starting balance.
        args: Command-line arguments of a bot script.
        progress: Called with ``(simulated_now, start, end)`` a few times a second.
        call_cost: Simulated seconds each terminal call takes in fast mode (the real pipe
            round trip is 0.1 to 1 ms), so a bot that never sleeps still sees time pass.

    Raises:
        ReplayError: Bad arguments, an unusable recording, or the script exited with an error.
    """
    if speed is not None:
        if not (math.isfinite(speed) and speed > 0):
            raise ReplayError(f"speed must be a positive number, got {speed!r}")
        fast = False
    elif not fast:
        raise ReplayError("choose fast=True (virtual time) or a speed")
    if not 0 <= call_cost <= 1:
        raise ReplayError(f"call_cost must be within [0, 1] seconds, got {call_cost!r}")
    market = _recording(store, data, recording, server)
    first, last = market.first, market.last
    start_s = _epoch("start", start, float(min(first + 3600, last)))
    end_s = _epoch("end", end, float(last + 60))
    if not first <= start_s < end_s:
        raise ReplayError(
            f"start..end must lie within the recording ({market.describe_span()}) with start "
            f"before end; got {_stamp(start_s)} .. {_stamp(end_s)}"
        )
    replay = _Run(
        market,
        start=start_s,
        end=end_s,
        fast=fast,
        speed=float(speed) if speed is not None else 1.0,
        seed=seed,
        balance=balance,
        progress=progress,
        call_cost=call_cost if fast else 0.0,
    )
    began = time.perf_counter()
    try:
        replay.execute(bot, list(args))
    except MT5InvalidArgumentError as exc:
        raise ReplayError(str(exc)) from exc
    wall = time.perf_counter() - began
    replay.sampler.report(replay.sim_now(), force=True)
    return _collect(replay, wall, balance)


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _collect(replay: _Run, wall: float, balance: float) -> ReplayResult:
    """Deals and the final account state, read back from the terminal after the bot left."""
    terminal = replay.terminal
    connected = terminal.account_info() is not None
    if not connected:
        terminal.initialize()
    try:
        deals = deals_array(
            terminal.history_deals_get(int(replay.start) - 86_400, int(replay.end) + 86_400) or ()
        )
        account = terminal.account_info()
        replay.sampler.sample(min(replay.sim_now(), replay.end))
    finally:
        if not connected:
            terminal.shutdown()
    # The account at the start: the balance given, nothing open yet.
    first = (int(replay.start), float(balance), float(balance), 0.0)
    equity = np.array([first, *replay.sampler.rows], dtype=EQUITY_DTYPE)
    # Samples at one time (the last one taken twice) keep the later row.
    if len(equity) > 1:
        keep = np.ones(len(equity), dtype=np.bool_)
        keep[:-1] = equity["time"][1:] != equity["time"][:-1]
        equity = equity[keep]
    return ReplayResult(
        deal_rows=deals,
        equity_rows=equity,
        initial_balance=float(balance),
        final_balance=float(account.balance) if account is not None else float(balance),
        final_equity=float(account.equity) if account is not None else float(balance),
        start=replay.start,
        end=replay.end,
        simulated_until=min(replay.sim_now(), replay.end),
        wall_seconds=wall,
        mode="fast" if replay.fast else f"x{replay.speed:g}",
        symbols=tuple(replay.recording.series),
        recording=replay.recording,
        jumps=replay.vclock.jumps,
    )
