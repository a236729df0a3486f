"""What a replay did: deals, the equity curve, the summary, and the report files."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from aiomt5._market._frames import _importable
from aiomt5._mt5 import constants as c

if TYPE_CHECKING:
    from aiomt5.sim._recorded import Recording

__all__ = ["DEALS_DTYPE", "EQUITY_DTYPE", "ReplayResult", "Summary", "deals_array"]

Packed = npt.NDArray[np.void]

DEALS_DTYPE: Final = np.dtype(
    [
        ("ticket", np.int64),
        ("order", np.int64),
        ("time_msc", np.int64),
        ("symbol", "U32"),
        ("type", np.int64),
        ("entry", np.int64),
        ("volume", np.float64),
        ("price", np.float64),
        ("profit", np.float64),
        ("commission", np.float64),
        ("swap", np.float64),
        ("fee", np.float64),
        ("magic", np.int64),
        ("position_id", np.int64),
        ("reason", np.int64),
        ("comment", "U64"),
    ]
)
"""One row per deal, as ``history_deals_get`` reports them."""

EQUITY_DTYPE: Final = np.dtype(
    [("time", np.int64), ("balance", np.float64), ("equity", np.float64), ("margin", np.float64)]
)
"""One row per simulated minute: the account's balance, equity and margin then."""

_CLOSING: Final = frozenset({c.DEAL_ENTRY_OUT, c.DEAL_ENTRY_INOUT, c.DEAL_ENTRY_OUT_BY})
_TRADES: Final = frozenset({c.DEAL_TYPE_BUY, c.DEAL_TYPE_SELL})


def deals_array(deals: Iterable[Any]) -> Packed:
    """``TradeDeal`` structs as a ``DEALS_DTYPE`` array, oldest first."""
    names = DEALS_DTYPE.names or ()
    rows = [tuple(getattr(deal, name) for name in names) for deal in deals]
    array = np.array(rows, dtype=DEALS_DTYPE)
    return array[np.argsort(array["time_msc"], kind="stable")] if len(array) else array


def _net(deals: Packed) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = (
        deals["profit"] + deals["commission"] + deals["swap"] + deals["fee"]
    )
    return result


