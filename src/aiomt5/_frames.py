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

pandas and polars are optional (extras ``aiomt5[pandas]``, ``aiomt5[polars]``); asking for one
that is not installed raises ``MT5ConfigurationError`` saying what to install.
"""

from __future__ import annotations

import importlib
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from ._errors import MT5ConfigurationError, MT5InvalidArgumentError

__all__ = ["FrameEngine", "rates_to_frame", "resolve_engine", "ticks_to_frame"]

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


def _columns(array: npt.NDArray[np.void], skip: str) -> dict[str, npt.NDArray[Any]]:
    names = array.dtype.names or ()
    # One vectorised copy per column out of the packed rows.
    return {name: np.ascontiguousarray(array[name]) for name in names if name != skip}


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
    rates = _check(array, _RATES_FIELDS, "rates")
    chosen = resolve_engine(engine)
    epoch = np.ascontiguousarray(rates["time"])
    return _frame(epoch, "s", _columns(rates, "time"), chosen)


def ticks_to_frame(array: npt.NDArray[np.void], engine: FrameEngine | None = None) -> Any:
    """A ``copy_ticks_*`` array as a data frame with a UTC millisecond ``time`` index or column.

    Args:
        array: MetaTrader5's ticks array (e.g. from ``fetch_ticks``).
        engine: ``"pandas"``, ``"polars"``, or None (pandas if installed, else polars).

    Raises:
        MT5ConfigurationError: The engine is not installed.
        MT5InvalidArgumentError: ``array`` is not a ticks array.
    """
    ticks = _check(array, _TICKS_FIELDS, "ticks")
    chosen = resolve_engine(engine)
    epoch = np.ascontiguousarray(ticks["time_msc"])
    return _frame(epoch, "ms", _columns(ticks, "time"), chosen)
