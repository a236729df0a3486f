"""Recorded markets: a ``SimTerminal`` serving real bars (and ticks) instead of its random walk.

A ``Recording`` holds, per symbol, M1 bars (``copy_rates_*`` rows) and optionally ticks, read
from a ``HistoryStore`` or from the files ``aiomt5 rates/ticks --out`` writes (Parquet, CSV).
``Recording.terminal()`` builds a terminal whose market is the recording:

* **Bars** are the recorded M1 rows, served as they are; higher timeframes aggregate them
  exactly like the generated market does (open first, high max, low min, close last, volumes
  summed, spread the minimum). A minute trades when it has a recorded bar (or tick).
* **Ticks** are the recorded ones where there are any. Otherwise they are synthesised inside each
  bar by the generator's tick model, constrained by the bar: the first tick is at the open, the
  last at the close, one at the high and one at the low, the spread never below the bar's; their
  timing and the path between are drawn from ``(seed, symbol, day)``, so the same seed gives the
  same ticks. A bar with fewer than 4 recorded ticks gets 4 (open, high, low, close).
* **Trading** reads these ticks: market orders fill at the replayed bid/ask (the recorded
  spread), and SL/TP and pending orders trigger on them.
* **Specs** come from the recording where it holds the symbol's ``symbol_info`` (a
  ``symbol_info.json`` beside the store's series, written by ``save_symbol_info``, or a ``.json``
  file among the data files): contract size, currencies, digits, volume limits, stops level,
  swaps, margins. Otherwise from the catalogue where the name (or the name without a broker
  suffix) is known; an unknown symbol gets a spec inferred from the recording (digits from the
  prices, FX currencies from a six-letter name, typical spread).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from aiomt5._mt5 import constants as c
from aiomt5._mt5.structs import RATES_DTYPE, TICKS_DTYPE

from ._market import HistoryCache, MarketModel, _Bars, _DayTicks
from ._spec import SymbolSpec, TradingHours
from ._symbols import CATALOGUE

if TYPE_CHECKING:
    from ._clock import SimClock
    from ._terminal import SimTerminal

__all__ = ["RecordedMarket", "RecordedSeries", "Recording", "RecordingError", "save_symbol_info"]

Packed = npt.NDArray[np.void]
I64 = npt.NDArray[np.int64]

_DAY_S: Final = 86_400
_DAY_MS: Final = 86_400_000
_MINUTE_MS: Final = 60_000
# The tick model needs four key ticks per bar: open, high, low, close.
_MIN_TICKS: Final = 4
SYMBOL_INFO_FILE: Final = "symbol_info.json"
# MetaTrader5 ``symbol_info`` fields -> ``SymbolSpec`` fields, for specs taken from a recording.
_INFO_TO_SPEC: Final = {
    "digits": "digits", "trade_contract_size": "contract_size", "trade_calc_mode": "calc_mode",
    "trade_mode": "trade_mode", "trade_exemode": "exemode", "chart_mode": "chart_mode",
    "filling_mode": "filling_mode", "order_mode": "order_mode",
    "expiration_mode": "expiration_mode", "volume_min": "volume_min",
    "volume_max": "volume_max", "volume_step": "volume_step", "volume_limit": "volume_limit",
    "spread_float": "spread_float", "trade_stops_level": "stops_level",
    "trade_freeze_level": "freeze_level", "swap_mode": "swap_mode", "swap_long": "swap_long",
    "swap_short": "swap_short", "swap_rollover3days": "swap_rollover3days",
    "margin_initial": "margin_initial", "margin_maintenance": "margin_maintenance",
    "margin_hedged": "margin_hedged", "trade_tick_size": "tick_size",
    "currency_base": "currency_base", "currency_profit": "currency_profit",
    "currency_margin": "currency_margin", "description": "description", "path": "path",
    "category": "category", "exchange": "exchange", "isin": "isin", "bank": "bank",
    "basis": "basis", "page": "page",
}  # fmt: skip
_RATE_COLUMNS: Final = frozenset(RATES_DTYPE.names or ())
_TICK_COLUMNS: Final = frozenset(TICKS_DTYPE.names or ())


class RecordingError(ValueError):
    """A recording cannot be replayed (missing, empty, not M1, unreadable); the text says why."""


@dataclass(frozen=True)
class RecordedSeries:
    """One symbol's recorded market.

    Attributes:
        symbol: The broker's symbol name.
        bars: M1 bars (``RATES_DTYPE``), oldest first, one per minute; built from ``ticks``
            when only ticks were recorded.
        ticks: Recorded ticks (``TICKS_DTYPE``), oldest first, or None (synthesised from bars).
    """

    symbol: str
    bars: Packed
    ticks: Packed | None = None
    info: Mapping[str, Any] | None = None
    """The symbol's recorded ``symbol_info()`` fields, if any (its spec comes from them)."""

    @property
    def first(self) -> int:
        """Open time of the first bar, epoch seconds."""
        return int(self.bars["time"][0])

    @property
    def last(self) -> int:
        """Open time of the last bar, epoch seconds."""
        return int(self.bars["time"][-1])


