"""Fault injection for the simulated terminal: seeded, scriptable, and silent unless asked.

Everything above the simulator (worker timeouts, reconnection, exactly-once trading) is tested by
making the terminal misbehave the way real terminals do: IPC send/receive failures, a broken pipe,
the trade server dropping, calls that hang, slow calls, rejected logins, and replies lost after the
terminal already acted on a request.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from aiomt5._mt5.codes import error_text

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["RANDOM_KINDS", "FaultAction", "FaultRecord", "Faults", "Hang"]

# Calls answered by the Python module itself, with no IPC: no terminal fault can reach them.
LOCAL_FUNCTIONS: Final = frozenset({"last_error", "shutdown"})
# Random faults leave the connection handshake alone unless asked: it has its own scripted faults.
_HANDSHAKE: Final = frozenset({"initialize", "login"})

RandomKind = Literal[
    "ipc_send", "ipc_recv", "broken_pipe", "call_failed", "trade_server", "hang", "slow"
]
RANDOM_KINDS: Final[tuple[RandomKind, ...]] = (
    "ipc_send",
    "ipc_recv",
    "broken_pipe",
    "call_failed",
    "trade_server",
    "hang",
    "slow",
)


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One fault that fired: which call, what kind, and the error it produced (if any)."""

    function: str
    kind: str
    code: int | None = None


@dataclass(frozen=True, slots=True)
class FaultAction:
    """What the terminal must do with one call.

    ``when`` is ``"before"`` (the call never reaches the terminal) or ``"after"`` (the terminal acts
    on it, then the reply is lost). ``close_pipe`` breaks the connection as well.
    """

    code: int
    message: str
    when: Literal["before", "after"] = "before"
    close_pipe: bool = False


class Hang:
    """A scripted hang: matching calls block in their thread until ``release()``."""

    def __init__(self, function: str, times: int | None, seconds: float | None = None) -> None:
        self.function = function
        self.remaining = times
        self.seconds = seconds
        self.entered = threading.Event()
        """Set when a call is blocked by this hang."""
        self._released = threading.Event()

    def release(self) -> None:
        """Let every call blocked by this hang (and later ones) continue."""
        self._released.set()

    @property
    def released(self) -> bool:
        """True once ``release()`` was called."""
        return self._released.is_set()

    def block(self) -> None:
        """Block the calling thread until released (or for ``seconds`` if given)."""
        self.entered.set()
        self._released.wait(self.seconds)


@dataclass(slots=True)
class _Rule:
    function: str
    action: FaultAction
    remaining: int | None

    def matches(self, function: str) -> bool:
        return self.function in ("*", function) and (self.remaining is None or self.remaining > 0)

    def consume(self) -> None:
        if self.remaining is not None:
            self.remaining -= 1


@dataclass(slots=True)
class _Random:
    rate: float
    kinds: tuple[RandomKind, ...]
    rng: random.Random
    functions: frozenset[str] | None
    hang_seconds: float
    slow_seconds: float
    outage_calls: int


@dataclass(slots=True)
class _Plan:
    """The outcome of consulting the faults for one call (computed under the faults lock)."""

    delay: float = 0.0
    hang: Hang | None = None
    action: FaultAction | None = None
    records: list[FaultRecord] = field(default_factory=list)


