"""MetaTrader5 rate and tick arrays as pandas or polars data frames, without per-row Python work.

MT5 arrays are packed structured arrays (60-byte rows), so a column is a strided view: each
column is copied once, page by page, into its own preallocated contiguous buffer with one
vectorised numpy copy, and the frame libraries wrap those buffers as they are (no consolidation,
no further copy). Epoch values are read as UTC ``datetime64`` without conversion (the same int64
values; pandas' UTC index is the one extra vectorised copy its public API allows), and polars'
millisecond bar times are scaled from seconds in the same pass that copies the column.

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


def _frame(
    time: npt.NDArray[np.int64],
    unit: Literal["s", "ms"],
    columns: dict[str, npt.NDArray[Any]],
    engine: FrameEngine,
) -> Any:
    """The frame of ``columns`` (fresh contiguous buffers, wrapped as they are) and ``time``
    (epoch ``unit``s; polars needs ``"ms"``)."""
    if engine == "pandas":
        pd = importlib.import_module("pandas")
        # One vectorised copy: the same int64 values read as UTC datetime64 (no conversion).
        index = pd.DatetimeIndex(
            time.view(f"datetime64[{unit}]"), dtype=f"datetime64[{unit}, UTC]", name="time"
        )
        return pd.DataFrame(columns, index=index, copy=False)
    pl = importlib.import_module("polars")
    series = [pl.Series("time", time).cast(pl.Datetime(unit, "UTC"))]
    series.extend(pl.Series(name, values) for name, values in columns.items())
    return pl.DataFrame(series)


class _ColumnSink:
    """Copies pages into column buffers as they arrive (a ``PageSink``); frames wrap the buffers.

    With a known upper bound the buffers are allocated once (untouched memory past the end is
    never written, so the OS does not commit it) and every page is copied once, while the next
    page downloads. Without one (or past a wrong one) ``columns`` copies the pages at the end,
    the same way. Every field but ``skip`` gets a buffer; ``scale`` multiplies ``epoch`` in the
    same pass (bar seconds to the milliseconds polars needs).
    """

    def __init__(
        self, dtype: np.dtype[Any], *, epoch: str, skip: str | None = None, scale: int = 1
    ) -> None:
        self._dtype = dtype
        self._names = [name for name in dtype.names or () if name != skip]
        self._epoch = epoch
        self._scale = scale
        self._buffers: dict[str, npt.NDArray[Any]] | None = None
        self._capacity = 0
        self.rows = 0

    def reserve(self, rows: int) -> None:
        self._buffers = {name: np.empty(rows, dtype=self._dtype[name]) for name in self._names}
        self._capacity = rows
        self.rows = 0

    def add(self, page: npt.NDArray[np.void]) -> None:
        buffers = self._buffers
        end = self.rows + len(page)
        if buffers is None or end > self._capacity:
            self._buffers = None  # no (or a wrong) bound: columns() copies the pages instead
            return
        for name, buffer in buffers.items():
            if name == self._epoch and self._scale != 1:
                np.multiply(page[name], self._scale, out=buffer[self.rows : end])
            else:
                buffer[self.rows : end] = page[name]
        self.rows = end

    def columns(self, pages: Sequence[npt.NDArray[np.void]]) -> dict[str, npt.NDArray[Any]]:
        """The columns of ``pages`` (the sink's buffers when it saw every page)."""
        total = sum(len(page) for page in pages)
        if self._buffers is None or self.rows != total:
            self.reserve(total)
            for page in pages:
                self.add(page)
        buffers = self._buffers
        assert buffers is not None  # reserved for exactly these pages just above
        return {name: buffer[: self.rows] for name, buffer in buffers.items()}


def _build(
    pages: Sequence[npt.NDArray[np.void]],
    sink: _ColumnSink | None,
    kind: Literal["rates", "ticks"],
    engine: FrameEngine,
) -> Any:
    """The frame of ``pages`` (``sink``: the one they were fed to while downloading, if any)."""
    if sink is None:  # an array given by the caller: its own fields and dtypes
        sink = _sink(kind, engine, pages[0].dtype)
    columns = sink.columns(pages)
    if kind == "ticks":
        # time from time_msc; time_msc stays a column (the buffer is shared, not copied).
        return _frame(columns["time_msc"], "ms", columns, engine)
    # The bar time is the index (pandas, seconds) or first column (polars, ms from the sink).
    return _frame(columns.pop("time"), "s" if engine == "pandas" else "ms", columns, engine)


def _sink(
    kind: Literal["rates", "ticks"], engine: FrameEngine, dtype: np.dtype[Any] | None = None
) -> _ColumnSink:
    if kind == "ticks":
        return _ColumnSink(dtype or TICKS_DTYPE, epoch="time_msc", skip="time")
    scale = 1000 if engine == "polars" else 1
    return _ColumnSink(dtype or RATES_DTYPE, epoch="time", scale=scale)


def rates_to_frame(array: npt.NDArray[np.void], engine: FrameEngine | None = None) -> Any:
    """A ``copy_rates_*`` array as a data frame with a UTC ``time`` index (pandas) or column.

    Args:
        array: MetaTrader5's rates array (e.g. from ``fetch_rates``).
        engine: ``"pandas"``, ``"polars"``, or None (pandas if installed, else polars).

    Raises:
        MT5ConfigurationError: The engine is not installed.
        MT5InvalidArgumentError: ``array`` is not a rates array.
    """
    return _build([_check(array, _RATES_FIELDS, "rates")], None, "rates", resolve_engine(engine))


def ticks_to_frame(array: npt.NDArray[np.void], engine: FrameEngine | None = None) -> Any:
    """A ``copy_ticks_*`` array as a data frame with a UTC millisecond ``time`` index or column.

    Args:
        array: MetaTrader5's ticks array (e.g. from ``fetch_ticks``).
        engine: ``"pandas"``, ``"polars"``, or None (pandas if installed, else polars).

    Raises:
        MT5ConfigurationError: The engine is not installed.
        MT5InvalidArgumentError: ``array`` is not a ticks array.
    """
    return _build([_check(array, _TICKS_FIELDS, "ticks")], None, "ticks", resolve_engine(engine))


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
    sink = _sink("rates", chosen)
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
    return _build(pages, sink, "rates", chosen)


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
    sink = _sink("ticks", chosen)
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
    return _build(pages, sink, "ticks", chosen)
