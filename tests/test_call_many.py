"""``call_many``: a batch of read calls as one worker job (and one round trip to a child)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from aiomt5 import AsyncMT5Connector
from aiomt5._blocking import MT5Connector
from aiomt5._core._errors import (
    REMOTE_REPLY_TOO_LARGE,
    MT5ConnectionError,
    MT5InvalidArgumentError,
    MT5NotConnectedError,
    MT5ReplyTooLargeError,
    MT5SymbolNotFoundError,
    MT5TimeoutError,
)
from aiomt5._core._types import ConnectionState
from aiomt5._remote._client import RemoteTerminal
from aiomt5._remote._isolation import ChildTerminal
from aiomt5._remote._wire import (
    BATCH,
    MAX_BATCH_CALLS,
    MAX_REPLY_BUFFERS,
    serve_batch,
    serve_call,
)
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal

SIM_START = "2026-03-02T10:00:00Z"  # a Monday: markets open
SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]


def sim_settings(**overrides: Any) -> MT5Settings:
    fields: dict[str, Any] = {"backend": "sim", "testing": True, "call_timeout": 5.0}
    fields.update(overrides)
    return MT5Settings(_env_file=None, **fields)


@pytest.fixture
def term() -> SimTerminal:
    return SimTerminal(seed=1, clock=SimClock.fixed(SIM_START))


@pytest.fixture
async def mt5(term: SimTerminal) -> AsyncIterator[AsyncMT5Connector]:
    connector = AsyncMT5Connector(sim_settings(), backend=term)
    await connector.connect()
    yield connector
    term.faults.release_all()
    await connector.close()


async def wait_entered(hang: Any) -> None:
    assert await asyncio.to_thread(hang.entered.wait, 10)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)


# ---------------------------------------------------------------- results and errors


async def test_results_equal_single_calls_in_order(mt5: AsyncMT5Connector) -> None:
    batch = await mt5.call_many("symbol_info_tick", SYMBOLS)
    singles = [await mt5.call("symbol_info_tick", symbol) for symbol in SYMBOLS]
    assert batch == singles
    assert [tick.bid for tick in batch] == [tick.bid for tick in singles]


async def test_tuples_are_positional_arguments_and_mappings_keywords(
    mt5: AsyncMT5Connector,
) -> None:
    rates = await mt5.call_many("copy_rates_from_pos", [(symbol, 1, 0, 20) for symbol in SYMBOLS])
    for symbol, got in zip(SYMBOLS, rates, strict=True):
        assert same(got, await mt5.call("copy_rates_from_pos", symbol, 1, 0, 20))
    groups = await mt5.call_many("symbols_get", [{"group": "EUR*"}, {"group": "GBP*"}])
    assert groups[0] == await mt5.call("symbols_get", group="EUR*")
    assert all(s.name.startswith("GBP") for s in groups[1])


async def test_no_calls_is_an_empty_list(mt5: AsyncMT5Connector, term: SimTerminal) -> None:
    before = term.calls["symbol_info_tick"]
    assert await mt5.call_many("symbol_info_tick", []) == []
    assert await mt5.call_many("symbol_info_tick", iter(())) == []
    assert term.calls["symbol_info_tick"] == before


async def test_first_failure_is_raised_typed_and_the_rest_are_not_made(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    before = term.calls["symbol_info"]
    with pytest.raises(MT5SymbolNotFoundError) as info:
        await mt5.call_many("symbol_info", ["EURUSD", "NOPE", "GBPUSD", "NADA"])
    assert info.value.args_summary == "symbol_info('NOPE')"
    assert term.calls["symbol_info"] - before == 2


async def test_return_exceptions_puts_each_typed_error_in_place(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    results = await mt5.call_many(
        "symbol_info", ["EURUSD", "NOPE", "GBPUSD"], return_exceptions=True
    )
    assert results[0].name == "EURUSD"
    assert isinstance(results[1], MT5SymbolNotFoundError)
    assert (results[1].code, results[1].function) == (-4, "symbol_info")
    assert results[2].name == "GBPUSD"
    # The same error call() raises, last_error() read right after that call.
    term.faults.fail("symbol_info_tick", -10001)
    results = await mt5.call_many("symbol_info_tick", SYMBOLS, return_exceptions=True)
    assert isinstance(results[0], MT5ConnectionError)
    assert results[0].code == -10001
    assert all(tick.bid > 0 for tick in results[1:])


async def test_write_and_lifecycle_functions_are_refused(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    request = {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0}
    for function, arguments in [
        ("order_send", [(request,)]),
        ("symbol_select", [("EURUSD", True)]),
        ("order_check", [(request,)]),
    ]:
        with pytest.raises(MT5InvalidArgumentError, match="trading API"):
            await mt5.call_many(function, arguments)
    with pytest.raises(MT5InvalidArgumentError, match="connect"):
        await mt5.call_many("initialize", [()])
    assert term.calls["order_send"] == 0


async def test_a_string_or_a_non_iterable_is_refused(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="iterable of calls"):
        await mt5.call_many("symbol_info_tick", "EURUSD")
    with pytest.raises(MT5InvalidArgumentError, match="iterable of calls"):
        await mt5.call_many("symbol_info_tick", 42)  # type: ignore[arg-type]
    with pytest.raises(MT5InvalidArgumentError, match="symbol_info_tick"):
        await mt5.call_many("symbol_info_tik", ["EURUSD"])


async def test_before_connect_it_raises_not_connected(term: SimTerminal) -> None:
    connector = AsyncMT5Connector(sim_settings(wait_for_reconnect=False), backend=term)
    with pytest.raises(MT5NotConnectedError):
        await connector.call_many("symbol_info_tick", SYMBOLS)


# ---------------------------------------------------------------- one job: timeout, cancel, stats


async def test_a_batch_is_one_worker_job(mt5: AsyncMT5Connector, term: SimTerminal) -> None:
    hang = term.faults.hang("terminal_info")
    blocker = asyncio.create_task(mt5.get_terminal_info())
    await wait_entered(hang)
    batch = asyncio.create_task(mt5.call_many("symbol_info_tick", SYMBOLS * 25))
    await asyncio.sleep(0)
    stats = mt5.get_connection_stats()
    assert stats.queued == 1  # a hundred calls, one place in the queue
    hang.release()
    await blocker
    assert len(await batch) == 100


async def test_a_hung_call_times_the_whole_batch_out_like_call(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    hang = term.faults.hang("symbol_info_tick")
    with pytest.raises(MT5TimeoutError, match="abandoned") as info:
        await mt5.call_many("symbol_info_tick", SYMBOLS, timeout=0.2)
    assert "4 x symbol_info_tick" in info.value.args_summary
    hang.release()
    stats = mt5.get_connection_stats()
    assert (stats.timeouts, stats.abandoned, stats.outcome_unknown) == (1, 1, 0)
    assert len(await mt5.call_many("symbol_info_tick", SYMBOLS)) == 4  # still works


async def test_a_batch_given_up_while_queued_never_runs(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    hang = term.faults.hang("terminal_info")
    blocker = asyncio.create_task(mt5.get_terminal_info())
    await wait_entered(hang)
    before = term.calls["symbol_info_tick"]
    cancelled = asyncio.create_task(mt5.call_many("symbol_info_tick", SYMBOLS))
    with pytest.raises(MT5TimeoutError, match="never ran"):
        await mt5.call_many("symbol_info_tick", SYMBOLS, timeout=0.2)
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    hang.release()
    await blocker
    await mt5.get_terminal_info()  # FIFO: everything queued before has been handled
    assert term.calls["symbol_info_tick"] == before


async def test_stats_count_every_call_of_a_batch(mt5: AsyncMT5Connector) -> None:
    before = mt5.get_connection_stats()
    await mt5.call_many("symbol_info_tick", SYMBOLS * 10)
    await mt5.call_many("symbol_info", ["EURUSD", "NOPE", "NADA"], return_exceptions=True)
    with pytest.raises(MT5SymbolNotFoundError):
        await mt5.call_many("symbol_info", ["EURUSD", "NOPE", "NADA"])
    after = mt5.get_connection_stats()
    # 40 + (1 + 2 failed) + (1 + 1 failed: it stops at the first)
    assert after.calls - before.calls == 40 + 3 + 2
    assert after.failures - before.failures == 3
    assert after.last_error is not None
    assert "NOPE" in after.last_error


async def test_a_broken_pipe_in_a_batch_reconnects_and_batches_wait_for_it(
    term: SimTerminal,
) -> None:
    async with AsyncMT5Connector(sim_settings(health_check=False), backend=term) as mt5:
        hang = term.faults.hang("initialize")
        term.faults.break_pipe()
        results = await mt5.call_many("symbol_info_tick", SYMBOLS, return_exceptions=True)
        assert all(isinstance(r, MT5NotConnectedError) for r in results)
        await wait_entered(hang)  # each failure reached the supervisor: it reconnects
        assert mt5.state is ConnectionState.RECONNECTING
        waiting = asyncio.create_task(mt5.call_many("symbol_info_tick", SYMBOLS, timeout=5))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not waiting.done()
        hang.release()
        assert len(await waiting) == 4


def test_the_blocking_facade_has_it(term: SimTerminal) -> None:
    with MT5Connector(sim_settings(), backend=term) as mt5:
        mt5.connect()
        ticks = mt5.call_many("symbol_info_tick", SYMBOLS)
        assert [tick.bid for tick in ticks] == [
            mt5.call("symbol_info_tick", symbol).bid for symbol in SYMBOLS
        ]
        with pytest.raises(MT5InvalidArgumentError):
            mt5.call_many("order_send", [()])


# ---------------------------------------------------------------- through a child process


class Counting:
    """Counts the requests a child's transport sends (batches by their first item)."""

    def __init__(self, backend: ChildTerminal) -> None:
        self.requests: list[str] = []
        transport = backend._transport
        call = transport.call

        def counted(name: str, args: Any, kwargs: Any) -> Any:
            self.requests.append(name)
            return call(name, args, kwargs)

        transport.call = counted  # type: ignore[method-assign]


