"""The ``aiomt5`` command line: demo, diagnose, symbols, rates, ticks, account, positions.

Built on typer (with rich): typed options from annotations, rich tables and progress bars, and
``typer.testing.CliRunner`` for in-process tests. Every command opens one ``AsyncMT5Connector``,
does its work, and closes it. User errors print one line and a hint and exit non-zero; only bugs
show a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

from pydantic import ValidationError

from ._connector import AsyncMT5Connector
from ._core._errors import MT5ConfigurationError, MT5Error, MT5InvalidArgumentError
from ._market._history import FetchProgress
from ._market._timeframe import Timeframe
from ._settings import MT5Settings

_MISSING_EXTRA: Final = (
    "the aiomt5 command line needs its extra: pip install 'aiomt5[cli]' (typer and rich)"
)

try:
    import typer
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
except ImportError:  # pragma: no cover - the [cli] extra is missing
    _HAVE_CLI = False
else:
    _HAVE_CLI = True

__all__ = ["main"]

_T = TypeVar("_T")
_HINTS: Final[dict[int, str]] = {
    -10003: "the terminal was not found or did not start: check MT5_PATH (terminal64.exe), and "
    "run as the same Windows user as the terminal (not as a service)",
    -10004: "no connection to the terminal: is it running, and was initialize() successful?",
    -10005: "the terminal did not connect to the trade server in time: check MT5_SERVER and the "
    "terminal's connection, or raise MT5_TIMEOUT_MS",
    -6: "the account was rejected: check MT5_LOGIN, MT5_PASSWORD and MT5_SERVER",
    -7: "the account needs OTP or a certificate password: log in once in the terminal",
    -8: "Python trading is disabled: Tools > Options > Expert Advisors, untick 'Disable "
    "automated trading via external Python API'",
}


class _Output:
    """Rich output for people, JSON for machines (``--json``)."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        # With --json, stdout is the JSON document alone: progress and tables stay silent.
        self.console = Console(highlight=False, soft_wrap=False, quiet=as_json)
        self.errors = Console(stderr=True, highlight=False, soft_wrap=True)  # one line each

    def data(self, payload: Any, render: Callable[[], None]) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(_plain(payload), default=_json_default, indent=2) + "\n")
        else:
            render()

    def say(self, line: str) -> None:
        """A line for people (nothing in ``--json`` mode, whose output is one document)."""
        if not self.as_json:
            self.console.print(line)

    def fail(self, message: str, hint: str | None = None) -> None:
        self.errors.print(f"[bold red]error:[/] {message}")
        if hint:
            self.errors.print(f"[yellow]hint:[/] {hint}")


