"""``HistoryStore``: bars kept on disk per (server, symbol, timeframe), updated by deltas.

Layout::

    root/<server>/<symbol>/<timeframe>/
        000001_<first>_<last>.parquet    one segment per write (bars, MT5's columns and dtypes)
        000002_<first>_<last>.parquet
        meta.json                        {"checked_from": <epoch s>}: history before it is known

Why Parquet segments (pyarrow) rather than SQLite:

* Bars are read far more than written, and read as whole columns into numpy/pandas/polars.
  Parquet is columnar and compressed (zstd), and pyarrow hands its columns to numpy with one
  vectorised copy, so reading a million bars costs milliseconds. SQLite would return rows as
  Python tuples: a per-row Python loop on every read, the cost this library avoids elsewhere.
* Parquet files are immutable, so an update *appends a segment* holding only the new bars (the
  missing head or tail) instead of rewriting the file; the first and last bar times are in the
  file name, so the stored span is known without reading data. Segments are merged into one
  (``compact_after``) so reads stay one or two files.
* Each segment is written to a temporary file and renamed into place: a crash leaves either
  the old state or the new one, never a torn file. Overlapping segments are harmless: on read,
  rows with the same ``time`` keep the newest segment's version. That is also how the bar
  that was still forming at the last update gets replaced by its final version: every update
  re-reads from the last stored bar on.

pyarrow is optional (``pip install pyarrow``; it is in the ``test`` extra); without it the
store raises ``MT5ConfigurationError`` when created. One process should write a store at a time
(there is no file locking); any number may read.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import tempfile
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from aiomt5._core._arguments import utc_timestamp
from aiomt5._core._errors import MT5ConfigurationError, MT5InvalidArgumentError
from aiomt5._mt5.dtypes import RATES_DTYPE

from ._frames import FrameEngine, rates_to_frame
from ._history import ProgressCallback, fetch_rates
from ._timeframe import Timeframe, TimeframeLike

if TYPE_CHECKING:
    from aiomt5._connector import AsyncMT5Connector

__all__ = ["HistoryStore", "StoreKey", "UpdateResult"]

_SEGMENT: Final = re.compile(r"^(\d{6})_(\d+)_(\d+)\.parquet$")
_META: Final = "meta.json"


@dataclass(frozen=True, slots=True)
class StoreKey:
    """What one stored series is: the trade server, the broker's symbol name, the timeframe."""

    server: str
    symbol: str
    timeframe: Timeframe


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """What ``HistoryStore.update`` did.

    Attributes:
        key: The series updated.
        head_rows: Older bars downloaded (before what was stored).
        tail_rows: Newer bars downloaded, counting the re-read last stored bar.
        first: Open time of the oldest stored bar after the update (epoch seconds), or None.
        last: Open time of the newest stored bar after the update, or None.
    """

    key: StoreKey
    head_rows: int
    tail_rows: int
    first: int | None
    last: int | None


@dataclass(frozen=True, slots=True)
class _Segment:
    path: Path
    sequence: int
    first: int
    last: int


def _pyarrow() -> tuple[Any, Any]:
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise MT5ConfigurationError(
            "HistoryStore keeps bars as Parquet files and needs pyarrow: pip install pyarrow"
        ) from None


def _part(text: object, what: str) -> str:
    if not isinstance(text, str) or not text:
        raise MT5InvalidArgumentError(f"{what} must be a non-empty str, got {text!r}")
    # Server and symbol names may hold '/', '#', ':' or spaces: keep every path one component.
    return urllib.parse.quote(text, safe="")