@pytest.fixture
async def child() -> AsyncIterator[AsyncMT5Connector]:
    settings = sim_settings(
        isolation="process", isolation_hard_limit=30.0, sim_seed=1, sim_start=SIM_START
    )
    async with AsyncMT5Connector(settings) as connector:
        yield connector


async def test_a_batch_crosses_to_the_child_in_one_round_trip(
    child: AsyncMT5Connector,
) -> None:
    counting = Counting(child.backend)
    symbols = SYMBOLS * 50
    batch = await child.call_many("symbol_info", symbols)
    assert counting.requests == [BATCH]
    counting.requests.clear()
    singles = [await child.call("symbol_info", symbol) for symbol in SYMBOLS]
    # Prices move with the child's clock; the rest of each struct is the same.
    assert [(s.name, s.digits, s.path) for s in batch] == [
        (s.name, s.digits, s.path) for s in singles
    ] * 50
    assert len(counting.requests) == 4


async def test_child_batch_errors_are_typed_per_call(child: AsyncMT5Connector) -> None:
    results = await child.call_many(
        "symbol_info", ["EURUSD", "NOPE", "GBPUSD"], return_exceptions=True
    )
    assert isinstance(results[1], MT5SymbolNotFoundError)
    assert results[1].code == -4
    assert (results[0].name, results[2].name) == ("EURUSD", "GBPUSD")
    with pytest.raises(MT5SymbolNotFoundError):
        await child.call_many("symbol_info", ["EURUSD", "NOPE"])