def _check_m1(symbol: str, bars: Packed, where: str) -> Packed:
    if not len(bars):
        raise RecordingError(f"{where}: no bars of {symbol} to replay")
    bars = np.sort(bars, order="time", kind="stable")
    times = bars["time"].astype(np.int64)
    keep = np.ones(len(bars), dtype=np.bool_)
    keep[:-1] = times[1:] != times[:-1]  # the later row of a repeated time wins
    bars, times = bars[keep], times[keep]
    if (times % 60).any() or (len(times) > 1 and int(np.diff(times).min()) != 60):
        gap = int(np.diff(times).min()) if len(times) > 1 else 0
        raise RecordingError(
            f"{where}: {symbol} is not M1 (bars {gap} s apart or not on a minute); replay "
            "needs M1 bars (record them with HistoryStore.update(..., 'M1', ...) or "
            "`aiomt5 rates SYMBOL M1 --out FILE`)"
        )
    return bars


def _bars_from_ticks(ticks: Packed, has_last: bool) -> Packed:
    """M1 bars aggregated from ticks (chart price: bid, or last for exchange instruments)."""
    price = ticks["last"] if has_last else ticks["bid"]
    minutes = ticks["time_msc"].astype(np.int64) // _MINUTE_MS
    starts = np.flatnonzero(np.concatenate(([True], minutes[1:] != minutes[:-1])))
    lasts = np.concatenate((starts[1:] - 1, [len(ticks) - 1]))
    bars = np.zeros(len(starts), dtype=RATES_DTYPE)
    bars["time"] = minutes[starts] * 60
    bars["open"] = price[starts]
    bars["high"] = np.maximum.reduceat(price, starts)
    bars["low"] = np.minimum.reduceat(price, starts)
    bars["close"] = price[lasts]
    bars["tick_volume"] = np.diff(np.append(starts, len(ticks)))
    bars["real_volume"] = np.add.reduceat(ticks["volume"].astype(np.int64), starts)
    bid = ticks["bid"].astype(np.float64)
    points = np.rint((ticks["ask"] - bid) * 10.0 ** _digits_of(bid)).astype(np.int64)
    bars["spread"] = np.minimum.reduceat(points, starts)
    return bars


