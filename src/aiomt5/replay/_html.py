"""The replay report as one self-contained HTML page: inline SVG charts, no script, no network."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from aiomt5._mt5 import constants as c

from ._report import escape

if TYPE_CHECKING:
    from ._report import ReplayResult

__all__ = ["render_equity_svg", "render_html"]

F64 = npt.NDArray[np.float64]

_WIDTH: Final = 960
_HEIGHT: Final = 320
_PAD_LEFT: Final = 70
_PAD_RIGHT: Final = 16
_PAD_TOP: Final = 28
_PAD_BOTTOM: Final = 34
# Points per line: enough for a smooth curve at this width, few enough for a small file.
_MAX_POINTS: Final = 2400
_MAX_DEAL_ROWS: Final = 1000
_BALANCE: Final = "#1f77b4"
_EQUITY: Final = "#ff7f0e"
_PRICE: Final = "#555555"
_BUY: Final = "#2ca02c"
_SELL: Final = "#d62728"


@dataclass
class _Line:
    xs: F64
    ys: F64
    color: str
    label: str
    step: bool = False


@dataclass
class _Marker:
    x: float
    y: float
    up: bool
    title: str


@dataclass
class _Chart:
    title: str
    lines: list[_Line]
    markers: list[_Marker] = field(default_factory=list)
    y_label: str = ""


def _thin(xs: F64, ys: F64) -> tuple[F64, F64]:
    """At most ``_MAX_POINTS`` points: per bucket the first, min and max (extremes survive)."""
    if len(xs) <= _MAX_POINTS:
        return xs, ys
    buckets = _MAX_POINTS // 3
    edges = np.linspace(0, len(xs), buckets + 1).astype(np.int64)
    keep: list[int] = []
    for lo, hi in itertools.pairwise(edges):
        if hi > lo:
            part = ys[lo:hi]
            keep.extend(sorted({int(lo), int(lo + np.argmin(part)), int(lo + np.argmax(part))}))
    keep.append(len(xs) - 1)
    index = np.unique(np.array(keep, dtype=np.int64))
    return xs[index], ys[index]


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** np.floor(np.log10(raw))
    step = float(min((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), default=raw))
    first = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(first, hi + step * 0.001, step)]


def _time_label(epoch: float, span: float) -> str:
    when = datetime.fromtimestamp(epoch, UTC)
    return when.strftime("%m-%d %H:%M" if span < 3 * 86400 else "%Y-%m-%d")


def _svg(chart: _Chart, *, standalone: bool) -> str:
    xs_all = [line.xs for line in chart.lines if len(line.xs)]
    ys_all = [line.ys for line in chart.lines if len(line.ys)]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'width="{_WIDTH}" height="{_HEIGHT}" font-family="sans-serif" font-size="11">'
    )
    parts = [head] if standalone else [head.replace(f'width="{_WIDTH}" height="{_HEIGHT}" ', "")]
    parts.append(f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>')
    parts.append(f'<text x="{_PAD_LEFT}" y="17" font-size="13" font-weight="bold">'
                 f"{escape(chart.title)}</text>")  # fmt: skip
    if not xs_all:
        parts.append(
            f'<text x="{_WIDTH / 2}" y="{_HEIGHT / 2}" text-anchor="middle">no data</text>'
        )
        parts.append("</svg>")
        return "".join(parts)
    marker_ys = [m.y for m in chart.markers]
    x0 = float(min(x.min() for x in xs_all))
    x1 = float(max(x.max() for x in xs_all))
    y0 = float(min([*(y.min() for y in ys_all), *marker_ys]))
    y1 = float(max([*(y.max() for y in ys_all), *marker_ys]))
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 1, y1 + 1
    margin = (y1 - y0) * 0.05
    y0, y1 = y0 - margin, y1 + margin
    x1 = x1 if x1 > x0 else x0 + 1
    plot_w = _WIDTH - _PAD_LEFT - _PAD_RIGHT
    plot_h = _HEIGHT - _PAD_TOP - _PAD_BOTTOM

    def px(x: float) -> float:
        return _PAD_LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return _PAD_TOP + (1 - (y - y0) / (y1 - y0)) * plot_h

    bottom = _PAD_TOP + plot_h
    for value in _ticks(y0, y1):
        y = py(value)
        parts.append(f'<line x1="{_PAD_LEFT}" y1="{y:.1f}" x2="{_WIDTH - _PAD_RIGHT}" '
                     f'y2="{y:.1f}" stroke="#eee"/>')  # fmt: skip
        parts.append(f'<text x="{_PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{value:.{_decimals(y1 - y0)}f}</text>")  # fmt: skip
    for value in np.linspace(x0, x1, 6):
        x = px(float(value))
        parts.append(f'<line x1="{x:.1f}" y1="{_PAD_TOP}" x2="{x:.1f}" y2="{bottom}" '
                     'stroke="#f3f3f3"/>')  # fmt: skip
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">'
                     f"{_time_label(float(value), x1 - x0)} UTC</text>")  # fmt: skip
    parts.append(f'<rect x="{_PAD_LEFT}" y="{_PAD_TOP}" width="{plot_w}" height="{plot_h}" '
                 'fill="none" stroke="#999"/>')  # fmt: skip
    legend_x = _WIDTH - _PAD_RIGHT
    for line in reversed(chart.lines):
        xs, ys = _thin(line.xs, line.ys)
        if line.step and len(xs) > 1:
            xs = np.repeat(xs, 2)[1:]
            ys = np.repeat(ys, 2)[:-1]
        points = " ".join(
            f"{px(float(x)):.1f},{py(float(y)):.1f}" for x, y in zip(xs, ys, strict=True)
        )
        title = escape(line.label)
        parts.append(f'<polyline fill="none" stroke="{line.color}" stroke-width="1.3" '
                     f'points="{points}"><title>{title}</title></polyline>')  # fmt: skip
        legend_x -= 8 + 7 * len(line.label)
        parts.append(f'<rect x="{legend_x}" y="9" width="10" height="10" fill="{line.color}"/>'
                     f'<text x="{legend_x + 14}" y="18">{escape(line.label)}</text>')  # fmt: skip
        legend_x -= 16
    for marker in chart.markers:
        x, y = px(marker.x), py(marker.y)
        if marker.up:
            shape, color = f"{x:.1f},{y:.1f} {x - 5:.1f},{y + 9:.1f} {x + 5:.1f},{y + 9:.1f}", _BUY
        else:
            shape, color = f"{x:.1f},{y:.1f} {x - 5:.1f},{y - 9:.1f} {x + 5:.1f},{y - 9:.1f}", _SELL
        parts.append(f'<polygon points="{shape}" fill="{color}" opacity="0.85">'
                     f"<title>{escape(marker.title)}</title></polygon>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _decimals(span: float) -> int:
    if span <= 0:
        return 2
    return int(max(0, min(6, 2 - np.floor(np.log10(span)))))


def _equity_chart(result: ReplayResult) -> _Chart:
    rows = result.equity_rows
    xs = rows["time"].astype(np.float64)
    return _Chart(
        "Balance and equity",
        [
            _Line(xs, rows["balance"].astype(np.float64), _BALANCE, "balance", step=True),
            _Line(xs, rows["equity"].astype(np.float64), _EQUITY, "equity"),
        ],
    )


def _price_chart(result: ReplayResult, symbol: str) -> _Chart:
    lines: list[_Line] = []
    recording = result.recording
    if recording is not None and symbol in recording.series:
        bars = recording.series[symbol].bars
        times = bars["time"]
        lo = int(np.searchsorted(times, result.start - 3600, "left"))
        hi = int(np.searchsorted(times, result.simulated_until, "right"))
        bars = bars[lo:hi]
        lines.append(_Line(bars["time"].astype(np.float64), bars["close"].astype(np.float64),
                           _PRICE, f"{symbol} close (M1)"))  # fmt: skip
    deals = result.deal_rows
    mine = deals[
        (deals["symbol"] == symbol) & np.isin(deals["type"], [c.DEAL_TYPE_BUY, c.DEAL_TYPE_SELL])
    ]
    markers = [
        _Marker(
            float(d["time_msc"]) / 1000,
            float(d["price"]),
            int(d["type"]) == c.DEAL_TYPE_BUY,
            f"{'buy' if int(d['type']) == c.DEAL_TYPE_BUY else 'sell'} {float(d['volume']):g} "
            f"@ {float(d['price'])} ({_entry(int(d['entry']))}) "
            f"{datetime.fromtimestamp(float(d['time_msc']) / 1000, UTC):%Y-%m-%d %H:%M:%S} "
            f"profit {float(d['profit']):+.2f}",
        )
        for d in mine
    ]
    return _Chart(f"{symbol}: trades on the price", lines, markers)


def _entry(entry: int) -> str:
    return {c.DEAL_ENTRY_IN: "in", c.DEAL_ENTRY_OUT: "out", c.DEAL_ENTRY_INOUT: "in/out",
            c.DEAL_ENTRY_OUT_BY: "out by"}.get(entry, str(entry))  # fmt: skip


def render_equity_svg(result: ReplayResult, *, standalone: bool = False) -> str:
    """The balance and equity curves as one SVG document."""
    return _svg(_equity_chart(result), standalone=standalone)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(result: ReplayResult) -> str:
    """The whole report page."""
    summary = _table(["", ""], result.summary.lines())
    deals = result.deal_rows
    names = ("time", "symbol", "type", "entry", "volume", "price", "profit", "commission",
             "swap", "position_id", "comment")  # fmt: skip
    rows = [
        [
            f"{datetime.fromtimestamp(float(d['time_msc']) / 1000, UTC):%Y-%m-%d %H:%M:%S}",
            str(d["symbol"]),
            {c.DEAL_TYPE_BUY: "buy", c.DEAL_TYPE_SELL: "sell"}.get(int(d["type"]), str(d["type"])),
            _entry(int(d["entry"])),
            f"{float(d['volume']):g}", f"{float(d['price'])}", f"{float(d['profit']):.2f}",
            f"{float(d['commission']):.2f}", f"{float(d['swap']):.2f}", str(d["position_id"]),
            str(d["comment"]),
        ]
        for d in deals[:_MAX_DEAL_ROWS]
    ]  # fmt: skip
    more = (
        f"<p>{len(deals) - _MAX_DEAL_ROWS} more deals are in the CSV/Parquet files.</p>"
        if len(deals) > _MAX_DEAL_ROWS
        else ""
    )
    charts = [render_equity_svg(result)] + [
        _svg(_price_chart(result, symbol), standalone=False) for symbol in result.symbols
    ]
    title = f"aiomt5 replay: {', '.join(result.symbols)}"
    style = (
        "body{font-family:sans-serif;margin:24px;color:#222;max-width:1000px}"
        "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;"
        "text-align:right;font-size:12px}th{background:#f6f6f6}svg{display:block;margin:12px 0;"
        "max-width:100%;height:auto}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{style}</style></head><body>"
        f"<h1>{escape(title)}</h1><p>{escape(result.text().splitlines()[0])}</p>"
        f"<h2>Summary</h2>{summary}<h2>Charts</h2>{''.join(charts)}"
        f"<h2>Deals ({len(deals)})</h2>{_table(names, rows)}{more}</body></html>\n"
    )
