"""``SimTerminal``: the MetaTrader5 module's functions over a simulated terminal and trade server.

Every public method here is a MetaTrader5 function with its calling convention
(``METH_NOARGS``, positional-only ``METH_VARARGS``, or keyword), its argument rules and error texts,
its failure return
(``None``, ``False``, ``()``, an empty array) and the ``last_error()`` it leaves. The dispatch in
``_call`` does what the C module does around every call: reset ``last_error``, check the pipe, and
here also apply injected faults and record which thread called.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

import numpy as np

from aiomt5._mt5 import constants as c
from aiomt5._mt5.codes import error_text
from aiomt5._mt5.helpers import MetaTrader5Helpers
from aiomt5._mt5.structs import (
    AccountInfo,
    BookInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeRequest,
)

from . import _calc
from ._account import AccountBook, SimAccount, default_accounts
from ._args import (
    as_c_double,
    as_c_int,
    as_date,
    as_symbol,
    check_int,
    check_str,
    utf16_len,
)
from ._clock import SimClock
from ._errors import Failure, invalid_argument
from ._faults import LOCAL_FUNCTIONS, Faults
from ._group import compile_group
from ._market import HISTORY_CACHE_BYTES, HistoryCache, MarketModel, is_timeframe, nominal_seconds
from ._symbols import CATALOGUE, with_suffix
from ._trading import TradingEngine

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._spec import SymbolSpec

__all__ = ["TERMINAL_BUILD", "TERMINAL_PATH", "SimTerminal"]

TERMINAL_BUILD: Final = 5430
TERMINAL_RELEASE: Final = "14 Nov 2025"
TERMINAL_PATH: Final = r"C:\Program Files\MetaTrader 5\terminal64.exe"
_MAX_PATH: Final = 258
_MAX_CREDENTIAL: Final = 253
_MAX_GROUP: Final = 1997
_REQUEST_STR_MAX: Final = 29
# The C module answers these itself; they work with no pipe.
_LOCAL: Final = frozenset({"initialize", "shutdown", "last_error"})
# Symbols a fresh demo terminal shows in its Market Watch.
_DEFAULT_WATCH: Final = ("EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD", "USDCAD", "XAUUSD")
_BOOK_DEPTH: Final = 10

_F = TypeVar("_F", bound=Callable[..., Any])


def _api(kind: str, failure: Any) -> Callable[[_F], _F]:
    """Declare a MetaTrader5 function: calling convention and what it returns on failure."""

    def decorate(function: _F) -> _F:
        name = function.__name__

        @functools.wraps(function)
        def wrapper(self: SimTerminal, *args: Any, **kwargs: Any) -> Any:
            if kind == "noargs" and args:
                msg = f"{name}() takes no arguments ({len(args)} given)"
                raise TypeError(msg)
            if kind in ("noargs", "varargs") and kwargs:
                msg = f"{name}() takes no keyword arguments"
                raise TypeError(msg)
            return self._call(name, failure, function, args, kwargs)

        wrapper.__signature__ = None  # type: ignore[attr-defined]  # C functions have none
        return wrapper  # type: ignore[return-value]

    return decorate


class SimTerminal(MetaTrader5Helpers):
    """A simulated MetaTrader 5 terminal with every function and constant of MetaTrader5 5.0.6231.

    Args:
        seed: Seed of the market and of everything random in the simulation.
        clock: Where "now" comes from (default: wall time).
        accounts: Accounts the trade server accepts (default: a hedging and a netting demo).
        symbols: Instruments the server offers (default: the built-in catalogue).
        symbol_suffix: Broker suffix appended to every instrument name (e.g. ``".m"``).
        margin_mode: Margin mode of the default account (hedging unless netting is asked for).
        maxbars: The terminal's "Max. bars in chart".
        history_cache_bytes: Memory for recently used M1 history, shared by all symbols (default
            64 MiB, about a million bars; 0 regenerates every request). Speed only: the bars
            are the same either way.
        path: Path of the simulated ``terminal64.exe``.
        market_watch: Symbols selected at start (default: the majors and gold).
        hold_gil: Wait like the real MetaTrader5 module: every wait of a call (its IPC time,
            injected latency, hangs) keeps the GIL, so no other thread of the process runs
            meanwhile (see ``aiomt5.sim._gil``). Off by default: the simulator then lets other
            threads run, as no real terminal does.
        ipc_seconds: Simulated pipe round trip of every call that reaches the terminal, in
            seconds (0: none). The real one is 0.1 to 1 ms.
        market_source: Makes each symbol's market from ``(spec, seed, history_cache)``
            (default: the generated ``MarketModel``). ``aiomt5.sim.Recording.market`` serves
            recorded bars and ticks instead.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        clock: SimClock | None = None,
        accounts: Sequence[SimAccount] | None = None,
        symbols: Iterable[SymbolSpec] | None = None,
        symbol_suffix: str = "",
        margin_mode: int | None = None,
        maxbars: int = 100_000,
        history_cache_bytes: int = HISTORY_CACHE_BYTES,
        path: str = TERMINAL_PATH,
        market_watch: Iterable[str] | None = None,
        hold_gil: bool = False,
        ipc_seconds: float = 0.0,
        market_source: Callable[[SymbolSpec, int, HistoryCache], MarketModel] | None = None,
    ) -> None:
        if maxbars < 1:
            msg = f"maxbars must be positive, got {maxbars}"
            raise ValueError(msg)
        if not 0 <= ipc_seconds <= 1:
            msg = f"ipc_seconds must be within [0, 1], got {ipc_seconds}"
            raise ValueError(msg)
        self.hold_gil = hold_gil
        """Whether calls keep the GIL while they wait, like the real module's."""
        self.ipc_seconds = ipc_seconds
        self.seed = seed
        self.clock = clock if clock is not None else SimClock.wall()
        self.maxbars = maxbars
        self.path = path
        self.symbol_suffix = symbol_suffix
        specs = tuple(symbols) if symbols is not None else CATALOGUE
        if symbol_suffix:
            specs = tuple(with_suffix(specs, symbol_suffix))
        self._specs: dict[str, SymbolSpec] = {s.name: s for s in specs}
        self._markets: dict[str, MarketModel] = {}
        self._market_source = market_source
        self._history_cache = HistoryCache(history_cache_bytes)
        self._accounts = {a.login: a for a in (accounts or default_accounts(margin_mode))}
        self._books: dict[int, AccountBook] = {}
        watch = (
            list(market_watch)
            if market_watch is not None
            else [n + symbol_suffix for n in _DEFAULT_WATCH if n + symbol_suffix in self._specs]
        )
        unknown = [n for n in watch if n not in self._specs]
        if unknown:
            msg = f"market_watch names symbols the server does not offer: {unknown}"
            raise ValueError(msg)
        self._selected: dict[str, None] = dict.fromkeys(watch)
        self._books_subscribed: set[str] = set()
        self._lock = threading.RLock()
        self._last_error: tuple[int, str] = (1, "Success")
        self._pipe = False
        self._trade_server_up = True
        self._account: AccountBook | None = None
        self._investor = False
        self.portable = False
        self._last_account = min(self._accounts)
        self.trade_allowed = True
        """The terminal's AutoTrading button (off: trade requests get retcode 10027)."""
        self.tradeapi_disabled = False
        """Options > Expert Advisors > "Disable automated trading via external Python API"."""
        self.faults = Faults(on_break_pipe=self._break_pipe, on_trade_server=self._set_trade_server)
        self.engine = TradingEngine(self, seed=seed, symbol_suffix=symbol_suffix)
        self.thread_names: collections.Counter[str] = collections.Counter()
        """How many API calls each thread made (by thread name)."""
        self.calls: collections.Counter[str] = collections.Counter()
        """How many times each API function was called."""
        for name, value in c.CONSTANTS.items():
            setattr(self, name, value)

    # Struct types, as module attributes of MetaTrader5.
    TerminalInfo = TerminalInfo
    AccountInfo = AccountInfo
    SymbolInfo = SymbolInfo
    Tick = Tick
    BookInfo = BookInfo
    TradeRequest = TradeRequest
    OrderSendResult = OrderSendResult
    OrderCheckResult = OrderCheckResult

    # ================================================================== dispatch
    def _call(
        self,
        name: str,
        failure: Any,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        thread = threading.current_thread().name
        with self._lock:
            self.thread_names[thread] += 1
            self.calls[name] += 1
            self._last_error = (1, "Success")
        plan = self.faults.plan(name)
        if self.ipc_seconds and name not in LOCAL_FUNCTIONS:
            plan.delay += self.ipc_seconds
        if plan.hang is not None or plan.delay:
            Faults.apply_delays(plan, hold_gil=self.hold_gil)
        action = plan.action
        with self._lock:
            if action is not None and action.when == "before":
                if action.close_pipe:
                    self._break_pipe()
                return self._failed(failure, Failure(action.code, action.message))
            if name not in _LOCAL and not self._pipe:
                return self._failed(failure, Failure(-10004))
            try:
                result = function(self, *args, **kwargs)
            except Failure as failed:
                return self._failed(failure, failed)
            if action is not None:
                if action.close_pipe:
                    self._break_pipe()
                return self._failed(failure, Failure(action.code, action.message))
            return result

    def _failed(self, failure: Any, failed: Failure) -> Any:
        if failed.set_error:
            self._last_error = (failed.code, failed.message)
        return failed.value if failed.has_value else failure

    def _break_pipe(self) -> None:
        with self._lock:
            self._pipe = False

    def _set_trade_server(self, up: bool) -> None:
        self._trade_server_up = up

    def _require_trade_server(self) -> None:
        if not self._trade_server_up or self._account is None:
            raise Failure(-1)

    def _book(self) -> AccountBook:
        self._require_trade_server()
        assert self._account is not None
        return self._account

    def _now_msc(self) -> int:
        return self.clock.now_msc()

    # ================================================================== market access
    def _market(self, symbol: str) -> MarketModel:
        market = self._markets.get(symbol)
        if market is None:
            spec = self._specs[symbol]
            if self._market_source is None:
                market = MarketModel(spec, self.seed, history_cache=self._history_cache)
            else:
                market = self._market_source(spec, self.seed, self._history_cache)
            self._markets[symbol] = market
        return market

    def _spec_or_fail(self, symbol: str, code: int = -1) -> SymbolSpec:
        spec = self._specs.get(symbol)
        if spec is None:
            raise Failure(code)
        return spec

    def _selected_market(self, symbol: str) -> MarketModel:
        """Market data needs a known symbol in the Market Watch, else ``-1 Call failed``."""
        self._require_trade_server()
        if symbol not in self._specs or symbol not in self._selected:
            raise Failure(-1)
        return self._market(symbol)

    # MarketView, for the trading engine ------------------------------------------
    def spec(self, symbol: str) -> SymbolSpec | None:
        """The instrument ``symbol`` or None (MarketView)."""
        return self._specs.get(symbol)

    def quote(self, symbol: str) -> tuple[float, float] | None:
        """Current (bid, ask) of any offered symbol (MarketView; used for conversions)."""
        if symbol not in self._specs:
            return None
        tick = self._market(symbol).last_tick(self._now_msc())
        return None if tick is None else (float(tick[1]), float(tick[2]))

    def last_tick(self, symbol: str, now_msc: int) -> tuple[int, float, float, float] | None:
        """(time_msc, bid, ask, last) of the latest tick (MarketView)."""
        if symbol not in self._specs:
            return None
        tick = self._market(symbol).last_tick(now_msc)
        if tick is None:
            return None
        return (int(tick[5]), float(tick[1]), float(tick[2]), float(tick[3]))

    def ticks(self, symbol: str, from_msc: int, to_msc: int) -> npt.NDArray[np.void]:
        """Every tick in ``[from_msc, to_msc]`` (MarketView)."""
        return self._market(symbol).ticks_range(from_msc, to_msc, to_msc, c.COPY_TICKS_ALL)

    def is_open(self, symbol: str, epoch_s: int) -> bool:
        """Whether ``symbol`` trades at ``epoch_s`` (MarketView)."""
        return symbol in self._specs and self._market(symbol).is_open(epoch_s)

    def market_opens_at(self, symbol: str) -> datetime | None:
        """Not in MetaTrader5: when ``symbol``'s closed market opens again.

        None while it is open, and for an unknown symbol or one that never trades. The connector
        uses it to say when a closed market reopens (``MT5MarketClosedError``, stream logs).
        """
        if symbol not in self._specs:
            return None
        now = self.clock.now()
        when = self._market(symbol).opens_at(now)
        return datetime.fromtimestamp(when, UTC) if when is not None and when > now else None

    def server_time(self) -> float | None:
        """Not in MetaTrader5: the simulated now (epoch seconds), where it is exact and moves one
        to one with the event loop's clock (a replay's virtual time: ``SimClock.following``).

        None otherwise (a fixed, running or wall clock). A bar stream uses it to sleep through
        polls that cannot find a closed bar (see ``aiomt5._market._streams``).
        """
        clock = self.clock
        return clock.now() if clock.follows_source else None

    def is_selected(self, symbol: str) -> bool:
        """Whether ``symbol`` is in the Market Watch (MarketView)."""
        return symbol in self._selected

    @property
    def trade_server_connected(self) -> bool:
        """False while the terminal is cut off from the trade server (MarketView)."""
        return self._trade_server_up

    # ================================================================== terminal and account
    @_api("keywords", False)
    def initialize(self, *args: Any, **kwargs: Any) -> bool:
        """Connect to the terminal (always dropping any existing connection first)."""
        self._pipe = False
        self._account = None
        if len(args) > 1:
            raise Failure(-2, "Invalid number of arguments")
        path = args[0] if args else kwargs.get("path")
        if args and (not isinstance(path, str) or utf16_len(path) > _MAX_PATH):
            raise Failure(-2, "Invalid 1st unnamed argument")
        if path is not None:
            check_str("path", path, _MAX_PATH)
        login = kwargs.get("login")
        password = kwargs.get("password")
        server = kwargs.get("server")
        if login is not None:
            check_int("login", login)
        if password is not None:
            check_str("password", password, _MAX_CREDENTIAL)
        if server is not None:
            check_str("server", server, _MAX_CREDENTIAL)
        timeout = kwargs.get("timeout")
        if timeout is not None:
            check_int("timeout", timeout)
        self.portable = bool(kwargs.get("portable", False))
        if path is not None and path.lower() != self.path.lower():
            raise Failure(-10003, f"{error_text(-10003)}, Process create failed '\"{path}\"'")
        # As the terminal does: login=0 and empty password/server mean "not given", so
        # initialize(login=0, password="", server="") attaches to the logged-in account.
        if login == 0:
            login = None
        password = password or None
        server = server or None
        self._pipe = True
        try:
            self._authorize(
                self._last_account if login is None else login,
                password,
                server,
                attach=login is None,
            )
        except Failure:
            self._pipe = False
            self._account = None
            raise
        return True

    @_api("keywords", False)
    def login(self, *args: Any, **kwargs: Any) -> bool:
        """Log in to another account on the attached terminal (the pipe stays open on failure)."""
        if len(args) > 3:
            raise Failure(-2, "Invalid number of arguments")
        names = ("login", "password", "server")
        values = dict(zip(names, args, strict=False))
        for key in names:
            if key in kwargs:
                values[key] = kwargs[key]
        if "login" not in values:
            raise Failure(-2, invalid_argument("login"))
        login = check_int("login", values["login"])
        password = values.get("password")
        server = values.get("server")
        if password is not None:
            check_str("password", password, _MAX_CREDENTIAL)
        if server is not None:
            check_str("server", server, _MAX_CREDENTIAL)
        if "timeout" in kwargs:
            check_int("timeout", kwargs["timeout"])
        self._account = None
        self._authorize(login, password, server, attach=False)
        return True

    def _authorize(
        self, login: int, password: str | None, server: str | None, *, attach: bool
    ) -> None:
        """Log ``login`` in and wait for the trade server, as ``initialize``/``login`` do."""
        rejection = self.faults.login_rejection
        account = self._accounts.get(login)
        if rejection is not None and not attach:
            raise Failure(rejection, self._auth_text(rejection))
        if account is None or (server is not None and server != account.server):
            raise Failure(-6)
        investor = False
        if password is None:
            if not (attach or account.saved_password):
                raise Failure(-6)
        elif password == account.investor_password:
            investor = True
        elif password != account.password:
            raise Failure(-6)
        if not self._trade_server_up:
            raise Failure(-10005)
        self._account = self._books.setdefault(login, AccountBook(account))
        self._investor = investor
        self._last_account = login

    @staticmethod
    def _auth_text(code: int) -> str:
        if code == -7:
            return "Unsupported authorization mode, OTP or certificate password needed"
        return error_text(code)

    @_api("noargs", True)
    def shutdown(self) -> bool:
        """Close the pipe (the terminal keeps running). Always True."""
        self._pipe = False
        self._account = None
        return True

    @_api("noargs", (0, 0, ""))
    def version(self) -> tuple[int, int, str]:
        """``(500, build, release date)``; ``(0, 0, "")`` on failure, as the binary does."""
        return (500, TERMINAL_BUILD, TERMINAL_RELEASE)

    def last_error(self, *args: Any, **kwargs: Any) -> tuple[int, str]:
        """The last error: ``(code, description)``."""
        if args:
            msg = f"last_error() takes no arguments ({len(args)} given)"
            raise TypeError(msg)
        if kwargs:
            msg = "last_error() takes no keyword arguments"
            raise TypeError(msg)
        with self._lock:
            return self._last_error

    @_api("noargs", None)
    def terminal_info(self) -> Any:
        """Terminal state: connection to the trade server, ping, maxbars, paths."""
        install_dir = self.path.rsplit("\\", 1)[0]
        digest = hashlib.md5(install_dir.upper().encode(), usedforsecurity=False).hexdigest()
        roaming = r"C:\Users\trader\AppData\Roaming\MetaQuotes\Terminal"
        data_path = install_dir if self.portable else f"{roaming}\\{digest.upper()}"
        connected = self._trade_server_up and self._account is not None
        return TerminalInfo(
            (
                False, False, connected, False, self.trade_allowed, self.tradeapi_disabled,
                False, False, False, False, TERMINAL_BUILD, self.maxbars, 0,
                self._ping_us() if connected else 0, 0.0, 0.0,
                "AioMT5 Simulated Markets Ltd", "MetaTrader 5", "English", install_dir,
                data_path, f"{roaming}\\Common",
            )
        )  # fmt: skip

    def _ping_us(self) -> int:
        minute = self._now_msc() // 60_000
        rng = np.random.default_rng([self.seed, minute, 0x9196])
        return int(rng.integers(18_000, 90_000))

    @_api("noargs", None)
    def account_info(self) -> Any:
        """The logged-in account with live profit, equity and margin."""
        book = self._book()
        now = self._now_msc()
        self.engine.sync(book, now)
        figures = self.engine.figures(book, now)
        a = book.account
        return AccountInfo(
            (
                a.login, a.trade_mode, a.leverage, a.limit_orders, a.margin_so_mode,
                a.trade_allowed and not self._investor, a.trade_expert, a.margin_mode,
                a.currency_digits, a.fifo_close, round(book.balance, a.currency_digits),
                book.credit, figures.profit, figures.equity, figures.margin, figures.margin_free,
                figures.margin_level, a.margin_so_call, a.margin_so_so, 0.0, 0.0, 0.0, 0.0, 0.0,
                a.name, a.server, a.currency, a.company,
            )
        )  # fmt: skip

    # ================================================================== symbols
    @_api("noargs", None)
    def symbols_total(self) -> int:
        """Number of all symbols the server offers (Market Watch or not)."""
        return len(self._specs)

    @_api("keywords", None)
    def symbols_get(self, *args: Any, **kwargs: Any) -> Any:
        """All symbols, or those matching ``group`` (``"*,!*USD*"`` syntax)."""
        if len(args) > 1 or (args and "group" in kwargs):
            raise Failure(-2, "Invalid arguments", value=False)
        group = args[0] if args else kwargs.get("group")
        if group is not None and (not isinstance(group, str) or utf16_len(group) > _MAX_GROUP):
            raise Failure(-2, invalid_argument("group"), value=False)
        names: Iterable[str] = self._specs
        if group is not None:
            names = filter(compile_group(group), names)
        return tuple(self._symbol_info(self._specs[n]) for n in names)

    @_api("varargs", None)
    def symbol_info(self, *args: Any) -> Any:
        """Everything about one symbol (works for symbols outside the Market Watch)."""
        if len(args) != 1:
            raise Failure(-2, "Invalid arguments")
        symbol = as_symbol("symbol_info", args[0])
        return self._symbol_info(self._spec_or_fail(symbol, -4))

    @_api("varargs", None)
    def symbol_info_tick(self, *args: Any) -> Any:
        """The latest tick of a symbol in the Market Watch."""
        if len(args) != 1:
            raise Failure(-2, "Invalid arguments")
        market = self._selected_market(as_symbol("symbol_info_tick", args[0]))
        tick = market.last_tick(self._now_msc())
        if tick is None:
            raise Failure(-1)
        return Tick(
            (int(tick[0]), float(tick[1]), float(tick[2]), float(tick[3]), int(tick[4]),
             int(tick[5]), int(tick[6]), float(tick[7]))
        )  # fmt: skip

    @_api("varargs", False)
    def symbol_select(self, *args: Any) -> bool:
        """Add (or with ``False`` remove) a symbol to/from the Market Watch."""
        if not 1 <= len(args) <= 2:
            raise Failure(-2, "Invalid arguments")
        symbol = as_symbol("symbol_select", args[0])
        enable = bool(args[1]) if len(args) == 2 else True
        self._spec_or_fail(symbol, -4)
        if enable:
            self._selected[symbol] = None
            return True
        if symbol in self._selected:
            if self._in_use(symbol):
                raise Failure(-1)
            del self._selected[symbol]
            self._books_subscribed.discard(symbol)
        return True

    def _in_use(self, symbol: str) -> bool:
        book = self._account
        if book is None:
            return False
        return any(p.symbol == symbol for p in book.positions.values()) or any(
            o.symbol == symbol for o in book.orders.values()
        )

    def _symbol_info(self, spec: SymbolSpec) -> Any:
        selected = spec.name in self._selected
        bid = ask = last = 0.0
        bidhigh = bidlow = askhigh = asklow = lasthigh = lastlow = 0.0
        tick_time = 0
        spread = 0
        session_open = session_close = 0.0
        day_volume = 0
        if selected and self._trade_server_up:
            now = self._now_msc()
            market = self._market(spec.name)
            tick = market.last_tick(now)
            if tick is not None:
                tick_time, bid, ask, last = (
                    int(tick[0]),
                    float(tick[1]),
                    float(tick[2]),
                    float(tick[3]),
                )
                spread = round((ask - bid) / spec.point)
                day = market.rates_range(
                    c.TIMEFRAME_D1, tick_time - tick_time % 86400, tick_time, now
                )
                if len(day):
                    bar = day[-1]
                    bidhigh, bidlow = float(bar["high"]), float(bar["low"])
                    askhigh = round(bidhigh + spread * spec.point, spec.digits)
                    asklow = round(bidlow + spread * spec.point, spec.digits)
                    session_open = float(bar["open"])
                    day_volume = int(bar["real_volume"])
                    if spec.has_last:
                        lasthigh, lastlow = bidhigh, bidlow
                prev = market.rates_from(c.TIMEFRAME_D1, tick_time - tick_time % 86400 - 1, 1, now)
                if len(prev):
                    session_close = float(prev[-1]["close"])
        price_change = (
            round((bid - session_close) / session_close * 100, 4) if session_close and bid else 0.0
        )
        tick_value = tick_loss = 0.0
        if self._trade_server_up:
            currency = self._currency()
            tick_value = _calc.tick_value(
                spec, account_currency=currency, quote=self.quote, suffix=self.symbol_suffix
            )
            tick_loss = _calc.tick_value(
                spec,
                account_currency=currency,
                quote=self.quote,
                loss=True,
                suffix=self.symbol_suffix,
            )
        v: dict[str, Any] = {
            "custom": False, "chart_mode": spec.chart_mode, "select": selected,
            "visible": selected, "session_deals": 0, "session_buy_orders": 0,
            "session_sell_orders": 0, "volume": day_volume if spec.has_last else 0,
            "volumehigh": 0, "volumelow": 0, "time": tick_time, "digits": spec.digits,
            "spread": spread if selected else spec.spread, "spread_float": spec.spread_float,
            "ticks_bookdepth": _BOOK_DEPTH, "trade_calc_mode": spec.calc_mode,
            "trade_mode": spec.trade_mode, "start_time": 0, "expiration_time": 0,
            "trade_stops_level": spec.stops_level, "trade_freeze_level": spec.freeze_level,
            "trade_exemode": spec.exemode, "swap_mode": spec.swap_mode,
            "swap_rollover3days": spec.swap_rollover3days, "margin_hedged_use_leg": False,
            "expiration_mode": spec.expiration_mode, "filling_mode": spec.filling_mode,
            "order_mode": spec.order_mode, "order_gtc_mode": c.SYMBOL_ORDERS_GTC,
            "option_mode": 0, "option_right": 0, "bid": bid, "bidhigh": bidhigh,
            "bidlow": bidlow, "ask": ask, "askhigh": askhigh, "asklow": asklow, "last": last,
            "lasthigh": lasthigh, "lastlow": lastlow,
            "volume_real": float(day_volume) if spec.has_last else 0.0,
            "volumehigh_real": 0.0, "volumelow_real": 0.0, "option_strike": 0.0,
            "point": spec.point, "trade_tick_value": tick_value,
            "trade_tick_value_profit": tick_value, "trade_tick_value_loss": tick_loss,
            "trade_tick_size": spec.trade_tick_size,
            "trade_contract_size": spec.contract_size, "trade_accrued_interest": 0.0,
            "trade_face_value": 0.0, "trade_liquidity_rate": 0.0,
            "volume_min": spec.volume_min, "volume_max": spec.volume_max,
            "volume_step": spec.volume_step, "volume_limit": spec.volume_limit,
            "swap_long": spec.swap_long, "swap_short": spec.swap_short,
            "margin_initial": spec.margin_initial, "margin_maintenance": spec.margin_maintenance,
            "session_volume": 0.0, "session_turnover": 0.0, "session_interest": 0.0,
            "session_buy_orders_volume": 0.0, "session_sell_orders_volume": 0.0,
            "session_open": session_open, "session_close": session_close, "session_aw": 0.0,
            "session_price_settlement": 0.0, "session_price_limit_min": 0.0,
            "session_price_limit_max": 0.0, "margin_hedged": spec.margin_hedged,
            "price_change": price_change, "price_volatility": 0.0, "price_theoretical": 0.0,
            "price_greeks_delta": 0.0, "price_greeks_theta": 0.0, "price_greeks_gamma": 0.0,
            "price_greeks_vega": 0.0, "price_greeks_rho": 0.0, "price_greeks_omega": 0.0,
            "price_sensitivity": 0.0, "basis": spec.basis, "category": spec.category,
            "currency_base": spec.currency_base, "currency_profit": spec.currency_profit,
            "currency_margin": spec.currency_margin, "bank": spec.bank,
            "description": spec.description, "exchange": spec.exchange, "formula": "",
            "isin": spec.isin, "name": spec.name, "page": spec.page, "path": spec.path,
        }  # fmt: skip
        return SymbolInfo(tuple(v[f] for f in SymbolInfo._field_names))

    def _currency(self) -> str:
        book = self._account
        if book is not None:
            return book.account.currency
        return self._accounts[self._last_account].currency

    # ================================================================== depth of market
    @_api("varargs", None)
    def market_book_add(self, *args: Any) -> bool:
        """Subscribe to the depth of market of a symbol in the Market Watch."""
        symbol = self._book_symbol("market_book_add", args)
        self._books_subscribed.add(symbol)
        return True

    @_api("varargs", None)
    def market_book_release(self, *args: Any) -> bool:
        """Cancel a depth of market subscription."""
        symbol = self._book_symbol("market_book_release", args)
        if symbol not in self._books_subscribed:
            raise Failure(-1, value=False, set_error=False)
        self._books_subscribed.discard(symbol)
        return True

    def _book_symbol(self, function: str, args: tuple[Any, ...]) -> str:
        if len(args) != 1:
            raise Failure(-2, "Invalid arguments")
        symbol = as_symbol(function, args[0])
        if symbol not in self._specs or symbol not in self._selected or not self._trade_server_up:
            # Terminal failures leave last_error() at (1, "Success"), as 5.0.6231 does.
            raise Failure(-1, value=False, set_error=False)
        return symbol

    @_api("varargs", None)
    def market_book_get(self, *args: Any) -> Any:
        """The depth of market: sell levels (highest first), then buy levels (highest first)."""
        if len(args) != 1:
            raise Failure(-2, "Invalid arguments")
        symbol = as_symbol("market_book_get", args[0])
        market = self._selected_market(symbol)
        if symbol not in self._books_subscribed:
            raise Failure(-1)
        now = self._now_msc()
        tick = market.last_tick(now)
        if tick is None:
            return ()
        spec = self._specs[symbol]
        bid, ask = float(tick[1]), float(tick[2])
        rng = np.random.default_rng([self.seed, int(tick[5]), 0xB00C])
        step = max(spec.trade_tick_size, spec.point) * max(1, spec.spread // 4)
        lots = np.round(rng.gamma(2.0, 4.0, size=2 * _BOOK_DEPTH) + spec.volume_min, 2)
        entries = []
        for i in reversed(range(_BOOK_DEPTH)):
            volume = float(lots[i])
            entries.append(
                BookInfo(
                    (c.BOOK_TYPE_SELL, round(ask + i * step, spec.digits), int(volume), volume)
                )
            )
        for i in range(_BOOK_DEPTH):
            volume = float(lots[_BOOK_DEPTH + i])
            entries.append(
                BookInfo((c.BOOK_TYPE_BUY, round(bid - i * step, spec.digits), int(volume), volume))
            )
        return tuple(entries)

    # ================================================================== rates and ticks
    def _check_count(self, count: int) -> None:
        if count >= self.maxbars:
            raise Failure(-2)
        if count < 0:
            raise Failure(-2, "Invalid arguments")

    def _capped(self, bars: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
        """Refuses ``maxbars`` bars or more; else the bars as they are (a new array from the
        market, which the caller owns)."""
        if len(bars) >= self.maxbars:
            raise Failure(-2)
        return bars

    def _check_available(self, market: MarketModel, first_s: int, last_s: int | None) -> None:
        """Fail as the terminal does when a request lies entirely outside the server's data.

        ``first_s``..``last_s`` is the span the request can return data from (``None``: open
        ended); the data runs from the symbol's history start to now.
        """
        if (last_s is not None and last_s < market.history_start) or (
            first_s * 1000 > self._now_msc()
        ):
            raise Failure(-1)

    def _copy_args(self, function: str, args: tuple[Any, ...]) -> tuple[MarketModel, Any]:
        if len(args) != 4:
            raise Failure(-2, "Invalid arguments")
        return self._selected_market(as_symbol(function, args[0])), args[1:]

    @staticmethod
    def _timeframe(function: str, value: Any) -> int:
        timeframe = as_c_int(function, value)
        if not is_timeframe(timeframe):
            raise Failure(-2, "Invalid arguments")
        return timeframe

    @_api("varargs", None)
    def copy_rates_from(self, *args: Any) -> Any:
        """``count`` bars with open time <= ``date_from``, oldest first."""
        if len(args) != 4:
            raise Failure(-2, "Invalid arguments")
        symbol = as_symbol("copy_rates_from", args[0])
        timeframe = self._timeframe("copy_rates_from", args[1])
        date_from = as_date(args[2])
        count = as_c_int("copy_rates_from", args[3])
        market = self._selected_market(symbol)
        self._check_count(count)
        self._check_available(market, market.history_start, date_from)
        return self._capped(market.rates_from(timeframe, date_from, count, self._now_msc()))

    @_api("varargs", None)
    def copy_rates_from_pos(self, *args: Any) -> Any:
        """``count`` bars from position ``start_pos`` (0 = the forming bar) into the past."""
        if len(args) != 4:
            raise Failure(-2, "Invalid arguments")
        symbol = as_symbol("copy_rates_from_pos", args[0])
        timeframe = self._timeframe("copy_rates_from_pos", args[1])
        start_pos = as_c_int("copy_rates_from_pos", args[2])
        count = as_c_int("copy_rates_from_pos", args[3])
        market = self._selected_market(symbol)
        self._check_count(count)
        if start_pos < 0:
            raise Failure(-2, "Invalid arguments")
        if start_pos + count > self.maxbars:
            raise Failure(-1)  # beyond the chart's history buffer
        return self._capped(market.rates_from_pos(timeframe, start_pos, count, self._now_msc()))

    @_api("varargs", None)
    def copy_rates_range(self, *args: Any) -> Any:
        """Bars with ``date_from <= open time <= date_to``; ``maxbars`` or more fail as a whole."""
        if len(args) != 4:
            raise Failure(-2, "Invalid arguments")
        symbol = as_symbol("copy_rates_range", args[0])
        timeframe = self._timeframe("copy_rates_range", args[1])
        date_from, date_to = as_date(args[2]), as_date(args[3])
        market = self._selected_market(symbol)
        if date_to < date_from:
            raise Failure(-2)
        self._check_available(market, date_from, date_to)
        spec = self._specs[symbol]
        nominal = (date_to - date_from) // nominal_seconds(timeframe)
        if nominal * float(spec.hours.week_mask.mean()) > 2 * self.maxbars:
            raise Failure(-2)  # far beyond maxbars bars: refuse before generating them
        return self._capped(market.rates_range(timeframe, date_from, date_to, self._now_msc()))

    @staticmethod
    def _tick_flags(function: str, value: Any) -> int:
        flags = as_c_int(function, value)
        if flags not in (c.COPY_TICKS_ALL, c.COPY_TICKS_INFO, c.COPY_TICKS_TRADE):
            raise Failure(-2, "Invalid arguments")
        return flags

    @_api("varargs", None)
    def copy_ticks_from(self, *args: Any) -> Any:
        """Up to ``count`` ticks from ``date_from`` on."""
        if len(args) != 4:
            raise Failure(-2, "Invalid arguments")
        symbol = as_symbol("copy_ticks_from", args[0])
        date_from = as_date(args[1])
        count = as_c_int("copy_ticks_from", args[2])
        flags = self._tick_flags("copy_ticks_from", args[3])
        market = self._selected_market(symbol)
        if count < 0:
            raise Failure(-2, "Invalid arguments")
        self._check_available(market, date_from, None)
        ticks = market.ticks_from(date_from * 1000, count, self._now_msc(), flags)
        return ticks if ticks.base is None else ticks.copy()

    @_api("varargs", None)
    def copy_ticks_range(self, *args: Any) -> Any:
        """Ticks with ``date_from <= time <= date_to``."""
        if len(args) != 4:
            raise Failure(-2, "Invalid arguments")
        symbol = as_symbol("copy_ticks_range", args[0])
        date_from, date_to = as_date(args[1]), as_date(args[2])
        flags = self._tick_flags("copy_ticks_range", args[3])
        market = self._selected_market(symbol)
        if date_to < date_from:
            raise Failure(-2)
        self._check_available(market, date_from, date_to)
        ticks = market.ticks_range(date_from * 1000, date_to * 1000 + 999, self._now_msc(), flags)
        return ticks if ticks.base is None else ticks.copy()

    # ================================================================== trading: reads
    @_api("noargs", None)
    def positions_total(self) -> int:
        """Number of open positions."""
        book = self._book()
        self.engine.sync(book, self._now_msc())
        return len(book.positions)

    @_api("noargs", None)
    def orders_total(self) -> int:
        """Number of active (pending) orders."""
        book = self._book()
        self.engine.sync(book, self._now_msc())
        return len(book.orders)

    @_api("keywords", None)
    def positions_get(self, *args: Any, **kwargs: Any) -> Any:
        """Open positions, filtered by ``ticket`` > ``symbol`` > ``group`` (first given wins)."""
        book = self._book()
        self.engine.sync(book, self._now_msc())
        return tuple(p.to_struct() for p in self._filter(book.positions.values(), args, kwargs))

    @_api("keywords", None)
    def orders_get(self, *args: Any, **kwargs: Any) -> Any:
        """Active orders, filtered by ``ticket`` > ``symbol`` > ``group`` (first given wins)."""
        book = self._book()
        self.engine.sync(book, self._now_msc())
        return tuple(o.to_struct() for o in self._filter(book.orders.values(), args, kwargs))

    @staticmethod
    def _filter(items: Iterable[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        if args:
            raise Failure(-2, "Unnamed arguments not allowed")
        if "ticket" in kwargs:
            ticket = check_int("ticket", kwargs["ticket"])
            return [i for i in items if i.ticket == ticket]
        if "symbol" in kwargs:
            symbol = check_str("symbol", kwargs["symbol"], _REQUEST_STR_MAX)
            return [i for i in items if i.symbol == symbol]
        if "group" in kwargs:
            match = compile_group(check_str("group", kwargs["group"], _MAX_GROUP))
            return [i for i in items if match(i.symbol)]
        return list(items)

    @_api("varargs", None)
    def history_orders_total(self, *args: Any) -> int:
        """Number of history orders with setup time in ``[date_from, date_to]``."""
        date_from, date_to = self._history_dates(args)
        book = self._book()
        self.engine.sync(book, self._now_msc())
        return sum(
            1 for o in book.history_orders if date_from <= o.time_setup_msc // 1000 <= date_to
        )

    @_api("varargs", None)
    def history_deals_total(self, *args: Any) -> int:
        """Number of deals with time in ``[date_from, date_to]``."""
        date_from, date_to = self._history_dates(args)
        book = self._book()
        self.engine.sync(book, self._now_msc())
        return sum(1 for d in book.deals if date_from <= d.time_msc // 1000 <= date_to)

    @_api("keywords", None)
    def history_orders_get(self, *args: Any, **kwargs: Any) -> Any:
        """History orders by date range (+``group``), by ``ticket`` or by ``position``."""
        book = self._book()
        self.engine.sync(book, self._now_msc())
        orders = self._history(
            book.history_orders, args, kwargs,
            by_ticket=lambda o, t: o.ticket == t,
            by_position=lambda o, p: o.position_id == p,
            time_of=lambda o: o.time_setup_msc // 1000,
        )  # fmt: skip
        return tuple(o.to_struct() for o in orders)

    @_api("keywords", None)
    def history_deals_get(self, *args: Any, **kwargs: Any) -> Any:
        """Deals by date range (+``group``), by order ``ticket`` or by ``position``."""
        book = self._book()
        self.engine.sync(book, self._now_msc())
        deals = self._history(
            book.deals, args, kwargs,
            by_ticket=lambda d, t: d.order == t,
            by_position=lambda d, p: d.position_id == p,
            time_of=lambda d: d.time_msc // 1000,
        )  # fmt: skip
        return tuple(d.to_struct() for d in deals)

    @staticmethod
    def _history_dates(args: tuple[Any, ...]) -> tuple[int, int]:
        if len(args) != 2:
            raise Failure(-2, "Invalid arguments")
        return as_date(args[0]), as_date(args[1])

    def _history(
        self,
        items: list[Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        by_ticket: Callable[[Any, int], bool],
        by_position: Callable[[Any, int], bool],
        time_of: Callable[[Any], int],
    ) -> list[Any]:
        if not args:
            if "ticket" in kwargs:
                ticket = check_int("ticket", kwargs["ticket"])
                return [i for i in items if by_ticket(i, ticket)]
            if "position" in kwargs:
                position = check_int("position", kwargs["position"])
                return [i for i in items if by_position(i, position)]
            raise Failure(-2, "Invalid arguments")
        date_from, date_to = self._history_dates(args)
        selected = [i for i in items if date_from <= time_of(i) <= date_to]
        if "group" in kwargs:
            match = compile_group(check_str("group", kwargs["group"], _MAX_GROUP))
            selected = [i for i in selected if match(i.symbol)]
        return selected

    # ================================================================== trading: calculations
    @_api("varargs", None)
    def order_calc_margin(self, *args: Any) -> float:
        """Margin in the account currency for ``volume`` lots of ``symbol`` at ``price``."""
        if len(args) != 4:
            raise Failure(-2, "Invalid arguments")
        action = as_c_int("order_calc_margin", args[0], unsigned=True)
        symbol = as_symbol("order_calc_margin", args[1])
        volume = as_c_double("order_calc_margin", args[2])
        price = as_c_double("order_calc_margin", args[3])
        book = self._book()
        spec = self._spec_or_fail(symbol)
        if action > c.ORDER_TYPE_SELL_STOP_LIMIT:
            raise Failure(-2)
        value = _calc.margin(
            spec, action, volume, price,
            leverage=book.account.leverage, account_currency=book.account.currency,
            quote=self.quote, suffix=self.symbol_suffix,
        )  # fmt: skip
        if value is None:
            raise Failure(-1)
        return round(value, book.account.currency_digits)

    @_api("varargs", None)
    def order_calc_profit(self, *args: Any) -> float:
        """Profit in the account currency of a buy/sell from ``price_open`` to ``price_close``."""
        if len(args) != 5:
            raise Failure(-2, "Invalid arguments")
        action = as_c_int("order_calc_profit", args[0], unsigned=True)
        symbol = as_symbol("order_calc_profit", args[1])
        volume = as_c_double("order_calc_profit", args[2])
        price_open = as_c_double("order_calc_profit", args[3])
        price_close = as_c_double("order_calc_profit", args[4])
        book = self._book()
        spec = self._spec_or_fail(symbol)
        if action not in (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL):
            raise Failure(-2)
        value = _calc.profit(
            spec, action, volume, price_open, price_close,
            account_currency=book.account.currency, quote=self.quote, suffix=self.symbol_suffix,
        )  # fmt: skip
        if value is None:
            raise Failure(-1)
        return round(value, book.account.currency_digits)

    # ================================================================== trading: requests
    @_api("keywords", None)
    def order_check(self, *args: Any, **kwargs: Any) -> Any:
        """Check a trade request (funds, volumes, stops) without sending it."""
        request = _parse_request(args, kwargs)
        book = self._book()
        return self.engine.check(book, request, self._now_msc())

    @_api("keywords", None)
    def order_send(self, *args: Any, **kwargs: Any) -> Any:
        """Send a trade request to the trade server."""
        request = _parse_request(args, kwargs)
        if self.tradeapi_disabled:
            raise Failure(-8)
        book = self._book()
        if self._investor:
            return OrderSendResult(
                (c.TRADE_RETCODE_TRADE_DISABLED, 0, 0, 0.0, 0.0, 0.0, 0.0,
                 "Trade disabled", 0, 0, request)
            )  # fmt: skip
        return self.engine.send(book, request, self._now_msc())

    def __repr__(self) -> str:
        state = "connected" if self._pipe else "not connected"
        return f"<SimTerminal seed={self.seed} {state} symbols={len(self._specs)} {self.clock!r}>"


_REQUEST_INTS: Final = (
    "action", "magic", "order", "deviation", "type", "type_filling", "type_time", "expiration",
    "position", "position_by",
)  # fmt: skip
_REQUEST_FLOATS: Final = ("volume", "price", "stoplimit", "sl", "tp")
_REQUEST_STRS: Final = ("symbol", "comment")


def _parse_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A ``TradeRequest`` from ``order_send``/``order_check`` arguments, as 5.0.6231 parses them.

    One positional dict (or subclass) or keyword fields, never both; unknown keys are ignored,
    missing ones default to 0 / 0.0 / "". Ints must be ``int`` (bool passes), prices and volumes
    ``float`` (subclasses such as ``numpy.float64`` pass, ``int`` does not), strings at most 29
    UTF-16 units.
    """
    if args and kwargs:
        raise Failure(-2, "Unnamed arguments not allowed")
    if len(args) > 1 or (not args and not kwargs):
        raise Failure(-2, "Invalid number of arguments")
    if args and not isinstance(args[0], dict):
        raise Failure(-2, "Invalid arguments")
    fields: dict[str, Any] = args[0] if args else kwargs
    values: dict[str, Any] = {}
    for key in _REQUEST_INTS:
        value = fields.get(key, 0)
        if not isinstance(value, int) or not -(2**63) <= value < 2**64:
            raise Failure(-2, invalid_argument(key))
        values[key] = int(value)
    for key in _REQUEST_FLOATS:
        value = fields.get(key, 0.0)
        if not isinstance(value, float):
            raise Failure(-2, invalid_argument(key))
        values[key] = float(value)
    for key in _REQUEST_STRS:
        value = fields.get(key, "")
        if not isinstance(value, str) or utf16_len(value) > _REQUEST_STR_MAX:
            raise Failure(-2, invalid_argument(key))
        values[key] = value
    return TradeRequest(tuple(values[f] for f in TradeRequest._field_names))