async def test_child_batch_of_arrays_splits_at_the_reply_buffer_limit(
    child: AsyncMT5Connector,
) -> None:
    counting = Counting(child.backend)
    calls = [(symbol, 1, 0, 5 + i) for i in range(MAX_REPLY_BUFFERS + 6) for symbol in ["EURUSD"]]
    rates = await child.call_many("copy_rates_from_pos", calls)
    assert counting.requests == [BATCH, BATCH]  # 64 arrays, then the other 6
    assert [len(r) for r in rates] == [5 + i for i in range(MAX_REPLY_BUFFERS + 6)]
    assert same(rates[-1], await child.call("copy_rates_from_pos", *calls[-1]))


async def test_a_long_child_batch_goes_in_requests_of_at_most_max_batch_calls(
    child: AsyncMT5Connector,
) -> None:
    counting = Counting(child.backend)
    ticks = await child.call_many("symbol_info_tick", ["EURUSD"] * (MAX_BATCH_CALLS + 1))
    assert counting.requests == [BATCH, BATCH]
    assert len(ticks) == MAX_BATCH_CALLS + 1


async def test_a_hung_child_batch_times_out_and_the_child_keeps_serving(
    child: AsyncMT5Connector,
) -> None:
    backend = child.backend
    hang = backend.faults.hang("symbol_info_tick", seconds=None)
    with pytest.raises(MT5TimeoutError, match="abandoned"):
        await child.call_many("symbol_info_tick", SYMBOLS, timeout=0.05)
    hang.release()
    assert len(await child.call_many("symbol_info_tick", SYMBOLS)) == 4