def _plain(value: Any) -> Any:
    """Structs (tuples with ``_asdict``) and dataclasses as dicts, recursively, for JSON."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.name
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _hint_for(exc: MT5Error) -> str | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code in _HINTS:
        return _HINTS[code]
    if isinstance(exc, MT5InvalidArgumentError):
        return "see `aiomt5 COMMAND --help`"
    if isinstance(exc, MT5ConfigurationError):
        return "check the MT5_* environment variables, .env and the command's options"
    return None


def _run(out: _Output, work: Callable[[], Awaitable[_T]]) -> _T:
    """Run one command's coroutine; MT5 errors become one line, a hint and exit code 1."""
    try:
        return asyncio.run(_awaited(work))
    except MT5Error as exc:
        out.fail(str(exc), _hint_for(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _awaited(work: Callable[[], Awaitable[_T]]) -> _T:
    # work() runs inside asyncio.run, so errors building its arguments (settings) are caught
    # with the command's own.
    return await work()


def _settings(backend: str | None, **overrides: Any) -> MT5Settings:
    """The command's settings; on the simulator, a market that is open (see ``_open_market``).

    Raises:
        MT5ConfigurationError: A setting is invalid; the message names it (``MT5_<FIELD>``)
            and says what is wrong, without the value (it could be the password).
    """
    values = overrides if backend is None else {"backend": backend, **overrides}
    try:
        settings = MT5Settings(**values)
    except ValidationError as exc:
        raise MT5ConfigurationError(_settings_problem(exc)) from None
    return _open_market(settings)


def _settings_problem(exc: ValidationError) -> str:
    """The first real problem of a settings validation, as one line.

    A field whose default is computed from an invalid one (``connect_timeout`` from
    ``timeout_ms``) fails too; that echo is not the user's mistake and is left out.
    """
    problems = [
        error for error in exc.errors() if error["type"] != "default_factory_not_called"
    ] or exc.errors()
    first = problems[0]
    field = ".".join(str(part) for part in first["loc"]) or "settings"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"invalid setting {field} (MT5_{field.upper()}): {first['msg']}{more}"


def _open_market(settings: MT5Settings) -> MT5Settings:
    """Start the simulator's clock in an open session when the wall clock falls in a closed one.

    A user who runs a command on the simulator at a weekend wants to see a market, not an empty
    one: without ``sim_start``, the clock starts at the same hour of the latest open session,
    and one line on stderr says so. Other backends, and an explicit ``sim_start``, are left as
    they are.
    """
    if settings.backend != "sim" or settings.sim_start is not None:
        return settings
    from .sim._setup import sim_clock

    choice = sim_clock(settings, open_market=True)
    if choice.note is None:
        return settings
    sys.stderr.write(f"note: {choice.note}\n")
    return settings.model_copy(update={"sim_start": choice.clock.datetime()})


def _parse_when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MT5InvalidArgumentError(
            f"--{name} {value!r} is not an ISO date, e.g. 2026-03-02 or 2026-03-02T10:00Z"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _struct_table(title: str, record: Any, fields: tuple[str, ...] | None = None) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    values = record._asdict() if hasattr(record, "_asdict") else dataclasses.asdict(record)
    for key, value in values.items():
        if fields is None or key in fields:
            table.add_row(key, _show(value))
    return table


def _show(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, float):
        return f"{value:,.3f}"
    return str(value)


def _records_table(
    title: str, records: Any, columns: tuple[str, ...], width: int | None = None
) -> Table:
    """A table of records whose cells are never cut or wrapped.

    Times show as ``YYYY-MM-DD HH:MM:SS[.mmm]`` in a ``(UTC)`` column; when the table is wider
    than ``width`` the rightmost columns are left out (the first two always stay), and the
    caption names them and says how to see everything.
    """
    cells = [[_cell(column, record[column]) for column in columns] for record in records]
    headers = [f"{c} (UTC)" if c == "time" else c for c in columns]
    widths = [
        max([len(header)] + [len(row[index]) for row in cells])
        for index, header in enumerate(headers)
    ]
    shown = len(columns)
    while width is not None and shown > 2 and sum(widths[:shown]) + 3 * shown + 1 > width:
        shown -= 1
    table = Table(title=title, title_justify="left")
    for index in range(shown):
        table.add_column(headers[index], no_wrap=True, min_width=widths[index])
    for row in cells:
        table.add_row(*row[:shown])
    if shown < len(columns):
        table.caption = f"not shown: {', '.join(columns[shown:])} (widen the terminal, or --json)"
        table.caption_justify = "left"
    return table


def _cell(column: str, value: Any) -> str:
    text = str(value)
    if column.startswith("time") and text.endswith("+00:00"):
        return text[: -len("+00:00")].replace("T", " ")
    return text


# ====================================================================== the demo
_DEMO_SYMBOL: Final = "EURUSD"
_DEMO_STREAMED: Final = ("GBPUSD", "BTCUSD")  # streamed with the demo symbol
_DEMO_MAGIC: Final = 20261124
_DEMO_TICKS_BACK: Final = 15.0  # seconds of recent ticks the stream starts with
_DEMO_DAYS: Final = 30


async def _demo(out: _Output, stream_seconds: float) -> None:
    settings = _settings("sim", call_timeout=10.0)
    report: dict[str, Any] = {}
    if not out.as_json:
        out.console.rule("[bold]aiomt5 demo[/] on the built-in simulated terminal")
    async with AsyncMT5Connector(settings) as mt5:
        health = await mt5.health_check()
        account = await mt5.get_account_info()
        info = await mt5.get_terminal_info()
        report["connected"] = health.ok
        report["account"] = {
            "login": account.login,
            "server": account.server,
            "currency": account.currency,
            "balance": account.balance,
            "leverage": account.leverage,
        }
        report["build"] = info.build
        out.say(
            f"connected: [green]{health.ok}[/]  account {account.login} on {account.server} "
            f"({account.currency} {account.balance:,.2f}, leverage 1:{account.leverage})  "
            f"build {info.build}  ping {health.ping_ms:.1f} ms"
        )
        symbol = await mt5.find_symbol(_DEMO_SYMBOL)
        # The terminal's clock, not the machine's: the simulator may run at another time.
        now = datetime.fromtimestamp((await mt5.call("symbol_info_tick", symbol)).time, UTC)
        report["history"] = await _demo_history(out, mt5, symbol, now)
        streamed = (symbol, *_DEMO_STREAMED)
        report["ticks"] = await _demo_stream(out, mt5, streamed, now, stream_seconds)
        report["trade"] = await _demo_order(out, mt5, symbol)
        stats = mt5.get_connection_stats()
    report["stats"] = stats
    columns = ("state", "uptime_seconds", "calls", "failures", "latency_p50_ms", "latency_p99_ms")

    def render() -> None:
        out.console.print(_struct_table("connection stats", stats, columns))
        out.console.rule("[bold green]demo finished")

    out.data(report, render)


async def _demo_history(
    out: _Output, mt5: AsyncMT5Connector, symbol: str, now: datetime
) -> dict[str, Any]:
    end = now.replace(second=0, microsecond=0)
    start = end - timedelta(days=_DEMO_DAYS)
    with Progress(
        TextColumn("history {task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rows]:,} M1 bars in {task.fields[pages]} pages"),
        TimeElapsedColumn(),
        console=out.console,
        disable=out.as_json,
    ) as progress:
        task = progress.add_task(symbol, total=1.0, rows=0, pages=0)

        def on_page(step: FetchProgress) -> None:
            progress.update(task, completed=step.fraction or 0.0, rows=step.rows, pages=step.pages)

        # More bars than one request may ask for: get_rates pages under the terminal's maxbars.
        rates = await mt5.get_rates(
            symbol, Timeframe.M1, start, end, progress=on_page, page_size=5000
        )
        progress.update(task, completed=1.0)
    out.say(f"downloaded {len(rates):,} M1 bars of {symbol} ({_DEMO_DAYS} days)")
    return {"symbol": symbol, "timeframe": "M1", "from": start, "to": end, "bars": len(rates)}


async def _demo_stream(
    out: _Output, mt5: AsyncMT5Connector, symbols: tuple[str, ...], now: datetime, seconds: float
) -> list[dict[str, Any]]:
    # From a few seconds back, so even a quiet hour shows ticks at once; then live.
    since = now - timedelta(seconds=_DEMO_TICKS_BACK)
    title = f"ticks since {since:%H:%M:%S} UTC, live {seconds:g} s"
    table = Table(title=title, title_justify="left")
    for column in ("time (UTC)", "symbol", "bid", "ask"):
        table.add_column(column)
    seen: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with (
            asyncio.timeout(seconds),
            mt5.stream_ticks(*symbols, poll_interval=0.1, since=since) as ticks,
        ):
            async for tick in ticks:  # every tick once, in time order across the symbols
                stamp = tick.datetime.strftime("%H:%M:%S.%f")[:-3]
                table.add_row(stamp, tick.symbol, f"{tick.bid:g}", f"{tick.ask:g}")
                seen.append(
                    {"time": tick.datetime, "symbol": tick.symbol, "bid": tick.bid, "ask": tick.ask}
                )
    if not out.as_json:
        out.console.print(table)
    return seen


async def _demo_order(out: _Output, mt5: AsyncMT5Connector, symbol: str) -> dict[str, Any]:
    # Exactly once: the order is tagged and, after an ambiguous outcome, looked up, not re-sent.
    opened = await mt5.buy(symbol, 0.1, comment="demo", magic=_DEMO_MAGIC)
    out.say(f"bought 0.1 {symbol} at {opened.price} ({opened.retcode_name}, deal {opened.deal})")
    position = next(p for p in await mt5.positions(symbol) if p.magic == _DEMO_MAGIC)
    closed = await mt5.close_position(position)
    deals = await mt5.history_deals(position=position.ticket)
    profit = sum(d.profit for d in deals)
    out.say(
        f"closed position {position.ticket} at {closed.price} ({closed.retcode_name}), "
        f"profit {profit:+.2f}"
    )
    return {
        "symbol": symbol,
        "volume": 0.1,
        "position": position.ticket,
        "opened": {"price": opened.price, "retcode": opened.retcode_name, "deal": opened.deal},
        "closed": {"price": closed.price, "retcode": closed.retcode_name, "deal": closed.deal},
        "profit": profit,
    }


# ====================================================================== the app
class ServeBackend(enum.StrEnum):
    """What ``aiomt5 serve`` serves."""

    metatrader5 = "metatrader5"
    sim = "sim"


if _HAVE_CLI:
    # The global options are also every command's, so they work before or after its name.
    _BackendOption = Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="auto | metatrader5 | sim | mt5linux://host:port | aiomt5://host:port "
            "(default: MT5_BACKEND)",
        ),
    ]
    _JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _build_app() -> typer.Typer:
    app = typer.Typer(
        name="aiomt5",
        help="asyncio MetaTrader 5 client: diagnostics, symbols, history, and a simulated demo.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    state: dict[str, Any] = {}

    def chosen(backend: str | None) -> str | None:
        return backend if backend is not None else state["backend"]

    def output(as_json: bool) -> _Output:
        return _Output(as_json=True) if as_json else state["out"]

    @app.callback()
    def _global(backend: _BackendOption = None, as_json: _JsonOption = False) -> None:
        state["backend"] = backend
        state["out"] = _Output(as_json=as_json)

    @app.command()
    def demo(
        seconds: Annotated[float, typer.Option(help="How long to stream live ticks.")] = 3.0,
        as_json: _JsonOption = False,
    ) -> None:
        """Connect to the simulated terminal and show what aiomt5 does (no MetaTrader 5 needed)."""
        out = output(as_json)
        _run(out, lambda: _demo(out, seconds))

    @app.command()
    def diagnose(backend: _BackendOption = None, as_json: _JsonOption = False) -> None:
        """Check the backend, terminal, account, trade permissions, ping and latency."""
        out = output(as_json)
        _run(out, lambda: _diagnose(out, _settings(chosen(backend))))

    @app.command()
    def symbols(
        pattern: Annotated[
            str | None, typer.Argument(help='MT5 group syntax, e.g. "*USD*,!*JPY*".')
        ] = None,
        info: Annotated[str | None, typer.Option(help="Show every field of one symbol.")] = None,
        find: Annotated[
            str | None, typer.Option(help="Resolve a name to the broker's (suffixes).")
        ] = None,
        backend: _BackendOption = None,
        as_json: _JsonOption = False,
    ) -> None:
        """List symbols (filtered by an MT5 group pattern), show one, or resolve a name."""
        out = output(as_json)
        _run(out, lambda: _symbols(out, _settings(chosen(backend)), pattern, info, find))

    @app.command()
    def rates(
        symbol: str,
        timeframe: Annotated[str, typer.Argument(help="M1 ... MN1")],
        date_from: Annotated[str | None, typer.Option("--from", help="ISO date (UTC).")] = None,
        date_to: Annotated[str | None, typer.Option("--to", help="ISO date (UTC).")] = None,
        count: Annotated[int | None, typer.Option(help="Number of bars.")] = None,
        out_file: Annotated[
            Path | None, typer.Option("--out", help="Write .csv or .parquet instead of printing.")
        ] = None,
        backend: _BackendOption = None,
        as_json: _JsonOption = False,
    ) -> None:
        """Download bars (by range, or the latest --count) and print or save them."""
        out = output(as_json)
        _run(
            out,
            lambda: _rates(
                out, _settings(chosen(backend)), symbol, timeframe, date_from, date_to, count,
                out_file,
            ),
        )  # fmt: skip

    @app.command()
    def ticks(
        symbol: str,
        date_from: Annotated[str, typer.Option("--from", help="ISO date/time (UTC).")],
        date_to: Annotated[str | None, typer.Option("--to", help="ISO date/time (UTC).")] = None,
        count: Annotated[int | None, typer.Option(help="Number of ticks from --from.")] = None,
        flags: Annotated[str, typer.Option(help="all | info | trade")] = "all",
        out_file: Annotated[
            Path | None, typer.Option("--out", help="Write .csv or .parquet instead of printing.")
        ] = None,
        backend: _BackendOption = None,
        as_json: _JsonOption = False,
    ) -> None:
        """Download ticks (a range, or --count from --from) and print or save them."""
        out = output(as_json)
        _run(
            out,
            lambda: _ticks(
                out, _settings(chosen(backend)), symbol, date_from, date_to, count, flags,
                out_file,
            ),
        )  # fmt: skip

    @app.command()
    def serve(
        backend: Annotated[
            ServeBackend, typer.Option(help="The terminal to serve.")
        ] = ServeBackend.metatrader5,
        host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port (0: any free one).")] = 18813,
        token_file: Annotated[
            str | None, typer.Option(help="File holding the token (default: $MT5_REMOTE_TOKEN).")
        ] = None,
        tls_cert: Annotated[str | None, typer.Option(help="PEM certificate: serve TLS.")] = None,
        tls_key: Annotated[str | None, typer.Option(help="PEM key, if not in --tls-cert.")] = None,
        insecure: Annotated[
            bool, typer.Option(help="Allow a non-loopback address without TLS.")
        ] = False,
        insecure_no_token: Annotated[
            bool, typer.Option(help="Accept clients without a token (loopback only).")
        ] = False,
        sim_seed: Annotated[
            int | None, typer.Option(help="Simulator seed (default: MT5_SIM_SEED or 0).")
        ] = None,
        max_clients: Annotated[int, typer.Option(help="Authenticated clients at once.")] = 64,
        max_pending: Annotated[int, typer.Option(help="Handshakes in progress at once.")] = 32,
        handshake_timeout: Annotated[
            float, typer.Option(help="Seconds for a whole handshake.")
        ] = 5.0,
        idle_timeout: Annotated[
            float, typer.Option(help="Seconds a client may stay silent.")
        ] = 3600.0,
        send_timeout: Annotated[
            float, typer.Option(help="Seconds a reply may take to be sent.")
        ] = 30.0,
        max_reply_mb: Annotated[float, typer.Option(help="Largest reply, in MiB.")] = 64.0,
        max_reply_memory_mb: Annotated[
            float, typer.Option(help="Tick replies held at once, all clients, in MiB.")
        ] = 256.0,
        as_json: _JsonOption = False,
    ) -> None:
        """Serve a terminal to aiomt5:// clients: token-authenticated, loopback by default."""
        from ._remote._server import run_serve  # imported here: the other commands never need it

        raise typer.Exit(
            run_serve(
                backend=backend.value,
                token_file=token_file,
                tls_cert=tls_cert,
                tls_key=tls_key,
                sim_seed=sim_seed,
                as_json=as_json or state["out"].as_json,
                host=host,
                port=port,
                insecure=insecure,
                allow_no_token=insecure_no_token,
                max_clients=max_clients,
                max_pending=max_pending,
                handshake_timeout=handshake_timeout,
                idle_timeout=idle_timeout,
                send_timeout=send_timeout,
                max_reply_bytes=int(max_reply_mb * (1 << 20)),
                max_reply_memory=int(max_reply_memory_mb * (1 << 20)),
            )
        )

    @app.command()
    def account(backend: _BackendOption = None, as_json: _JsonOption = False) -> None:
        """Show the logged-in account."""
        out = output(as_json)
        _run(out, lambda: _account(out, _settings(chosen(backend))))

    @app.command()
    def positions(backend: _BackendOption = None, as_json: _JsonOption = False) -> None:
        """List open positions."""
        out = output(as_json)
        _run(out, lambda: _positions(out, _settings(chosen(backend))))

    return app


async def _diagnose(out: _Output, settings: MT5Settings) -> None:
    async with AsyncMT5Connector(settings) as mt5:
        health = await mt5.health_check()
        terminal = await mt5.get_terminal_info()
        total = await mt5.call("symbols_total")
        started = time.perf_counter()
        for _ in range(20):
            await mt5.call("terminal_info")
        latency_ms = (time.perf_counter() - started) / 20 * 1000
        report = {
            "backend": settings.backend,
            "health": health,
            "terminal_build": terminal.build,
            "symbols": total,
            "call_latency_ms": round(latency_ms, 3),
        }
    problems = []
    if not health.terminal_connected:
        problems.append("terminal not connected to the trade server")
    if not health.trade_allowed:
        problems.append("AutoTrading is off in the terminal (trades get retcode 10027)")
    if terminal.tradeapi_disabled:
        problems.append(_HINTS[-8])
    report["verdict"] = "ok" if not problems else "problems"
    report["problems"] = problems

    def render() -> None:
        out.console.print(_struct_table("health", health))
        out.console.print(
            f"backend {settings.backend}, build {terminal.build}, {total} symbols, "
            f"call latency {latency_ms:.3f} ms"
        )
        if problems:
            for problem in problems:
                out.console.print(f"[yellow]problem:[/] {problem}")
        else:
            out.console.print("[bold green]verdict: ok[/]")

    out.data(report, render)
    if problems:
        raise typer.Exit(2)


async def _symbols(
    out: _Output,
    settings: MT5Settings,
    pattern: str | None,
    info: str | None,
    find: str | None,
) -> None:
    async with AsyncMT5Connector(settings) as mt5:
        if find is not None:
            name = await mt5.find_symbol(find)
            out.data({"query": find, "symbol": name}, lambda: out.console.print(name))
            return
        if info is not None:
            record = await mt5.get_symbol_info(await mt5.find_symbol(info))
            out.data(record, lambda: out.console.print(_struct_table(record.name, record)))
            return
        found = (
            await mt5.call("symbols_get", group=pattern)
            if pattern
            else await mt5.call("symbols_get")
        )
    rows = [
        {"name": s.name, "description": s.description, "digits": s.digits, "path": s.path}
        for s in found
    ]
    out.data(
        rows,
        lambda: out.console.print(
            _records_table(
                f"{len(rows)} symbols",
                rows,
                ("name", "description", "digits", "path"),
                out.console.width,
            )
        ),
    )


async def _rates(
    out: _Output,
    settings: MT5Settings,
    symbol: str,
    timeframe: str,
    date_from: str | None,
    date_to: str | None,
    count: int | None,
    out_file: Path | None,
) -> None:
    start, end = _parse_when(date_from, "from"), _parse_when(date_to, "to")
    if start is None and count is None:
        raise MT5InvalidArgumentError("give --from (and --to) or --count")
    async with AsyncMT5Connector(settings) as mt5:
        name = await mt5.find_symbol(symbol)
        await mt5.call("symbol_select", name, True)
        if start is not None and end is None and count is None:
            end = datetime.now(UTC)
        bars = await mt5.get_rates(name, timeframe, start, end, count=count)
    if out_file is not None:
        _write_array(bars, out_file)
        out.data(
            {"symbol": name, "bars": len(bars), "file": str(out_file)},
            lambda: out.console.print(f"wrote {len(bars):,} bars of {name} to {out_file}"),
        )
        return
    rows = _rows(bars)
    for row in rows:
        row["time"] = datetime.fromtimestamp(row["time"], UTC).isoformat()
    out.data(
        rows,
        lambda: out.console.print(
            _records_table(
                f"{len(rows)} {timeframe} bars of {name}",
                rows,
                ("time", "open", "high", "low", "close", "tick_volume", "spread"),
                out.console.width,
            )
        ),
    )


_TICK_FLAGS: Final = {"all": -1, "info": 1, "trade": 2}


async def _ticks(
    out: _Output,
    settings: MT5Settings,
    symbol: str,
    date_from: str,
    date_to: str | None,
    count: int | None,
    flags: str,
    out_file: Path | None,
) -> None:
    start, end = _parse_when(date_from, "from"), _parse_when(date_to, "to")
    assert start is not None  # --from is a required option
    if flags not in _TICK_FLAGS:
        raise MT5InvalidArgumentError(f"--flags {flags!r}: use one of {', '.join(_TICK_FLAGS)}")
    async with AsyncMT5Connector(settings) as mt5:
        name = await mt5.find_symbol(symbol)
        await mt5.call("symbol_select", name, True)
        if count is not None:
            found = await mt5.call("copy_ticks_from", name, start, count, _TICK_FLAGS[flags])
        else:
            until = end if end is not None else datetime.now(UTC)
            found = await mt5.call("copy_ticks_range", name, start, until, _TICK_FLAGS[flags])
    if out_file is not None:
        _write_array(found, out_file)
        out.data(
            {"symbol": name, "ticks": len(found), "file": str(out_file)},
            lambda: out.console.print(f"wrote {len(found):,} ticks of {name} to {out_file}"),
        )
        return
    rows = _rows(found)
    for row in rows:
        row["time"] = datetime.fromtimestamp(row["time_msc"] / 1000, UTC).isoformat()
    out.data(
        rows,
        lambda: out.console.print(
            _records_table(
                f"{len(rows)} ticks of {name}",
                rows,
                ("time", "bid", "ask", "last", "flags"),
                out.console.width,
            )
        ),
    )


def _rows(array: Any) -> list[dict[str, Any]]:
    names = array.dtype.names or ()
    return [{n: record[n].item() for n in names} for record in array]


def _write_array(bars: Any, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        import numpy as np

        names = bars.dtype.names or ()
        np.savetxt(
            path,
            np.column_stack([bars[n].astype(float) for n in names]) if len(bars) else [],
            delimiter=",",
            header=",".join(names),
            comments="",
            fmt="%.10g",
        )
    elif suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise MT5InvalidArgumentError(
                "writing .parquet needs pyarrow: pip install pyarrow"
            ) from None
        table = pa.table({n: bars[n] for n in bars.dtype.names or ()})
        pq.write_table(table, path)
    else:
        raise MT5InvalidArgumentError(f"--out {path}: use a .csv or .parquet file name")


async def _account(out: _Output, settings: MT5Settings) -> None:
    async with AsyncMT5Connector(settings) as mt5:
        record = await mt5.get_account_info()
    out.data(record, lambda: out.console.print(_struct_table("account", record)))


async def _positions(out: _Output, settings: MT5Settings) -> None:
    async with AsyncMT5Connector(settings) as mt5:
        found = await mt5.call("positions_get")
    rows = [p._asdict() for p in found]
    columns = ("ticket", "symbol", "type", "volume", "price_open", "price_current", "profit")
    out.data(
        rows,
        lambda: out.console.print(
            _records_table(f"{len(rows)} positions", rows, columns, out.console.width)
        ),
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``aiomt5`` command (and ``python -m aiomt5``)."""
    if not _HAVE_CLI:
        sys.stderr.write(f"error: {_MISSING_EXTRA}\n")
        raise SystemExit(2)
    _build_app()(args=argv, prog_name="aiomt5")