class Faults:
    """The fault injector of one ``SimTerminal`` (``terminal.faults``).

    Scripted faults apply to the next matching calls; ``random()`` adds seeded random faults. Call
    ``clear()`` to stop everything (blocked calls are released).
    """

    def __init__(
        self,
        *,
        on_break_pipe: Callable[[], None],
        on_trade_server: Callable[[bool], None],
    ) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._hangs: list[Hang] = []
        self._latency: dict[str, float | Callable[[random.Random], float]] = {}
        self._latency_rng = random.Random(0)
        self._random: _Random | None = None
        self._reject_login: int | None = None
        self._outage_left: int | None = None
        self._on_break_pipe = on_break_pipe
        self._on_trade_server = on_trade_server
        self.fired: list[FaultRecord] = []
        """Every fault that fired, in order."""

    # ------------------------------------------------------------------ scripting
    def fail(
        self,
        function: str,
        code: int,
        message: str | None = None,
        *,
        times: int | None = 1,
        after_execution: bool = False,
    ) -> None:
        """Make the next ``times`` calls of ``function`` (``"*"``: any) fail with ``code``.

        ``message`` defaults to MetaTrader5's text for the code. With ``after_execution`` the
        terminal carries the call out before the reply is lost (for ``order_send``: the order is
        placed, the caller sees a failure).
        """
        action = FaultAction(
            code, message or error_text(code), "after" if after_execution else "before"
        )
        with self._lock:
            self._rules.append(_Rule(function, action, times))

    def lose_reply(self, function: str, *, times: int | None = 1, code: int = -10002) -> None:
        """The call executes but its reply is lost (``-10002 IPC recv failed`` by default)."""
        self.fail(function, code, times=times, after_execution=True)

    def break_pipe(self) -> None:
        """Break the connection now: every call fails ``-10004`` until ``initialize()`` succeeds."""
        self._record(FaultRecord("*", "broken_pipe", -10004))
        self._on_break_pipe()

    def break_pipe_on(
        self, function: str, *, times: int | None = 1, after_execution: bool = False
    ) -> None:
        """The next ``function`` call fails ``-10002`` and the pipe closes.

        With ``after_execution`` the terminal acted on the call first ("terminal restarts after
        execution").
        """
        action = FaultAction(
            -10002,
            error_text(-10002),
            "after" if after_execution else "before",
            close_pipe=True,
        )
        with self._lock:
            self._rules.append(_Rule(function, action, times))

    def drop_trade_server(self) -> None:
        """Disconnect the terminal from the trade server until ``restore_trade_server()``."""
        self._record(FaultRecord("*", "trade_server"))
        with self._lock:
            self._outage_left = None
        self._on_trade_server(False)

    def restore_trade_server(self) -> None:
        """Reconnect the terminal to the trade server."""
        with self._lock:
            self._outage_left = None
        self._on_trade_server(True)

    def hang(self, function: str, *, times: int | None = 1, seconds: float | None = None) -> Hang:
        """Block the next ``times`` calls of ``function`` until the returned ``Hang`` is released.

        The call then proceeds normally. ``seconds`` releases it by itself after that long.
        """
        hang = Hang(function, times, seconds)
        with self._lock:
            self._hangs.append(hang)
        return hang

    def release_all(self) -> None:
        """Release every scripted hang."""
        with self._lock:
            hangs, self._hangs = self._hangs, []
        for hang in hangs:
            hang.release()

    def latency(
        self, function: str = "*", seconds: float | Callable[[random.Random], float] = 0.0
    ) -> None:
        """Add latency (a real sleep in the calling thread) to calls of ``function``.

        ``seconds`` may be a callable drawing from a seeded ``random.Random`` for a distribution,
        e.g. ``lambda rng: rng.lognormvariate(-7, 0.5)``. ``0`` removes it.
        """
        with self._lock:
            if seconds == 0:
                self._latency.pop(function, None)
            else:
                self._latency[function] = seconds

    def reject_login(self, code: int = -6) -> None:
        """Make authorization fail (``-6``; ``-7`` for the OTP/certificate case) until cleared."""
        with self._lock:
            self._reject_login = code

    def random(
        self,
        rate: float,
        *,
        seed: int = 0,
        kinds: Iterable[RandomKind] = RANDOM_KINDS,
        functions: Iterable[str] | None = None,
        hang_seconds: float = 0.05,
        slow_seconds: float = 0.005,
        outage_calls: int = 20,
    ) -> None:
        """Inject random faults in ``rate`` of the calls, reproducibly for ``seed``.

        Args:
            rate: Probability in [0, 1] that a call faults.
            seed: Seed of the fault sequence.
            kinds: Which faults to draw from (uniformly).
            functions: Which API functions may fault (default: all but the handshake and the
                module-local ``last_error``/``shutdown``).
            hang_seconds: How long a random hang blocks its call (real time).
            slow_seconds: How long a random slow call sleeps (real time).
            outage_calls: How many later calls a random trade-server outage lasts.
        """
        if not 0.0 <= rate <= 1.0:
            msg = f"rate must be within [0, 1], got {rate}"
            raise ValueError(msg)
        chosen = tuple(kinds)
        unknown = set(chosen) - set(RANDOM_KINDS)
        if unknown or not chosen:
            msg = f"kinds must be a non-empty subset of {RANDOM_KINDS}, got {chosen}"
            raise ValueError(msg)
        with self._lock:
            self._random = _Random(
                rate,
                chosen,
                random.Random(seed),
                frozenset(functions) if functions is not None else None,
                hang_seconds,
                slow_seconds,
                outage_calls,
            )

    def clear(self) -> None:
        """Stop every fault, release blocked calls and restore the trade server."""
        with self._lock:
            self._rules.clear()
            self._latency.clear()
            self._random = None
            self._reject_login = None
            self._outage_left = None
        self.release_all()
        self._on_trade_server(True)

    # ------------------------------------------------------------------ consulted by the terminal
    @property
    def login_rejection(self) -> int | None:
        """The code authorization fails with, or None."""
        return self._reject_login

    def _record(self, record: FaultRecord) -> None:
        with self._lock:
            self.fired.append(record)

    def plan(self, function: str) -> _Plan:
        """Decide the faults of one call (no blocking here; the terminal applies the plan)."""
        plan = _Plan()
        if function in LOCAL_FUNCTIONS:
            return plan
        restore = False
        with self._lock:
            if self._outage_left is not None:
                self._outage_left -= 1
                if self._outage_left <= 0:
                    self._outage_left = None
                    restore = True
            lat = self._latency.get(function, self._latency.get("*"))
            if lat is not None:
                plan.delay = lat(self._latency_rng) if callable(lat) else lat
            for hang in self._hangs:
                if hang.function in ("*", function) and (
                    hang.remaining is None or hang.remaining > 0
                ):
                    if hang.remaining is not None:
                        hang.remaining -= 1
                    plan.hang = hang
                    plan.records.append(FaultRecord(function, "hang"))
                    break
            for rule in self._rules:
                if rule.matches(function):
                    rule.consume()
                    plan.action = rule.action
                    kind = "broken_pipe" if rule.action.close_pipe else "fail"
                    plan.records.append(FaultRecord(function, kind, rule.action.code))
                    break
            self._rules = [r for r in self._rules if r.remaining is None or r.remaining > 0]
            if plan.action is None and plan.hang is None:
                self._draw_random(function, plan)
            self.fired.extend(plan.records)
        if restore:
            self._on_trade_server(True)
        return plan

    def _draw_random(self, function: str, plan: _Plan) -> None:
        rnd = self._random
        if rnd is None:
            return
        allowed = rnd.functions if rnd.functions is not None else None
        if (allowed is not None and function not in allowed) or (
            allowed is None and function in _HANDSHAKE
        ):
            return
        if rnd.rng.random() >= rnd.rate:
            return
        kind = rnd.rng.choice(rnd.kinds)
        code: int | None = None
        if kind == "ipc_send":
            code = -10001
            plan.action = FaultAction(code, error_text(code))
        elif kind == "ipc_recv":
            code = -10002
            plan.action = FaultAction(code, error_text(code), "after")
        elif kind == "broken_pipe":
            code = -10002
            plan.action = FaultAction(code, error_text(code), close_pipe=True)
        elif kind == "call_failed":
            code = -1
            plan.action = FaultAction(code, error_text(code))
        elif kind == "trade_server":
            self._outage_left = rnd.outage_calls
            self._on_trade_server(False)
        elif kind == "hang":
            plan.hang = Hang(function, 1, rnd.hang_seconds)
        else:  # slow
            plan.delay += rnd.slow_seconds
        plan.records.append(FaultRecord(function, kind, code))

    @staticmethod
    def apply_delays(plan: _Plan) -> None:
        """Block/sleep as planned, in the calling thread (outside every terminal lock)."""
        if plan.hang is not None:
            plan.hang.block()
        if plan.delay > 0:
            time.sleep(plan.delay)