# ---------------------------------------------------------------- the server half


class Backend:
    """A MetaTrader5-shaped stand-in for ``serve_batch``: arrays of a given size."""

    def __init__(self) -> None:
        self.calls = 0

    def copy_rates_from_pos(self, symbol: str, timeframe: int, start: int, count: int) -> Any:
        self.calls += 1
        return np.zeros(count, dtype=[("time", "<i8")])

    def last_error(self) -> tuple[int, str]:
        return (1, "Success")


@pytest.fixture
def lock() -> Any:
    return threading.Lock()


def test_serve_batch_refuses_a_malformed_or_oversized_batch(lock: Any) -> None:
    backend = Backend()
    for calls in ([], "x", [[("t", ()), ("d", ())]] * (MAX_BATCH_CALLS + 1)):
        reply = serve_batch(backend, lock, "copy_rates_from_pos", calls, [])
        assert reply[:2] == ("raise", "ValueError")
    reply = serve_batch(backend, lock, "copy_rates_from_pos", [["bad"]], [])
    assert reply[0] == "many"
    assert reply[1][0][:2] == ("raise", "TypeError")
    assert backend.calls == 0


def test_serve_batch_stops_before_a_reply_too_large(lock: Any) -> None:
    backend = Backend()
    call = [("t", ("EURUSD", 1, 0, 100)), ("d", ())]
    buffers: list[Any] = []
    reply = serve_batch(
        backend, lock, "copy_rates_from_pos", [call] * 5, buffers, lambda size: size > 2000 or None
    )
    assert reply[0] == "many"
    assert len(reply[1]) == 2  # 800 bytes each: a third would pass 2000
    assert len(buffers) == 2
    # A first call too large alone is still answered (the refusal is the server's own).
    reply = serve_batch(backend, lock, "copy_rates_from_pos", [call], [], lambda size: True)
    assert len(reply[1]) == 1


