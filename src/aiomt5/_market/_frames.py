"""MetaTrader5 rate and tick arrays as pandas or polars data frames, without per-row Python work.

MT5 arrays are packed structured arrays (60-byte rows), so a column is a strided view: each
column is copied once into its own contiguous buffer with one vectorised numpy copy, and the
frame libraries take those buffers as they are (polars zero-copy; pandas builds its blocks from
them). Epoch columns are reinterpreted as ``datetime64`` without conversion (the same int64
values) and marked UTC.

* rates: index (pandas) / first column (polars) ``time``, bar open time, UTC, second
  precision; the other columns keep MT5's names and dtypes.
* ticks: ``time`` from ``time_msc`` (millisecond precision, UTC); ``time_msc`` stays as an int
  column (it is the natural cursor); MT5's second-resolution ``time`` column is dropped.

``fetch_rates_frame``/``fetch_ticks_frame`` download with paging and build the frame straight
from the pages, so a large download is copied once (into the columns), not twice.

pandas and polars are optional (extras ``aiomt5[pandas]``, ``aiomt5[polars]``); asking for one
that is not installed raises ``MT5ConfigurationError`` saying what to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from aiomt5._core._errors import MT5ConfigurationError, MT5InvalidArgumentError
from aiomt5._core._types import USE_DEFAULT, TimeoutArg
from aiomt5._mt5.dtypes import RATES_DTYPE, TICKS_DTYPE

from ._history import (
    ProgressCallback,
    TickFlagsLike,
    rate_pages,
    tick_pages,
)
from ._timeframe import TimeframeLike

if TYPE_CHECKING:
    from aiomt5._connector import AsyncMT5Connector

__all__ = [
    "FrameEngine",
    "fetch_rates_frame",
    "fetch_ticks_frame",
    "rates_to_frame",
    "resolve_engine",
    "ticks_to_frame",
]

FrameEngine = Literal["pandas", "polars"]
"""The data frame libraries a frame can be built with."""

_ENGINES: Final[tuple[FrameEngine, ...]] = ("pandas", "polars")
_RATES_FIELDS: Final = frozenset({"time", "open", "high", "low", "close"})
_TICKS_FIELDS: Final = frozenset({"time_msc", "bid", "ask"})


def _importable(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def resolve_engine(engine: FrameEngine | None) -> FrameEngine:
    """The engine to use: the one asked for, else pandas if installed, else polars.

    Raises:
        MT5ConfigurationError: The engine (or, for None, either) is not installed.
        MT5InvalidArgumentError: Not ``"pandas"``, ``"polars"`` or None.
    """
    if engine is None:
        for name in _ENGINES:
            if _importable(name) is not None:
                return name
        raise MT5ConfigurationError(
            "data frames need pandas or polars: pip install 'aiomt5[pandas]' "
            "(or 'aiomt5[polars]'), or use the numpy arrays directly"
        )
    if engine not in _ENGINES:
        raise MT5InvalidArgumentError(f"engine must be 'pandas', 'polars' or None, got {engine!r}")
    if _importable(engine) is None:
        raise MT5ConfigurationError(
            f"engine={engine!r} is not installed: pip install 'aiomt5[{engine}]' "
            "(or pick the other engine)"
        )
    return engine


def _check(array: object, needed: frozenset[str], what: str) -> npt.NDArray[np.void]:
    names = getattr(getattr(array, "dtype", None), "names", None)
    if not isinstance(array, np.ndarray) or names is None or not needed <= set(names):
        raise MT5InvalidArgumentError(
            f"expected MetaTrader5's {what} array (a structured array with fields "
            f"{', '.join(sorted(needed))}), got {type(array).__name__}"
        )
    return array


def _column(pages: Sequence[npt.NDArray[np.void]], name: str) -> npt.NDArray[Any]:
    # One vectorised copy per column, straight out of the packed rows of every page.
    if len(pages) == 1:
        return np.ascontiguousarray(pages[0][name])
    return np.concatenate([page[name] for page in pages])


def _columns(pages: Sequence[npt.NDArray[np.void]], skip: str) -> dict[str, npt.NDArray[Any]]:
    names = pages[0].dtype.names or ()
    return {name: _column(pages, name) for name in names if name != skip}


def _frame(
    epoch: npt.NDArray[np.int64],
    unit: Literal["s", "ms"],
    columns: dict[str, npt.NDArray[Any]],
    engine: FrameEngine,
) -> Any:
    if engine == "pandas":
        pd = importlib.import_module("pandas")
        # A view: the same int64 values read as datetime64 (no conversion pass).
        index = pd.DatetimeIndex(epoch.view(f"datetime64[{unit}]"), name="time")
        return pd.DataFrame(columns, index=index.tz_localize("UTC"), copy=False)
    pl = importlib.import_module("polars")
    # polars has no second resolution: bars go to milliseconds (one vectorised multiply).
    millis = epoch if unit == "ms" else epoch * 1000
    series = [pl.Series("time", millis).cast(pl.Datetime("ms", "UTC"))]
    series.extend(pl.Series(name, values) for name, values in columns.items())
    return pl.DataFrame(series)


def rates_to_frame(array: npt.NDArray[np.void], engine: FrameEngine | None = None) -> Any:
    """A ``copy_rates_*`` array as a data frame with a UTC ``time`` index (pandas) or column.

    Args:
        array: MetaTrader5's rates array (e.g. from ``fetch_rates``).
        engine: ``"pandas"``, ``"polars"``, or None (pandas if installed, else polars).

    Raises:
        MT5ConfigurationError: The engine is not installed.
        MT5InvalidArgumentError: ``array`` is not a rates array.
    """
    return _rates_frame([_check(array, _RATES_FIELDS, "rates")], resolve_engine(engine))


def _rates_frame(pages: Sequence[npt.NDArray[np.void]], engine: FrameEngine) -> Any:
    return _frame(_column(pages, "time"), "s", _columns(pages, "time"), engine)


class _ColumnSink:
    """Copies pages into column buffers as they arrive (a ``PageSink``).

    With a known upper bound the buffers are allocated once (untouched memory past the end is
    never written, so the OS does not commit it) and every page is copied once, while the next
    page downloads. Without one, the pages are joined at the end instead.
    """

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self._dtype = dtype
        self._buffers: dict[str, npt.NDArray[Any]] | None = None
        self._capacity = 0
        self.rows = 0

    def reserve(self, rows: int) -> None:
        names = self._dtype.names or ()
        self._buffers = {name: np.empty(rows, dtype=self._dtype[name]) for name in names}
        self._capacity = rows

    def add(self, page: npt.NDArray[np.void]) -> None:
        buffers = self._buffers
        end = self.rows + len(page)
        if buffers is None or end > self._capacity:
            self._buffers = None  # no (or a wrong) bound: fall back to joining the pages
            return
        for name, buffer in buffers.items():
            buffer[self.rows : end] = page[name]
        self.rows = end

    def columns(self, pages: Sequence[npt.NDArray[np.void]]) -> dict[str, npt.NDArray[Any]]:
        """The columns of ``pages`` (the sink's buffers when it saw every page)."""
        buffers = self._buffers
        if buffers is not None and self.rows == sum(len(page) for page in pages):
            return {name: buffer[: self.rows] for name, buffer in buffers.items()}
        if not pages:
            pages = [np.empty(0, dtype=self._dtype)]
        return {name: _column(pages, name) for name in self._dtype.names or ()}


def ticks_to_frame(array: npt.NDArray[np.void], engine: FrameEngine | None = None) -> Any:
    """A ``copy_ticks_*`` array as a data frame with a UTC millisecond ``time`` index or column.

    Args:
        array: MetaTrader5's ticks array (e.g. from ``fetch_ticks``).
        engine: ``"pandas"``, ``"polars"``, or None (pandas if installed, else polars).

    Raises:
        MT5ConfigurationError: The engine is not installed.
        MT5InvalidArgumentError: ``array`` is not a ticks array.
    """
    return _ticks_frame([_check(array, _TICKS_FIELDS, "ticks")], resolve_engine(engine))


def _ticks_frame(pages: Sequence[npt.NDArray[np.void]], engine: FrameEngine) -> Any:
    return _frame(_column(pages, "time_msc"), "ms", _columns(pages, "time"), engine)


async def fetch_rates_frame(
    connector: AsyncMT5Connector,
    symbol: str,
    timeframe: TimeframeLike,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    *,
    count: int | None = None,
    start_pos: int | None = None,
    engine: FrameEngine | None = None,
    progress: ProgressCallback | None = None,
    page_size: int | None = None,
    timeout: TimeoutArg = USE_DEFAULT,
) -> Any:
    """``fetch_rates`` as a frame (see ``rates_to_frame``), built straight from the pages.

    The engine is checked before anything is downloaded.
    """
    chosen = resolve_engine(engine)
    sink = _ColumnSink(RATES_DTYPE)
    pages = await rate_pages(
        connector,
        symbol,
        timeframe,
        date_from,
        date_to,
        count=count,
        start_pos=start_pos,
        progress=progress,
        page_size=page_size,
        sink=sink,
        timeout=timeout,
    )
    columns = sink.columns(pages)
    return _frame(columns.pop("time"), "s", columns, chosen)


async def fetch_ticks_frame(
    connector: AsyncMT5Connector,
    symbol: str,
    date_from: datetime,
    date_to: datetime | None = None,
    *,
    count: int | None = None,
    flags: TickFlagsLike = "all",
    engine: FrameEngine | None = None,
    progress: ProgressCallback | None = None,
    page_size: int | None = None,
    timeout: TimeoutArg = USE_DEFAULT,
) -> Any:
    """``fetch_ticks`` as a frame (see ``ticks_to_frame``), built straight from the pages.

    The engine is checked before anything is downloaded.
    """
    chosen = resolve_engine(engine)
    sink = _ColumnSink(TICKS_DTYPE)
    pages = await tick_pages(
        connector,
        symbol,
        date_from,
        date_to,
        count=count,
        flags=flags,
        progress=progress,
        page_size=page_size,
        sink=sink,
        timeout=timeout,
    )
    columns = sink.columns(pages)
    del columns["time"]
    return _frame(columns["time_msc"], "ms", columns, chosen)
