"""One deadline per public operation: a hang at ANY underlying call fails within the timeout.

For every public method, the calls it makes are first recorded on the simulator; then, for each
of them in turn, a fresh connector runs the method with that call hanging. The method must fail
with a typed error (``MT5TimeoutError``, or ``MT5OutcomeUnknownError`` for a write that started)
within its ``timeout`` plus ``MARGIN`` (the documented 50 ms), measured from the method's start.
(``health_check`` never raises: it reports ``ok=False`` within the same bound.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aiomt5 import (
    AsyncMT5Connector,
    HealthReport,
    MT5OutcomeUnknownError,
    MT5Settings,
    MT5TimeoutError,
)
from aiomt5._market._frames import resolve_engine
from aiomt5.sim import SimClock, SimTerminal

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday: FX trades
TIMEOUT = 0.3
MARGIN = 0.05  # the documented bound past the timeout
GUARD = 30.0
# Called by connect/disconnect themselves, not by the operations under test.
_LIFECYCLE = frozenset({"initialize", "login", "shutdown", "last_error"})

Operation = Callable[[AsyncMT5Connector], Awaitable[Any]]

BUY = {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0}
OPERATIONS: dict[str, Operation] = {
    "call": lambda m: m.call("symbol_info_tick", "EURUSD", timeout=TIMEOUT),
    "get_terminal_info": lambda m: m.get_terminal_info(timeout=TIMEOUT),
    "get_account_info": lambda m: m.get_account_info(timeout=TIMEOUT),
    "get_symbol_info": lambda m: m.get_symbol_info("EURUSD", timeout=TIMEOUT),
    "get_available_symbols": lambda m: m.get_available_symbols(timeout=TIMEOUT),
    "find_symbol": lambda m: m.find_symbol("EURUSD", timeout=TIMEOUT),
    # Not found by name: the symbol list is read too (the answer is MT5SymbolNotFoundError).
    "find_symbol (unknown)": lambda m: m.find_symbol("EURUSD.x", timeout=TIMEOUT),
    "get_rates (count)": lambda m: m.get_rates("EURUSD", "M1", count=50, timeout=TIMEOUT),
    "get_rates (range)": lambda m: m.get_rates(
        "EURUSD", "M1", NOW - timedelta(hours=1), NOW, timeout=TIMEOUT
    ),
    "get_ticks": lambda m: m.get_ticks(
        "EURUSD", NOW - timedelta(minutes=5), count=100, timeout=TIMEOUT
    ),
    "get_rates_frame": lambda m: m.get_rates_frame("EURUSD", "M1", count=50, timeout=TIMEOUT),
    "get_ticks_frame": lambda m: m.get_ticks_frame(
        "EURUSD", NOW - timedelta(minutes=5), count=100, timeout=TIMEOUT
    ),
    "health_check": lambda m: m.health_check(timeout=TIMEOUT),
    "positions": lambda m: m.positions(timeout=TIMEOUT),
    "orders": lambda m: m.orders(timeout=TIMEOUT),
    "history_orders": lambda m: m.history_orders(NOW - timedelta(days=1), NOW, timeout=TIMEOUT),
    "history_deals": lambda m: m.history_deals(NOW - timedelta(days=1), NOW, timeout=TIMEOUT),
    "order_check": lambda m: m.order_check(BUY, timeout=TIMEOUT),
    "order_send": lambda m: m.order_send(BUY, exactly_once=False, timeout=TIMEOUT),
}


class Hanging:
    """The simulator, with the ``hang_at``-th call (counted once ``armed``) blocking."""

    def __init__(self, term: SimTerminal, hang_at: int | None, delay: float = 0.0) -> None:
        self._term = term
        self.hang_at = hang_at
        self.delay = delay
        self.armed = False
        self.calls: list[str] = []
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._term, name)
        if not callable(attr) or name in _LIFECYCLE:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.armed:
                self.calls.append(name)
                if len(self.calls) == self.hang_at:
                    self.release.wait(GUARD)
                elif self.delay:
                    self.release.wait(self.delay)  # a slow terminal
            return attr(*args, **kwargs)

        return call


def settings() -> MT5Settings:
    return MT5Settings(
        _env_file=None, backend="sim", testing=True, health_check=False, call_timeout=5.0
    )


async def run(
    operation: Operation, hang_at: int | None, delay: float = 0.0
) -> tuple[Hanging, Any, float]:
    term = SimTerminal(seed=3, clock=SimClock.fixed(NOW))
    backend = Hanging(term, hang_at, delay)
    connector = AsyncMT5Connector(settings(), backend=backend)
    await connector.connect()
    term.symbols_get()  # the simulator builds its symbol list lazily (slow once): not timed
    resolve_engine(None)  # nor the first import of pandas
    try:
        backend.armed = True
        started = time.monotonic()
        try:
            outcome: Any = await operation(connector)
        except Exception as exc:
            outcome = exc
        elapsed = time.monotonic() - started
        backend.armed = False
    finally:
        backend.release.set()
        await connector.close()
    return backend, outcome, elapsed


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_a_hang_at_any_underlying_call_fails_typed_within_the_timeout(name: str) -> None:
    operation = OPERATIONS[name]
    recorded, outcome, _ = await run(operation, hang_at=None)
    assert not isinstance(outcome, MT5TimeoutError | MT5OutcomeUnknownError), outcome
    assert recorded.calls, f"{name} made no call"
    for index, function in enumerate(recorded.calls, start=1):
        hung, outcome, elapsed = await run(operation, hang_at=index)
        assert hung.calls[index - 1] == function  # the same call sequence, hung at `function`
        where = f"{name}: hang at call {index} ({function})"
        if isinstance(outcome, HealthReport):
            assert not outcome.ok, where
        else:
            assert isinstance(outcome, MT5TimeoutError | MT5OutcomeUnknownError), (where, outcome)
        assert elapsed <= TIMEOUT + MARGIN, (where, elapsed)


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_a_slow_terminal_never_stretches_an_operation_past_its_timeout(name: str) -> None:
    """Each call takes 40% of the timeout: operations of three calls or more must fail in time
    (each call's own timeout would let them run on), shorter ones succeed."""
    operation = OPERATIONS[name]
    delay = 0.4 * TIMEOUT
    recorded, outcome, elapsed = await run(operation, hang_at=None, delay=delay)
    assert elapsed <= TIMEOUT + MARGIN, (name, elapsed)
    if len(recorded.calls) * delay > TIMEOUT + MARGIN:
        assert isinstance(outcome, MT5TimeoutError | MT5OutcomeUnknownError), (name, outcome)
