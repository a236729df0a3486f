"""Type-checked usage of the public API (checked by mypy, never executed)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

import aiomt5
import aiomt5.logging


async def connect_and_read() -> None:
    settings = aiomt5.MT5Settings(backend="sim", call_timeout=5.0, max_retries=None)
    connector = aiomt5.AsyncMT5Connector(settings)
    async with connector as mt5:
        state: aiomt5.ConnectionState = mt5.state
        connected: bool = mt5.is_connected()
        terminal = await mt5.get_terminal_info(timeout=None)
        ping = terminal.ping_last
        account = await mt5.get_account_info(timeout=aiomt5.USE_DEFAULT)
        balance = account.balance
        names: list[str] = await mt5.get_available_symbols("EUR*")
        symbol: str = await mt5.find_symbol("EURUSD")
        info = await mt5.get_symbol_info(symbol, timeout=2.5)
        latest: npt.NDArray[np.void] = await mt5.get_rates(symbol, aiomt5.Timeframe.H1, count=10)
        day = await mt5.get_rates(
            symbol,
            "M5",
            datetime(2026, 3, 2, tzinfo=UTC),
            datetime(2026, 3, 3, tzinfo=UTC),
        )
        older = await mt5.get_rates(symbol, 16385, start_pos=10, count=5)
        tick = await mt5.call("symbol_info_tick", symbol, timeout=1.0)
        report: aiomt5.HealthReport = await mt5.health_check()
        ok: bool = report.ok
        stats: aiomt5.ConnectionStats = mt5.get_connection_stats()
        p99: float | None = stats.latency_p99_ms
        print(state, connected, ping, balance, names, info, latest, day, older, tick, ok, p99)

        await mt5.get_rates(symbol, 1.5, count=1)  # type: ignore[arg-type]
        await mt5.call("terminal_info", timeout="soon")  # type: ignore[arg-type]


async def helpers() -> None:
    async with aiomt5.mt5_connection(backend="sim", call_timeout=None) as mt5:
        await mt5.disconnect()
        await mt5.connect()
    instance = aiomt5.AsyncMT5Connector.get_instance()
    aiomt5.AsyncMT5Connector.reset_instance()
    print(instance)

    def on_event(event: aiomt5.ConnectorEvent) -> None:
        if isinstance(event, aiomt5.LateResult):
            print(event.function, event.result, event.error)
        elif isinstance(event, aiomt5.StateChanged):
            print(event.old, event.new)

    connector = aiomt5.AsyncMT5Connector(event_hooks=[on_event])
    connector.add_event_hook(on_event)
    timeframe: aiomt5.Timeframe = aiomt5.Timeframe.parse("h4")
    seconds: int = timeframe.seconds
    with aiomt5.set_testing(True):
        testing: bool = aiomt5.is_testing()
    aiomt5.logging.configure(log_dir="logs")
    aiomt5.logging.unconfigure()
    print(seconds, testing)


def errors(exc: Exception) -> None:
    if isinstance(exc, aiomt5.MT5TradeError):
        retcode: int = exc.retcode
        name: str = exc.retcode_name
        print(retcode, name, exc.comment, exc.request)
    elif isinstance(exc, aiomt5.MT5SymbolNotFoundError):
        candidates: tuple[str, ...] = exc.candidates
        print(candidates)
    elif isinstance(exc, aiomt5.MT5Error):
        code: int | None = exc.code
        function: str | None = exc.function
        print(code, function, exc.args_summary, exc.message)


def blocking_facade() -> None:
    config: aiomt5.MT5Settings = aiomt5.MT5Config(
        login=1, password="x", server="S", path="p", timeout=30000, max_retries=5,
        enable_health_check=True,
    )  # fmt: skip
    connector = aiomt5.MT5Connector.get_instance(config)
    ok: bool = connector.connect()
    names: list[str] = connector.get_available_symbols()
    bars: npt.NDArray[np.void] = connector.get_rates("EURUSD", "H1", count=10, closed_only=True)
    result: aiomt5.OrderResult = connector.buy(
        "EURUSD", 0.1, sl=1.05, reconcile_timeout=5.0, exactly_once=True
    )
    volume: float = connector.volume_for_risk("EURUSD", aiomt5.OrderType.BUY, 1.1, 1.09, 50.0)
    positions: tuple[aiomt5.Position, ...] = connector.positions("EURUSD")
    kind: aiomt5.PositionType | int = positions[0].type
    retcode: aiomt5.TradeRetcode | int = result.retcode
    connector.close()
    with aiomt5.mt5_connection(backend="sim") as blocking:
        stats: aiomt5.ConnectionStats = blocking.get_connection_stats()
    del ok, names, bars, volume, kind, retcode, stats


async def both_worlds() -> None:
    async with aiomt5.mt5_connection(backend="sim") as mt5:
        frame = await mt5.positions_frame(engine="polars")
        price: float = await mt5.normalize_price("EURUSD", 1.123456)
        pending = await mt5.place_pending("EURUSD", aiomt5.OrderType.BUY_LIMIT, 0.1, 1.05)
        del frame, price, pending


def constants_and_compat() -> None:
    import aiomt5.compat
    from aiomt5.constants import ORDER_TYPE_BUY_LIMIT, TRADE_RETCODE_DONE

    module = aiomt5.compat.install(backend="sim", call_timeout=5.0)
    limit: int = ORDER_TYPE_BUY_LIMIT
    done: int = TRADE_RETCODE_DONE
    del module, limit, done