class FakeLink:
    """A transport answering in-process with the server half (``serve_call``/``serve_batch``).

    ``batches=False`` plays a server that predates batches; ``refuse`` answers every batch
    with one reply standing for all its calls (a too-large refusal).
    """

    def __init__(self, term: SimTerminal, *, batches: bool = True, refuse: Any = None) -> None:
        self.term = term
        self.batches = batches
        self.refuse = refuse
        self.requests: list[str] = []
        self.is_open = False
        self.lock = threading.Lock()

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def call(self, name: str, args: Any, kwargs: Any) -> tuple[Any, list[Any]]:
        self.requests.append(name)
        buffers: list[Any] = []
        if name == BATCH and self.refuse is not None:
            return self.refuse, []
        if name == BATCH and self.batches:
            reply = serve_batch(self.term, self.lock, args, kwargs, buffers)
        else:
            reply = serve_call(self.term, name, args, kwargs, buffers)
        return reply, [bytearray(buffer) for buffer in buffers]


async def remote(link: FakeLink) -> AsyncMT5Connector:
    connector = AsyncMT5Connector(sim_settings(), backend=RemoteTerminal(link, "fake"))
    await connector.connect()
    return connector


async def test_a_server_without_batches_gets_the_calls_one_by_one(term: SimTerminal) -> None:
    link = FakeLink(term, batches=False)
    mt5 = await remote(link)
    try:
        link.requests.clear()
        rates = await mt5.call_many("copy_rates_from_pos", [(s, 1, 0, 10) for s in SYMBOLS])
        assert link.requests == [BATCH, *["copy_rates_from_pos"] * 4]
        assert same(rates[3], await mt5.call("copy_rates_from_pos", "XAUUSD", 1, 0, 10))
        link.requests.clear()
        await mt5.call_many("symbol_info_tick", SYMBOLS)
        assert link.requests == ["symbol_info_tick"] * 4  # remembered: no batch tried again
    finally:
        await mt5.close()


async def test_a_remote_batch_replays_each_calls_result_and_last_error(term: SimTerminal) -> None:
    link = FakeLink(term)
    mt5 = await remote(link)
    try:
        link.requests.clear()
        results = await mt5.call_many(
            "symbol_info", ["EURUSD", "NOPE", "GBPUSD"], return_exceptions=True
        )
        assert link.requests == [BATCH]
        assert results[0] == await mt5.call("symbol_info", "EURUSD")
        assert isinstance(results[1], MT5SymbolNotFoundError)
        assert results[1].code == -4
    finally:
        await mt5.close()


async def test_one_reply_for_a_batch_fails_every_call_with_its_error(term: SimTerminal) -> None:
    refusal = ("ok", None, (REMOTE_REPLY_TOO_LARGE, "reply too large: 2000000000 bytes"))
    link = FakeLink(term, refuse=refusal)
    mt5 = await remote(link)
    try:
        results = await mt5.call_many("symbol_info_tick", SYMBOLS, return_exceptions=True)
        assert all(isinstance(r, MT5ReplyTooLargeError) for r in results)
        assert (await mt5.call("symbol_info_tick", "EURUSD")).bid > 0
    finally:
        await mt5.close()


# ---------------------------------------------------------------- the library's own scans


async def test_a_tick_stream_polls_its_symbols_as_one_batch(
    mt5: AsyncMT5Connector, term: SimTerminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    singles: list[str] = []
    call_many, call = mt5.call_many, mt5.call

    async def counted_many(function: str, arguments: Any, **kwargs: Any) -> Any:
        arguments = list(arguments)
        batches.append(len(arguments))
        return await call_many(function, arguments, **kwargs)

    async def counted(function: str, *args: Any, **kwargs: Any) -> Any:
        singles.append(function)
        return await call(function, *args, **kwargs)

    monkeypatch.setattr(mt5, "call_many", counted_many)
    monkeypatch.setattr(mt5, "call", counted)

    async def sleep(seconds: float) -> None:
        term.clock.advance(seconds)

    seen = 0
    async with mt5.stream_ticks(*SYMBOLS, poll_interval=1.0, sleep=sleep) as stream:
        async for _tick in stream:
            seen += 1
            if seen == 50:
                break
    assert batches
    assert set(batches) == {len(SYMBOLS)}  # every poll: one batch of all four symbols
    assert "copy_ticks_from" not in singles
