"""The blocking facade: ``MT5Connector``, ``mt5_connection`` with ``with``, ``MT5Config``."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import aiomt5
from aiomt5 import (
    AsyncMT5Connector,
    MT5ClosedError,
    MT5Config,
    MT5Connector,
    MT5Settings,
    MT5SymbolNotFoundError,
    mt5_connection,
)
from aiomt5._remote import RemoteServer
from aiomt5.sim import SimTerminal, make_module
from aiomt5.testing import sim_settings, sim_terminal

TOKEN = "test-token-" + "f00dcafe" * 4
SYNC_ONLY = {"is_connected", "get_connection_stats"}
"""Async-connector members that are plain methods (and stay plain on the facade)."""
NOT_BLOCKING = {"events", "aclose"}
"""Async-only: the event stream and the async close."""
OWN_LIFECYCLE = {"connect", "close"}
"""Facade methods written by hand: ``connect`` returns True, ``close`` also stops the loop."""


@pytest.fixture
def term() -> SimTerminal:
    return sim_terminal(5)


@pytest.fixture
def mt5(term: SimTerminal) -> Iterator[MT5Connector]:
    with MT5Connector(sim_settings(), backend=term) as connector:
        yield connector


def _portal_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "aiomt5-loop")


def test_seed_usage_runs_unchanged() -> None:
    MT5Connector.reset_instance()
    try:
        connector = MT5Connector.get_instance(sim_settings())
        assert MT5Connector.get_instance() is connector
        if connector.connect():
            symbols = connector.get_available_symbols()
        assert "EURUSD" in symbols
        assert connector.is_connected()
        assert connector.get_account_info().login > 0
        assert connector.health_check().ok
        assert connector.get_connection_stats().calls > 0
        connector.disconnect()
        assert not connector.is_connected()
    finally:
        MT5Connector.reset_instance()
    assert connector.state is aiomt5.ConnectionState.CLOSED


def test_one_process_wide_connector_across_the_async_and_blocking_apis() -> None:
    """MetaTrader5 is one session per process: both get_instance() draw from one slot."""
    MT5Connector.reset_instance()
    aiomt5.AsyncMT5Connector.reset_instance()
    blocking = MT5Connector.get_instance(sim_settings())
    try:
        with pytest.raises(aiomt5.MT5ConfigurationError, match="already a live MT5Connector"):
            aiomt5.AsyncMT5Connector.get_instance()
        aiomt5.AsyncMT5Connector.reset_instance()  # not its kind: leaves the live one alone
        assert MT5Connector.get_instance() is blocking
    finally:
        MT5Connector.reset_instance()
    assert blocking.state is aiomt5.ConnectionState.CLOSED
    later = aiomt5.AsyncMT5Connector.get_instance(sim_settings())  # the slot is free again
    try:
        with pytest.raises(aiomt5.MT5ConfigurationError, match=r"AsyncMT5Connector\.reset_inst"):
            MT5Connector.get_instance()
        assert aiomt5.AsyncMT5Connector.get_instance() is later
    finally:
        aiomt5.AsyncMT5Connector.reset_instance()
    assert MT5Connector.get_instance(sim_settings()) is not blocking
    MT5Connector.reset_instance()


def test_with_block_connects_and_closes_its_loop_thread(term: SimTerminal) -> None:
    before = _portal_threads()
    with MT5Connector(sim_settings(), backend=term) as mt5:
        assert mt5.is_connected()
        assert _portal_threads() == before + 1
        rates = mt5.get_rates("EURUSD", "H1", count=10)
        assert len(rates) == 10
    assert _portal_threads() == before
    assert mt5.state is aiomt5.ConnectionState.CLOSED
    with pytest.raises(MT5ClosedError):
        mt5.get_account_info()


def test_errors_are_the_async_cores(mt5: MT5Connector) -> None:
    with pytest.raises(MT5SymbolNotFoundError):
        mt5.get_symbol_info("NOSUCH")


def test_calls_work_from_other_threads_at_once(mt5: MT5Connector) -> None:
    results: list[Any] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(mt5.get_symbol_info("EURUSD").name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == ["EURUSD"] * 8


def test_works_where_an_event_loop_already_runs(mt5: MT5Connector) -> None:
    # As in Jupyter: the calling thread is running a loop of its own.
    async def cell() -> str:
        return mt5.find_symbol("EURUSD")

    assert asyncio.run(cell()) == "EURUSD"


def test_trading_keeps_exactly_once(mt5: MT5Connector, term: SimTerminal) -> None:
    term.faults.lose_reply("order_send")
    result = mt5.buy("EURUSD", 0.1, reconcile_timeout=5.0)
    assert result.retcode == aiomt5.TradeRetcode.DONE
    assert result.reconciled
    assert len(mt5.positions("EURUSD")) == 1
    assert term.calls["order_send"] == 1
    closed = mt5.close_position(mt5.positions("EURUSD")[0])
    assert closed.ok


def test_every_async_method_has_a_blocking_twin_with_the_same_signature() -> None:
    for name, member in inspect.getmembers(AsyncMT5Connector):
        if name.startswith("_") or name in NOT_BLOCKING or not callable(member):
            continue
        if isinstance(inspect.getattr_static(AsyncMT5Connector, name), classmethod):
            continue
        twin = getattr(MT5Connector, name, None)
        assert twin is not None, f"MT5Connector has no {name}"
        if inspect.iscoroutinefunction(member) or name.startswith("stream_"):
            expected = inspect.signature(member)
            assert inspect.signature(twin).parameters.keys() == expected.parameters.keys(), name
            if name not in OWN_LIFECYCLE:
                assert twin.__doc__ == member.__doc__, name


def test_mt5_connection_works_with_with_and_async_with(term: SimTerminal) -> None:
    with mt5_connection(sim_settings(), backend="sim") as blocking:
        assert isinstance(blocking, MT5Connector)
        assert blocking.is_connected()
    assert blocking.state is aiomt5.ConnectionState.CLOSED

    async def main() -> None:
        async with mt5_connection(sim_settings()) as connector:
            assert isinstance(connector, AsyncMT5Connector)
            assert connector.is_connected()
        assert connector.state is aiomt5.ConnectionState.CLOSED

    asyncio.run(main())


def test_mt5_config_builds_settings_from_the_seed_names() -> None:
    config = MT5Config(
        login=123,
        password="pw",
        server="Broker-Demo",
        path="C:/mt5/terminal64.exe",
        timeout=30000,
        max_retries=5,
        enable_health_check=True,
    )
    assert isinstance(config, MT5Settings)
    assert (config.login, config.server, config.timeout_ms, config.max_retries) == (
        123,
        "Broker-Demo",
        30000,
        5,
    )
    assert config.health_check is True
    assert config.password is not None
    assert config.password.get_secret_value() == "pw"
    assert "pw" not in repr(config)


def test_facade_runs_against_aiomt5_serve() -> None:
    module = make_module(sim_terminal(9))
    with RemoteServer(module, port=0, token=TOKEN) as server:
        server.start()
        settings = sim_settings(backend=server.url, remote_token=TOKEN)
        with MT5Connector(settings) as mt5:
            assert mt5.get_account_info().login > 0
            assert len(mt5.get_rates("EURUSD", "M1", count=5)) == 5
            opened = mt5.buy("EURUSD", 0.1)
            assert opened.ok
            assert [p.symbol for p in mt5.positions()] == ["EURUSD"]


def test_a_forgotten_facade_disconnects_and_stops_its_thread(term: SimTerminal) -> None:
    import gc

    before = _portal_threads()
    forgotten = MT5Connector(sim_settings(), backend=term)
    forgotten.connect()
    inner = forgotten.async_connector
    del forgotten
    gc.collect()
    assert _portal_threads() == before
    assert inner.state is aiomt5.ConnectionState.CLOSED


def test_a_notebook_can_create_use_and_close_it_inside_its_running_loop(term: SimTerminal) -> None:
    # Jupyter runs every cell on its own running loop: the whole life happens there.
    async def notebook() -> tuple[str, float]:
        mt5 = MT5Connector(sim_settings(), backend=term)
        try:
            mt5.connect()
            return mt5.find_symbol("EURUSD"), mt5.get_account_info().balance
        finally:
            mt5.close()

    symbol, balance = asyncio.run(notebook())
    assert symbol == "EURUSD"
    assert balance > 0


def test_streams_are_plain_iterators_on_the_facade() -> None:
    # A clock that moves only when the stream sleeps: the stream's own sleep moves it.
    term = sim_terminal(6)

    async def sleep(seconds: float) -> None:
        term.clock.advance(seconds)
        await asyncio.sleep(0)

    with MT5Connector(sim_settings(), backend=term) as mt5:
        history = mt5.get_rates("EURUSD", "M1", count=30, closed_only=True)
        last = datetime.fromtimestamp(int(history["time"][-1]), UTC)
        with mt5.stream_bars("EURUSD", "M1", since=last, poll_interval=30.0, sleep=sleep) as bars:
            streamed = [bar for bar, _ in zip(bars, range(5), strict=False)]
        with mt5.stream_ticks("EURUSD", poll_interval=1.0, sleep=sleep) as ticks:
            first = next(ticks)
    times = [*history["time"].tolist(), *(bar.time for bar in streamed)]
    assert all(b - a == 60 for a, b in itertools.pairwise(times))
    assert first.symbol == "EURUSD"