@dataclass(frozen=True)
class Summary:
    """The figures of a replay.

    Attributes:
        trades: Closed trades (deals that close or reduce a position).
        net_profit: Profit, commission, swap and fees of every trade deal.
        gross_profit: Sum of the winning closes.
        gross_loss: Sum of the losing closes (a positive number).
        win_rate: Winning closes / closes (None without trades).
        profit_factor: gross_profit / gross_loss (None without trades, inf without losses).
        max_drawdown: Largest fall of the equity curve from a previous peak (account currency).
        max_drawdown_pct: The same, as a share of that peak.
        exposure: Share of the replayed time with at least one position open.
        initial_balance: The balance at the start.
        final_balance: The balance at the end.
        final_equity: The equity at the end (open positions at their last price).
    """

    trades: int
    net_profit: float
    gross_profit: float
    gross_loss: float
    win_rate: float | None
    profit_factor: float | None
    max_drawdown: float
    max_drawdown_pct: float
    exposure: float
    initial_balance: float
    final_balance: float
    final_equity: float

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) pairs for people."""

        def pct(value: float | None) -> str:
            return "n/a" if value is None else f"{100 * value:.1f}%"

        factor = self.profit_factor
        return [
            ("trades", str(self.trades)),
            ("net profit", f"{self.net_profit:+.2f}"),
            ("max drawdown", f"{self.max_drawdown:.2f} ({pct(self.max_drawdown_pct)})"),
            ("win rate", pct(self.win_rate)),
            (
                "profit factor",
                "n/a" if factor is None else ("inf" if math.isinf(factor) else f"{factor:.2f}"),
            ),
            ("exposure", pct(self.exposure)),
            ("balance", f"{self.initial_balance:.2f} -> {self.final_balance:.2f}"),
            ("equity", f"{self.final_equity:.2f}"),
        ]


def _exposure(deals: Packed, start: float, end: float) -> float:
    """Share of [start, end] with a position open, from the deals (volumes per position)."""
    if end <= start or not len(deals):
        return 0.0
    open_volume: dict[int, float] = {}
    since: float | None = None
    covered = 0.0
    for deal in deals[np.isin(deals["type"], list(_TRADES))]:
        at = min(max(deal["time_msc"] / 1000, start), end)
        position = int(deal["position_id"])
        signed = float(deal["volume"]) * (1 if deal["entry"] == c.DEAL_ENTRY_IN else -1)
        if deal["entry"] == c.DEAL_ENTRY_INOUT:
            signed = 0.0  # a reversal: the position stays open
        if not open_volume and signed > 0:
            since = at
        volume = open_volume.get(position, 0.0) + signed
        if volume > 1e-9:
            open_volume[position] = volume
        else:
            open_volume.pop(position, None)
        if not open_volume and since is not None:
            covered += at - since
            since = None
    if since is not None:
        covered += end - since
    return covered / (end - start)


def summarize(deals: Packed, equity: Packed, initial: float, final_balance: float,
              final_equity: float, start: float, end: float) -> Summary:  # fmt: skip
    """The summary of a replay from its deals and equity samples."""
    trade_deals = deals[np.isin(deals["type"], list(_TRADES))] if len(deals) else deals
    closes = trade_deals[np.isin(trade_deals["entry"], list(_CLOSING))] if len(deals) else deals
    net = _net(closes) if len(closes) else np.zeros(0)
    gross_profit = float(net[net > 0].sum())
    gross_loss = float(-net[net < 0].sum())
    trades = len(closes)
    curve = np.concatenate(([initial], equity["equity"], [final_equity]))
    peaks = np.maximum.accumulate(curve)
    falls = peaks - curve
    worst = int(np.argmax(falls))
    drawdown = float(falls[worst])
    return Summary(
        trades=trades,
        net_profit=float(_net(trade_deals).sum()) if len(trade_deals) else 0.0,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        win_rate=float((net > 0).sum() / trades) if trades else None,
        profit_factor=(gross_profit / gross_loss if gross_loss else math.inf) if trades else None,
        max_drawdown=drawdown,
        max_drawdown_pct=drawdown / float(peaks[worst]) if peaks[worst] > 0 else 0.0,
        exposure=_exposure(deals, start, end),
        initial_balance=initial,
        final_balance=final_balance,
        final_equity=final_equity,
    )


@dataclass
class ReplayResult:
    """What a replay did. ``deals`` and ``equity`` are pandas frames (``frames("polars")``
    for polars); the numpy arrays are ``deal_rows`` and ``equity_rows``.

    Attributes:
        deal_rows: Every deal, ``DEALS_DTYPE`` (``deals``: as a frame).
        equity_rows: Balance, equity and margin each simulated minute, ``EQUITY_DTYPE``.
        summary: Trades, net profit, max drawdown, win rate, profit factor, exposure.
        start: Simulated start, epoch seconds.
        end: Simulated end, epoch seconds.
        simulated_until: How far the simulated clock got (the bot may stop before ``end``).
        wall_seconds: Real seconds the run took.
        mode: ``"fast"`` or the speed (``"x60"``).
        symbols: The recorded symbols offered.
        jumps: How many times virtual time jumped (fast mode).
    """

    deal_rows: Packed
    equity_rows: Packed
    initial_balance: float
    final_balance: float
    final_equity: float
    start: float
    end: float
    simulated_until: float
    wall_seconds: float
    mode: str
    symbols: tuple[str, ...]
    recording: Recording | None = field(default=None, repr=False)
    jumps: int = 0
    summary: Summary = field(init=False)

    def __post_init__(self) -> None:
        self.summary = summarize(
            self.deal_rows, self.equity_rows, self.initial_balance, self.final_balance,
            self.final_equity, self.start, self.simulated_until,
        )  # fmt: skip

    def frames(self, engine: str = "pandas") -> tuple[Any, Any]:
        """(deals, equity) as pandas or polars frames, with UTC ``time`` columns."""
        return _frame(self.deal_rows, engine, "time_msc"), _frame(self.equity_rows, engine, "time")

    @property
    def deals(self) -> Any:
        """The deals as a pandas frame (``deal_rows``: the numpy array)."""
        return _frame(self.deal_rows, "pandas", "time_msc")

    @property
    def equity(self) -> Any:
        """The equity curve (time, balance, equity, margin) as a pandas frame."""
        return _frame(self.equity_rows, "pandas", "time")

    @property
    def speedup(self) -> float:
        """Simulated seconds per real second."""
        return (self.simulated_until - self.start) / max(self.wall_seconds, 1e-9)

    def text(self) -> str:
        """The summary for a terminal."""
        span = f"{_stamp(self.start)} .. {_stamp(self.simulated_until)}"
        head = (
            f"replay of {', '.join(self.symbols)}, {span} ({self.mode}): "
            f"{(self.simulated_until - self.start) / 86400:.2f} simulated days in "
            f"{self.wall_seconds:.1f} s"
        )
        width = max(len(label) for label, _ in self.summary.lines())
        return "\n".join([head, *(f"  {k:<{width}}  {v}" for k, v in self.summary.lines())])

    def write_report(self, path: str | Path) -> list[Path]:
        """Write the report: ``path`` (``.html``), its deals (``.deals.csv``, and
        ``.deals.parquet`` with pyarrow) and the equity chart (``.equity.svg``).

        Returns:
            The files written.
        """
        from ._html import render_equity_svg, render_html

        target = Path(path)
        if target.suffix.lower() not in (".html", ".htm"):
            target = target.with_suffix(".html")
        target.parent.mkdir(parents=True, exist_ok=True)
        written = [target]
        target.write_text(render_html(self), encoding="utf-8")
        svg = target.with_suffix(".equity.svg")
        svg.write_text(render_equity_svg(self, standalone=True), encoding="utf-8")
        written.append(svg)
        csv = target.with_suffix(".deals.csv")
        write_deals_csv(self.deal_rows, csv)
        written.append(csv)
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            pass
        else:
            parquet = target.with_suffix(".deals.parquet")
            pq.write_table(
                pa.table({n: self.deal_rows[n] for n in DEALS_DTYPE.names or ()}), parquet
            )
            written.append(parquet)
        return written


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def _frame(array: Packed, engine: str, time_column: str) -> Any:
    names: Sequence[str] = array.dtype.names or ()
    columns = {name: array[name] for name in names}
    unit = "ms" if time_column == "time_msc" else "s"
    if engine not in ("pandas", "polars"):
        raise ValueError(f"engine must be 'pandas' or 'polars', got {engine!r}")
    module = _importable(engine)
    if module is None:
        raise ImportError(
            f"frames need {engine} (pip install {engine}); the numpy arrays are "
            "deal_rows and equity_rows"
        )
    times = array[time_column].astype(np.int64) * (1 if unit == "ms" else 1000)
    if engine == "polars":
        frame = module.DataFrame(columns)
        stamps = module.Series("time", times).cast(module.Datetime("ms", "UTC"))
        return frame.with_columns(stamps)
    frame = module.DataFrame(columns)
    frame["time"] = module.to_datetime(times, unit="ms", utc=True)
    return frame


def write_deals_csv(deals: Packed, path: Path) -> None:
    """The deals as CSV (a header, one row per deal, UTC ISO times)."""
    names = DEALS_DTYPE.names or ()
    lines = [",".join(("time", *names))]
    for row in deals.tolist():
        values = dict(zip(names, row, strict=True))
        when = datetime.fromtimestamp(values["time_msc"] / 1000, UTC).isoformat()
        cells = [when] + [_cell(values[name]) for name in names]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"' if ("," in value or '"' in value) else value
    if isinstance(value, float):
        return repr(value)
    return str(value)


def escape(text: str) -> str:
    """HTML-escaped text."""
    return html.escape(text, quote=True)