def _digits_of(prices: npt.NDArray[np.float64]) -> int:
    """The fewest decimals that write every price exactly (0..8)."""
    sample = prices[:: max(1, len(prices) // 5000)]
    for digits in range(9):
        scale = 10.0**digits
        if np.all(np.abs(np.round(sample * scale) - sample * scale) < 1e-6):
            return digits
    return 8


def _spec_for(symbol: str, bars: Packed, info: Mapping[str, Any] | None = None) -> SymbolSpec:
    """The symbol's spec: recorded, the catalogue's (by name, or without a suffix) or inferred."""
    spec = _catalogue_or_inferred(symbol, bars)
    if not info:
        return spec
    recorded = {_INFO_TO_SPEC[k]: v for k, v in info.items() if k in _INFO_TO_SPEC}
    if info.get("chart_mode") is not None:
        recorded["has_last"] = int(info["chart_mode"]) == c.SYMBOL_CHART_MODE_LAST
    try:
        return dataclasses.replace(spec, **recorded)
    except (TypeError, ValueError) as exc:
        raise RecordingError(f"{symbol}: unusable recorded symbol_info ({exc})") from None


def _catalogue_or_inferred(symbol: str, bars: Packed) -> SymbolSpec:
    by_name = {spec.name: spec for spec in CATALOGUE}
    known = by_name.get(symbol) or next(
        (by_name[n] for n in sorted(by_name, key=len, reverse=True) if symbol.startswith(n)), None
    )
    prices = np.concatenate([bars[name] for name in ("open", "high", "low", "close")])
    digits = _digits_of(prices.astype(np.float64))
    spreads = bars["spread"].astype(np.int64)
    spread = max(1, int(np.median(spreads))) if len(spreads) else 1
    first_price = float(bars["open"][0])
    if first_price <= 0:
        raise RecordingError(f"{symbol}: the first open price is {first_price}; prices must be > 0")
    changes: dict[str, Any] = {
        "name": symbol,
        "digits": digits if known is None else max(digits, known.digits),
        "spread": spread,
        "hours": TradingHours.always(),  # openness comes from the recording itself
        "base_price": first_price,
    }
    if known is not None:
        return dataclasses.replace(known, **changes)
    fx = len(symbol) >= 6 and symbol[:6].isalpha() and symbol[:6].isupper()
    base, quote = (symbol[:3], symbol[3:6]) if fx else ("USD", "USD")
    return SymbolSpec(
        description=f"{symbol} (recorded)",
        path=f"Recorded\\{symbol}",
        currency_base=base,
        currency_profit=quote,
        currency_margin=base,
        contract_size=100_000.0 if fx else 1.0,
        calc_mode=c.SYMBOL_CALC_MODE_FOREX if fx else c.SYMBOL_CALC_MODE_CFD,
        **changes,
    )


class RecordedMarket(MarketModel):
    """A ``MarketModel`` whose M1 bars (and ticks, if recorded) come from a recording.

    Everything built on M1 (higher timeframes, the forming bar, synthesised ticks, "now") is the
    generated market's own code, so the two behave alike; only the source differs.
    """

    def __init__(
        self,
        spec: SymbolSpec,
        seed: int,
        series: RecordedSeries,
        *,
        history_cache: HistoryCache | None = None,
    ) -> None:
        super().__init__(spec, seed, history_start=series.first, history_cache=history_cache)
        bars = series.bars
        self._recorded = _Bars(
            bars["time"].astype(np.int64),
            bars["open"].astype(np.float64),
            bars["high"].astype(np.float64),
            bars["low"].astype(np.float64),
            bars["close"].astype(np.float64),
            bars["tick_volume"].astype(np.int64),
            bars["spread"].astype(np.int64),
            bars["real_volume"].astype(np.int64),
        )
        self._packed = np.ascontiguousarray(bars.astype(RATES_DTYPE, copy=False))
        self._minutes: I64 = self._recorded.time // 60
        self._days: I64 = np.unique(self._recorded.time // _DAY_S)
        self._ticks = series.ticks
        self.series: Final = series

    @staticmethod
    def _member(sorted_values: I64, value: int) -> bool:
        k = int(np.searchsorted(sorted_values, value))
        return k < len(sorted_values) and int(sorted_values[k]) == value

    def _minute_open(self, minute: int) -> bool:
        return self._member(self._minutes, minute)

    def _day_trades(self, day: int) -> bool:
        return self._member(self._days, day)

    def opens_at(self, epoch: float) -> float | None:
        """The first instant at or after ``epoch`` in a recorded minute (None: after the last).

        Between recorded minutes (a weekend, a night, a quiet minute) the market is closed.
        """
        minute = int(epoch // 60)
        k = int(np.searchsorted(self._minutes, minute, "left"))
        if k == len(self._minutes):
            return None
        first = int(self._minutes[k])
        return epoch if first == minute else float(first * 60)

    def _trading_days(self, first: int, last: int) -> I64:
        lo = int(np.searchsorted(self._days, first, "left"))
        hi = int(np.searchsorted(self._days, last, "right"))
        return self._days[lo:hi]

    def _tick_counts(self, bars: _Bars) -> I64:
        counts: I64 = np.maximum(bars.tick_volume, _MIN_TICKS)
        return counts

    def _m1_parts(self, first_minute: int, last_minute: int, *, keep: bool = True) -> Any:
        if last_minute < first_minute:
            return iter(())
        return iter((self._recorded.between(first_minute * 60, last_minute * 60),))

    def rates_from_pos(self, timeframe: int, start_pos: int, count: int, now_msc: int) -> Packed:
        """``MarketModel.rates_from_pos``, with a short path for M1 (what a bot polls).

        The recorded rows are sliced as they are, plus the bar forming at now: the same bars
        the general path builds (the tests compare the two), at a fraction of the cost.
        """
        if timeframe != c.TIMEFRAME_M1 or start_pos < 0 or count < 0:
            return super().rates_from_pos(timeframe, start_pos, count, now_msc)
        complete = int(np.searchsorted(self._minutes, now_msc // _MINUTE_MS, "left"))
        forming = self._forming_m1(now_msc)
        total = complete + len(forming)
        hi = max(total - start_pos, 0)
        lo = max(hi - count, 0)
        out = np.empty(hi - lo, dtype=RATES_DTYPE)
        upto = min(hi, complete)
        out[: max(upto - lo, 0)] = self._packed[lo:upto]
        if hi > complete:
            forming.pack_into(out[complete - lo :])
        return out

    def _generate_ticks(self, day: int) -> _DayTicks:
        if self._ticks is None:
            return super()._generate_ticks(day)
        times = self._ticks["time_msc"]
        lo = int(np.searchsorted(times, day * _DAY_MS, "left"))
        hi = int(np.searchsorted(times, (day + 1) * _DAY_MS, "left"))
        ticks = self._ticks[lo:hi].copy()
        bid = ticks["bid"].astype(np.float64)
        price = ticks["last"].astype(np.float64) if self.spec.has_last else bid
        spread = np.rint((ticks["ask"] - bid) / self.spec.point).astype(np.int64)
        return _DayTicks(
            ticks,
            ticks["time_msc"].astype(np.int64),
            price,
            spread,
            ticks["volume"].astype(np.int64),
        )


class Recording:
    """Recorded markets of one or more symbols, ready to be served by a ``SimTerminal``.

    Args:
        series: The symbols' recordings.

    Raises:
        RecordingError: No series, or a symbol twice.
    """

    def __init__(self, series: Iterable[RecordedSeries]) -> None:
        self.series: dict[str, RecordedSeries] = {}
        for one in series:
            if one.symbol in self.series:
                raise RecordingError(f"{one.symbol} is recorded twice; give each symbol once")
            self.series[one.symbol] = one
        if not self.series:
            raise RecordingError("the recording holds no symbol")
        self.specs: dict[str, SymbolSpec] = {
            name: _spec_for(name, one.bars, one.info) for name, one in self.series.items()
        }

    def __repr__(self) -> str:
        return f"Recording({', '.join(self.series)}; {self.describe_span()})"

    @property
    def first(self) -> int:
        """The earliest recorded bar (epoch seconds)."""
        return min(one.first for one in self.series.values())

    @property
    def last(self) -> int:
        """The latest recorded bar (epoch seconds)."""
        return max(one.last for one in self.series.values())

    def describe_span(self) -> str:
        """The recorded span, for messages."""
        from datetime import UTC, datetime

        first = datetime.fromtimestamp(self.first, UTC).strftime("%Y-%m-%d %H:%M")
        last = datetime.fromtimestamp(self.last, UTC).strftime("%Y-%m-%d %H:%M")
        return f"{first} .. {last} UTC"

    def market(self, spec: SymbolSpec, seed: int, history_cache: HistoryCache) -> MarketModel:
        """The market of ``spec`` (a ``SimTerminal`` ``market_source``)."""
        return RecordedMarket(spec, seed, self.series[spec.name], history_cache=history_cache)

    def terminal(
        self, *, seed: int = 0, clock: SimClock | None = None, **options: Any
    ) -> SimTerminal:
        """A ``SimTerminal`` offering exactly the recorded symbols, all in the Market Watch.

        Args:
            seed: Seed of the synthesised ticks (and of the rest of the simulation).
            clock: The terminal's clock (default: frozen at the first recorded bar).
            **options: More ``SimTerminal`` arguments (``accounts``, ``ipc_seconds`` ...).
        """
        from ._clock import SimClock
        from ._terminal import SimTerminal

        return SimTerminal(
            seed,
            clock=clock if clock is not None else SimClock.fixed(self.first),
            symbols=self.specs.values(),
            market_watch=list(self.specs),
            market_source=self.market,
            **options,
        )

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_store(
        cls,
        store: Any,
        *,
        server: str | None = None,
        symbols: Iterable[str] | None = None,
    ) -> Recording:
        """The M1 series of a ``HistoryStore`` (or its directory).

        Args:
            store: A ``HistoryStore`` or the path of one.
            server: Take the series of this trade server (needed when several are stored).
            symbols: Only these symbols (default: every M1 series).

        Raises:
            RecordingError: Nothing to replay, or the server is ambiguous.
        """
        from aiomt5._market._store import HistoryStore

        if not isinstance(store, HistoryStore):
            path = Path(store).expanduser()
            if not path.is_dir():
                raise RecordingError(f"{path}: no such HistoryStore directory")
            store = HistoryStore(path)
        keys = [k for k in store.keys() if k.timeframe.name == "M1"]  # noqa: SIM118
        if server is not None:
            keys = [k for k in keys if k.server == server]
        wanted = set(symbols) if symbols is not None else None
        if wanted is not None:
            keys = [k for k in keys if k.symbol in wanted]
            missing = wanted - {k.symbol for k in keys}
            stored = {k.symbol for k in store.keys()}  # noqa: SIM118  # a store is no mapping
            if missing:
                raise RecordingError(
                    f"{store}: no M1 bars of {sorted(missing)}; stored: {sorted(stored)}"
                )
        if not keys:
            raise RecordingError(
                f"{store}: no M1 series{f' of server {server!r}' if server else ''} to replay; "
                "record some with HistoryStore.update(mt5, symbol, 'M1', start=...)"
            )
        servers = sorted({k.server for k in keys})
        if len(servers) > 1:
            raise RecordingError(
                f"{store} holds several servers {servers}: choose one with server=... (--server)"
            )
        series = []
        for k in keys:
            bars = _check_m1(k.symbol, store.read(k.server, k.symbol, k.timeframe), str(store))
            info_file = store.directory(k.server, k.symbol, k.timeframe).parent / SYMBOL_INFO_FILE
            series.append(RecordedSeries(k.symbol, bars, info=_read_info(info_file)))
        return cls(series)

    @classmethod
    def from_files(cls, files: Iterable[str | os.PathLike[str]] | Mapping[str, Any]) -> Recording:
        """Bars and ticks written by ``aiomt5 rates/ticks --out`` (``.parquet`` or ``.csv``).

        Args:
            files: Paths, each ``SYMBOL=path`` or a path whose name starts with the symbol
                (``EURUSD.parquet``, ``EURUSD_M1.csv``); or a mapping symbol -> path or list of
                paths. A symbol may have a bars file, a ticks file, or both.

        Raises:
            RecordingError: A file is missing, unreadable, or neither bars nor ticks.
        """
        grouped: dict[str, list[Path]] = {}
        if isinstance(files, Mapping):
            for symbol, paths in files.items():
                many = paths if isinstance(paths, list | tuple) else [paths]
                grouped.setdefault(symbol, []).extend(Path(p) for p in many)
        else:
            for entry in files:
                text = os.fspath(entry)
                symbol, sep, rest = text.partition("=")
                if sep and symbol and "/" not in symbol and os.sep not in symbol:
                    path = Path(rest)
                else:
                    path = Path(text)
                    symbol = path.name.split(".")[0].split("_")[0]
                grouped.setdefault(symbol, []).append(path)
        series = []
        for symbol, paths in grouped.items():
            bars: Packed | None = None
            ticks: Packed | None = None
            info: dict[str, Any] | None = None
            for path in paths:
                if path.suffix.lower() == ".json":
                    info = _read_info(path.expanduser(), required=True)
                    continue
                kind, array = _read_file(path.expanduser())
                if kind == "bars":
                    bars = array if bars is None else np.concatenate([bars, array])
                else:
                    ticks = array if ticks is None else np.concatenate([ticks, array])
            if ticks is not None:
                ticks = ticks[np.argsort(ticks["time_msc"], kind="stable")]
            if bars is None:
                if ticks is None:
                    raise RecordingError(f"{symbol}: a symbol_info file but no bars or ticks")
                known = next((s for s in CATALOGUE if s.name == symbol), None)
                bars = _bars_from_ticks(ticks, known is not None and known.has_last)
            checked = _check_m1(symbol, bars, str(paths[0]))
            series.append(RecordedSeries(symbol, checked, ticks, info))
        return cls(series)


def _read_info(path: Path, *, required: bool = False) -> dict[str, Any] | None:
    """A recorded ``symbol_info`` (JSON object of its fields), or None when there is none."""
    if not path.is_file():
        if required:
            raise RecordingError(f"{path}: no such file")
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{path}: not a readable symbol_info JSON file ({exc})") from None
    if not isinstance(info, dict):
        raise RecordingError(f"{path}: expected a JSON object of symbol_info fields")
    return info


def save_symbol_info(store: Any, server: str, info: Any) -> Path:
    """Record a symbol's ``symbol_info()`` beside its series in a ``HistoryStore``.

    A replay then takes the symbol's spec from it (contract size, currencies, volume limits...).

    Args:
        store: The ``HistoryStore``.
        server: The trade server (``account_info().server``).
        info: ``symbol_info(symbol)``'s result (a struct with ``_asdict()``) or a mapping.

    Returns:
        The file written.
    """
    fields = dict(info._asdict() if hasattr(info, "_asdict") else info)
    folder: Path = store.directory(server, str(fields["name"]), "M1").parent
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SYMBOL_INFO_FILE
    plain = {k: v for k, v in fields.items() if isinstance(v, str | int | float | bool)}
    path.write_text(json.dumps(plain, indent=1, sort_keys=True), encoding="utf-8")
    return path


def _read_columns(path: Path) -> dict[str, npt.NDArray[Any]]:
    if not path.is_file():
        raise RecordingError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise RecordingError(
                f"{path}: reading .parquet needs pyarrow (pip install pyarrow)"
            ) from None
        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001  # pyarrow raises many kinds
            raise RecordingError(f"{path}: not a readable Parquet file ({exc})") from None
        return {name: table.column(name).to_numpy() for name in table.column_names}
    if suffix == ".csv":
        try:
            data = np.genfromtxt(path, delimiter=",", names=True, dtype=np.float64)
        except ValueError as exc:
            raise RecordingError(f"{path}: not a readable CSV file ({exc})") from None
        rows: Any = np.atleast_1d(data)
        return {name: rows[name] for name in rows.dtype.names or ()}
    raise RecordingError(
        f"{path}: use .parquet or .csv files (as `aiomt5 rates/ticks --out` write)"
    )


def _read_file(path: Path) -> tuple[str, Packed]:
    """("bars" | "ticks", the rows) of one file."""
    columns = _read_columns(path)
    names = set(columns)
    if names >= _RATE_COLUMNS:
        dtype, kind = RATES_DTYPE, "bars"
    elif {"time_msc", "bid", "ask"} <= names:
        dtype, kind = TICKS_DTYPE, "ticks"
    else:
        raise RecordingError(
            f"{path}: neither bars ({', '.join(RATES_DTYPE.names or ())}) nor ticks "
            f"(time_msc, bid, ask ...); found columns {sorted(names)}"
        )
    rows = np.zeros(len(next(iter(columns.values()))), dtype=dtype)
    for name in dtype.names or ():
        if name in columns:
            values = columns[name]
            if np.issubdtype(rows.dtype[name], np.integer):
                values = np.rint(values.astype(np.float64)).astype(np.int64)
            rows[name] = values
    if kind == "ticks" and "time" not in names:
        rows["time"] = rows["time_msc"] // 1000
    if kind == "bars" and not math.isfinite(float(rows["open"].sum())):
        raise RecordingError(f"{path}: bars with missing prices")
    return kind, rows