class HistoryStore:
    """Bars on disk per (server, symbol, timeframe), with incremental updates.

    Args:
        root: Directory of the store (created if missing).
        compact_after: Merge a series' segments into one once it has more than this many.

    Example:
        ```python
        store = HistoryStore("~/.cache/aiomt5")
        await store.update(mt5, "EURUSD", "M1", start=datetime(2025, 1, 1, tzinfo=UTC))
        frame = store.read_frame(server, "EURUSD", "M1")
        ```

    Raises:
        MT5ConfigurationError: pyarrow is not installed.
    """

    def __init__(self, root: str | os.PathLike[str], *, compact_after: int = 8) -> None:
        self._pa, self._pq = _pyarrow()
        if isinstance(compact_after, bool) or not isinstance(compact_after, int):
            raise MT5InvalidArgumentError(f"compact_after must be an int, got {compact_after!r}")
        if compact_after < 1:
            raise MT5InvalidArgumentError(f"compact_after must be >= 1, got {compact_after}")
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.compact_after = compact_after

    def __repr__(self) -> str:
        return f"HistoryStore({str(self.root)!r})"

    # ------------------------------------------------------------------ layout

    def directory(self, server: str, symbol: str, timeframe: TimeframeLike) -> Path:
        """Where the series lives (it may not exist yet)."""
        frame = Timeframe.parse(timeframe)
        return self.root / _part(server, "server") / _part(symbol, "symbol") / frame.name

    def keys(self) -> list[StoreKey]:
        """Every stored series, sorted."""
        found = []
        for folder in sorted(self.root.glob("*/*/*")):
            if folder.is_dir() and any(self._segments(folder)):
                server, symbol = (urllib.parse.unquote(p.name) for p in folder.parents[1::-1])
                found.append(StoreKey(server, symbol, Timeframe.parse(folder.name)))
        return found

    @staticmethod
    def _segments(folder: Path) -> list[_Segment]:
        segments = []
        for path in folder.glob("*.parquet"):
            match = _SEGMENT.match(path.name)
            if match:
                sequence, first, last = (int(group) for group in match.groups())
                segments.append(_Segment(path, sequence, first, last))
        return sorted(segments, key=lambda s: s.sequence)

    def span(self, server: str, symbol: str, timeframe: TimeframeLike) -> tuple[int, int] | None:
        """(first, last) open times stored, epoch seconds; None when nothing is stored."""
        segments = self._segments(self.directory(server, symbol, timeframe))
        if not segments:
            return None
        return min(s.first for s in segments), max(s.last for s in segments)

    # ------------------------------------------------------------------ read

    def read(
        self,
        server: str,
        symbol: str,
        timeframe: TimeframeLike,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
    ) -> npt.NDArray[np.void]:
        """Stored bars (MT5's rates array, oldest first, one row per open time).

        Args:
            server: The trade server name (``account_info().server``).
            symbol: The broker's symbol name.
            timeframe: The timeframe.
            date_from: Only bars opened at or after this aware datetime.
            date_to: Only bars opened at or before this aware datetime.
        """
        low = utc_timestamp("date_from", date_from) if date_from is not None else None
        high = utc_timestamp("date_to", date_to) if date_to is not None else None
        rates = self._merged(self._segments(self.directory(server, symbol, timeframe)))
        times = rates["time"]
        start = int(np.searchsorted(times, low, "left")) if low is not None else 0
        end = int(np.searchsorted(times, high, "right")) if high is not None else len(rates)
        return rates[start:end]

    def read_frame(
        self,
        server: str,
        symbol: str,
        timeframe: TimeframeLike,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        *,
        engine: FrameEngine | None = None,
    ) -> Any:
        """``read`` as a pandas or polars frame (see ``rates_to_frame``)."""
        return rates_to_frame(self.read(server, symbol, timeframe, date_from, date_to), engine)

    def _merged(self, segments: list[_Segment]) -> npt.NDArray[np.void]:
        parts = [self._load(segment.path) for segment in segments]
        if not parts:
            return np.empty(0, dtype=RATES_DTYPE)
        rates = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if len(parts) == 1:
            return rates
        # Stable sort keeps segment order among equal times: the newest segment's row wins.
        order = np.argsort(rates["time"], kind="stable")
        rates = rates[order]
        times = rates["time"]
        keep = np.ones(len(rates), dtype=np.bool_)
        keep[:-1] = times[1:] != times[:-1]
        return rates[keep]

    def _load(self, path: Path) -> npt.NDArray[np.void]:
        table = self._pq.read_table(path)
        rates = np.empty(table.num_rows, dtype=RATES_DTYPE)
        for name in RATES_DTYPE.names or ():
            rates[name] = table.column(name).to_numpy()
        return rates

    # ------------------------------------------------------------------ write

    def write(
        self, server: str, symbol: str, timeframe: TimeframeLike, rates: npt.NDArray[np.void]
    ) -> int:
        """Add bars to a series (rows with a stored time replace the stored row).

        Returns:
            How many rows were written (0 for an empty array: nothing is written).
        """
        if getattr(getattr(rates, "dtype", None), "names", None) != RATES_DTYPE.names:
            raise MT5InvalidArgumentError(
                "write() takes MetaTrader5's rates array (copy_rates_* / fetch_rates)"
            )
        if not len(rates):
            return 0
        folder = self.directory(server, symbol, timeframe)
        folder.mkdir(parents=True, exist_ok=True)
        segments = self._segments(folder)
        sequence = segments[-1].sequence + 1 if segments else 1
        key = (server, symbol, Timeframe.parse(timeframe).name)
        self._write_segment(folder, sequence, np.sort(rates, order="time", kind="stable"), key)
        if len(segments) + 1 > self.compact_after:
            self._compact(folder, key)
        return len(rates)

    def _write_segment(
        self, folder: Path, sequence: int, rates: npt.NDArray[np.void], key: tuple[str, ...]
    ) -> None:
        pa = self._pa
        columns = {name: np.ascontiguousarray(rates[name]) for name in RATES_DTYPE.names or ()}
        table = pa.table(columns).replace_schema_metadata(
            {"aiomt5.server": key[0], "aiomt5.symbol": key[1], "aiomt5.timeframe": key[2]}
        )
        first, last = int(rates["time"][0]), int(rates["time"][-1])
        name = f"{sequence:06d}_{first}_{last}.parquet"
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        os.close(handle)
        try:
            self._pq.write_table(table, temporary, compression="zstd")
            os.replace(temporary, folder / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _compact(self, folder: Path, key: tuple[str, ...]) -> None:
        segments = self._segments(folder)
        merged = self._merged(segments)
        # The merged segment is renamed into place before the old ones go: a crash in between
        # leaves duplicates, which reads resolve.
        self._write_segment(folder, segments[-1].sequence + 1, merged, key)
        for segment in segments:
            segment.path.unlink(missing_ok=True)

    def compact(self, server: str, symbol: str, timeframe: TimeframeLike) -> None:
        """Merge a series' segments into one file."""
        folder = self.directory(server, symbol, timeframe)
        if len(self._segments(folder)) > 1:
            self._compact(folder, (server, symbol, Timeframe.parse(timeframe).name))

    def _checked_from(self, folder: Path) -> int | None:
        try:
            value = json.loads((folder / _META).read_text())["checked_from"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return int(value)

    def _set_checked_from(self, folder: Path, seconds: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f"{_META}.tmp"
        temporary.write_text(json.dumps({"checked_from": seconds}))
        os.replace(temporary, folder / _META)

    # ------------------------------------------------------------------ update

    async def update(
        self,
        connector: AsyncMT5Connector,
        symbol: str,
        timeframe: TimeframeLike,
        *,
        start: datetime,
        progress: ProgressCallback | None = None,
    ) -> UpdateResult:
        """Bring a series up to date from ``start`` to now, downloading only what is missing.

        The missing head (bars between ``start`` and the oldest stored bar, once: an empty
        answer is remembered) and the tail (from the newest stored bar, which is re-read in
        case it was still forming, up to now) are fetched with ``fetch_rates``.

        Args:
            connector: A connected ``AsyncMT5Connector`` (its account's server names the series).
            symbol: A symbol name (broker decorations are resolved; the broker's name is stored).
            timeframe: The timeframe.
            start: Aware datetime: the oldest bar wanted.
            progress: Passed to ``fetch_rates`` for each download.
        """
        start_s = utc_timestamp("start", start)
        frame = Timeframe.parse(timeframe)
        name = await connector.find_symbol(symbol)
        server = str((await connector.get_account_info()).server)
        folder = self.directory(server, name, frame)
        span = self.span(server, name, frame)
        head = tail = 0
        if span is None:
            tail = self.write(
                server,
                name,
                frame,
                await fetch_rates(connector, name, frame, start, progress=progress),
            )
        else:
            first, last = span
            checked = self._checked_from(folder)
            if start_s < first and (checked is None or start_s < checked):
                older = await fetch_rates(
                    connector,
                    name,
                    frame,
                    start,
                    datetime.fromtimestamp(first - 1, UTC),
                    progress=progress,
                )
                head = self.write(server, name, frame, older)
            newer = await fetch_rates(
                connector, name, frame, datetime.fromtimestamp(last, UTC), progress=progress
            )
            tail = self.write(server, name, frame, newer)
        checked = self._checked_from(folder)
        if checked is None or start_s < checked:
            self._set_checked_from(folder, start_s)
        after = self.span(server, name, frame)
        return UpdateResult(
            StoreKey(server, name, frame),
            head,
            tail,
            after[0] if after else None,
            after[1] if after else None,
        )
