"""Draw the benchmark charts (SVG, no dependencies) from the committed results.

Reads ``docs/assets/bench/<name>.json`` (written by the bench scripts' ``--json``) and writes
``docs/assets/bench/<chart>.svg`` next to them; ``tests/test_docs.py`` fails when a chart is not
what its results draw::

    python bench/charts.py
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Callable, Sequence
from typing import Any
from xml.sax.saxutils import escape

RESULTS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "assets" / "bench"

PALETTE = ("#9e9e9e", "#e07b39", "#c9a227", "#3f7fbf", "#5a9e5a")
"""Series colours in order: a baseline grey, then distinguishable hues; aiomt5's own is blue."""
OURS = "#3f7fbf"

FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
CHAR = 6.6  # average width of a 12 px character, for laying out labels
Group = tuple[str, Sequence[tuple[str, float]]]


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.0f}" if value >= 100 else f"{value:.1f}"
    return f"{value:.2f}"


def bar_chart(
    title: str,
    groups: Sequence[Group],
    *,
    unit: str,
    log: bool = False,
    note: str = "",
    ours: Sequence[str] = (),
    width: int = 760,
) -> str:
    """Horizontal bars, one cluster per group, one colour per series (a legend names them)."""
    series: list[str] = []
    for _, bars in groups:
        series += [name for name, _ in bars if name not in series]
    others = iter(colour for colour in PALETTE if colour != OURS)
    colour = {name: OURS if name in ours else next(others) for name in series}
    values = [value for _, bars in groups for _, value in bars]
    label_width = max(len(label) for label, _ in groups) * CHAR + 16
    left, right = label_width, 70
    plot = width - left - right
    bar, gap = 16, 14
    top = 56
    if log:
        low = 10 ** math.floor(math.log10(min(values)))
        high = 10 ** math.ceil(math.log10(max(values)))

        def scale(value: float) -> float:
            return plot * math.log10(value / low) / math.log10(high / low)

        ticks = [low * 10**i for i in range(round(math.log10(high / low)) + 1)]
    else:
        step = 10 ** math.floor(math.log10(max(values)))
        for factor in (1, 2, 5, 10):
            if max(values) / (step * factor) <= 5:
                step *= factor
                break
        high = step * math.ceil(max(values) / step)

        def scale(value: float) -> float:
            return plot * value / high

        ticks = [step * i for i in range(round(high / step) + 1)]
    height = top + sum(len(bars) * bar + gap for _, bars in groups) + 46 + (18 if note else 0)
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
            f'style="{FONT};font-size:12px">'
        ),
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    x = left
    for name in series:  # the legend
        out.append(f'<rect x="{x}" y="30" width="12" height="12" fill="{colour[name]}"/>')
        out.append(f'<text x="{x + 16}" y="40">{escape(name)}</text>')
        x += 16 + len(name) * CHAR + 18
    bottom = height - 30 - (18 if note else 0)
    for tick in ticks:
        tx = left + scale(tick)
        out.append(
            f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{bottom}" stroke="#e0e0e0"/>'
        )
        label = f"{tick:,.0f}" if tick >= 1 else f"{tick:g}"
        out.append(
            f'<text x="{tx:.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">{label}</text>'
        )
    out.append(
        f'<text x="{left + plot / 2:.1f}" y="{bottom + 28}" text-anchor="middle" fill="#555">'
        f"{escape(unit)}{' (log scale)' if log else ''}</text>"
    )
    y = top
    for label, bars in groups:
        middle = y + len(bars) * bar / 2
        out.append(
            f'<text x="{left - 8}" y="{middle + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        )
        for name, value in bars:
            length = max(scale(value), 1.0)
            out.append(
                f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar - 2}" '
                f'fill="{colour[name]}"><title>{escape(name)}: {_number(value)} '
                f"{escape(unit)}</title></rect>"
            )
            out.append(
                f'<text x="{left + length + 4:.1f}" y="{y + bar - 5}" fill="#333">'
                f"{escape(_number(value))}</text>"
            )
            y += bar
        y += gap
    if note:
        out.append(f'<text x="{left}" y="{height - 8}" fill="#555">{escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
    return data


def _rows(data: dict[str, Any], table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = data["tables"][table]["rows"]
    return rows


def _source(data: dict[str, Any]) -> str:
    return f"{data['command']}, {data['date']}, {data['machine']}"


def worker_chart() -> str:
    """to_thread vs anyio vs the connector: time per call, alone and under 1000 tasks."""
    data = _load("worker")
    latency = {row["mode"]: row for row in _rows(data, "latency")}
    throughput = {row["mode"]: row for row in _rows(data, "throughput")}
    modes = ["asyncio.to_thread", "anyio.to_thread", "connector"]
    return bar_chart(
        "One symbol_info_tick through each path (lower is better)",
        [
            ("one task: µs per call", [(m, latency[m]["us"]) for m in modes]),
            ("one task: p99 µs", [(m, latency[m]["p99"]) for m in modes]),
            ("1000 tasks: µs per call", [(m, 1e6 / throughput[m]["rate"]) for m in modes]),
            ("1000 tasks: CPU µs per call", [(m, throughput[m]["cpu"]) for m in modes]),
        ],
        unit="µs",
        note=_source(data),
        ours=["connector"],
    )


def remote_chart() -> str:
    """The remote backends against mt5linux and an in-process call, on a log scale."""
    data = _load("remote")
    backends = [
        ("in-process", "in_process"),
        ("mt5linux", "mt5linux"),
        ("mt5linux://", "ours"),
        ("aiomt5://", "serve"),
    ]
    return bar_chart(
        "Remote terminals on loopback: time per call (lower is better)",
        [
            (row["call"], [(name, row[key]) for name, key in backends])
            for row in _rows(data, "calls")
        ],
        unit="µs per call",
        log=True,
        note=_source(data),
        ours=["aiomt5://"],
    )


def frames_chart() -> str:
    """1M M1 bars as a frame against the raw copies joined (the baseline)."""
    data = _load("frames")
    rows = _rows(data, "bars")
    baseline = rows[0]["case"]
    return bar_chart(
        "1M M1 bars: a frame against the raw pages (lower is better)",
        [
            (row["case"], [("baseline" if row["case"] == baseline else "frame", row["ms"])])
            for row in rows
        ],
        unit="ms (median)",
        note=_source(data),
        ours=["frame"],
    )


def isolation_chart() -> str:
    """The in-process thread against the child process: time per call, on a log scale."""
    data = _load("isolation")
    rows = {(row["case"], row["stat"]): row for row in _rows(data, "calls")}

    def per_call(row: dict[str, Any], side: str) -> float:
        value = float(row[side])
        unit = row["unit"]
        return 1e6 / value if unit == "calls/s" else value * (1e3 if unit == "ms" else 1.0)

    cases = [
        ("version(): p50", ("version()", "p50")),
        ("symbol_info_tick: p50", ("symbol_info_tick", "p50")),
        ("symbol_info_tick: p99", ("symbol_info_tick", "p99")),
        ("100 tasks: per call", ("100 tasks x 20 symbol_info_tick", "median")),
        ("call_many x 100: per call", ("20 call_many x 100 symbol_info_tick", "median")),
        ("99,999 M1 bars", ("copy_rates_from_pos 99,999 bars", "median")),
        ("1,000,000 ticks", ("copy_ticks_from 1,000,000 ticks", "median")),
    ]
    return bar_chart(
        "The child process against the in-process thread (lower is better)",
        [
            (label, [(side, per_call(rows[key], side)) for side in ("thread", "child")])
            for label, key in cases
        ],
        unit="µs per call",
        log=True,
        note=_source(data),
        ours=["child"],
    )


CHARTS: dict[str, Callable[[], str]] = {
    "worker.svg": worker_chart,
    "remote.svg": remote_chart,
    "frames.svg": frames_chart,
    "isolation.svg": isolation_chart,
}
"""Each chart's file (in ``docs/assets/bench``) and the function that draws it."""


def main() -> None:
    for name, draw in CHARTS.items():
        path = RESULTS / name
        svg = draw()
        if not path.exists() or path.read_text() != svg:
            path.write_text(svg)
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
