"""Benchmark: 1M simulated M1 bars versus a plain numpy random-walk OHLC of the same size.

The baseline is the cheapest honest way to make the same product: a vectorised random walk
(normal log returns, cumulative sum, exp), open = previous close, high/low from uniform
excursions, random tick volume and spread, packed into the same 60-byte ``RATES_DTYPE`` rows.
The simulator must do more (deterministic random access per day, a Brownian bridge between daily
anchors, sessions, rounding to digits), and the target is at most ~3x the baseline.

Then a terminal's repeated ``copy_rates_from_pos(EURUSD, M1, 0, 100_000)``: the first call of a new
terminal and the best repeat, with the history cache (the default budget) and without it
(``history_cache_bytes=0``, every request generated again). The target is ~3 ms a repeat.

Run: ``.venv/bin/python bench/bench_sim_market.py [--repeat N] [--seed S]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

import _results
from aiomt5._mt5.constants import TIMEFRAME_M1
from aiomt5._mt5.structs import RATES_DTYPE
from aiomt5.sim import SimClock, SimTerminal
from aiomt5.sim._market import HISTORY_CACHE_BYTES, MarketModel
from aiomt5.sim._spec import SymbolSpec, TradingHours

ROWS = 1_000_000
# Monday 2010-01-04 00:00 UTC; FX trades 7200 minutes a week, so 138 weeks + 4 days + 640
# minutes hold exactly 1M M1 bars.
FX_FROM = int(datetime(2010, 1, 4, tzinfo=UTC).timestamp())
FX_TO = FX_FROM + (138 * 7 + 4) * 86_400 + 640 * 60 - 60
# Crypto history starts in 2017; 1M minutes of a 24/7 market are 694.4 days.
CRYPTO_FROM = int(datetime(2018, 1, 1, tzinfo=UTC).timestamp())
CRYPTO_TO = CRYPTO_FROM + ROWS * 60 - 60
NOW_MSC = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp()) * 1000
# The repeated request: 100k M1 bars back from 10:00 on a Monday, as a chart would ask.
CHART_BARS = 100_000
CHART_NOW_S = datetime(2026, 3, 2, 10, tzinfo=UTC).timestamp()

FX = SymbolSpec(
    name="EURUSD", description="Euro vs US Dollar", path="Forex\\Majors\\EURUSD",
    currency_base="EUR", currency_profit="USD", currency_margin="EUR", digits=5,
    contract_size=100_000.0, spread=12, base_price=1.1, volatility=0.08, ticks_per_minute=40.0,
)  # fmt: skip
CRYPTO = SymbolSpec(
    name="BTCUSD", description="Bitcoin vs US Dollar", path="Crypto\\BTCUSD",
    currency_base="BTC", currency_profit="USD", currency_margin="BTC", digits=2,
    contract_size=1.0, spread=1500, base_price=60_000.0, volatility=0.6, ticks_per_minute=60.0,
    hours=TradingHours.always(),
)  # fmt: skip


def baseline(rng: np.random.Generator) -> np.ndarray:
    """A plain vectorised random-walk OHLC of ROWS rows, packed like copy_rates_* output."""
    sd = 0.08 / np.sqrt(260 * 1440)
    close = 1.1 * np.exp(np.cumsum(rng.standard_normal(ROWS) * sd))
    open_ = np.empty(ROWS)
    open_[0] = 1.1
    open_[1:] = close[:-1]
    excursion = rng.random((2, ROWS)) * (sd * close)
    out = np.empty(ROWS, dtype=RATES_DTYPE)
    out["time"] = FX_FROM + 60 * np.arange(ROWS)
    out["open"] = open_
    out["high"] = np.maximum(open_, close) + excursion[0]
    out["low"] = np.minimum(open_, close) - excursion[1]
    out["close"] = close
    out["tick_volume"] = rng.integers(4, 80, ROWS)
    out["spread"] = rng.integers(5, 20, ROWS)
    out["real_volume"] = 0
    return out


def timed(make: Callable[[], np.ndarray], rows: int = ROWS) -> float:
    """Wall time of one run, checking that it made ``rows`` packed rates rows."""
    start = time.perf_counter()
    made = make()
    took = time.perf_counter() - start
    if len(made) != rows or made.dtype != RATES_DTYPE:
        msg = f"expected {rows} RATES_DTYPE rows, got {len(made)} {made.dtype}"
        raise SystemExit(msg)
    return took


def best_of(repeat: int, make: Callable[[], np.ndarray], rows: int = ROWS) -> float:
    """Best wall time of ``repeat`` runs (the least disturbed by other processes)."""
    return min(timed(make, rows) for _ in range(repeat))


def new_terminal(seed: int, now_s: float, maxbars: int, history_cache_bytes: int) -> SimTerminal:
    terminal = SimTerminal(
        seed,
        clock=SimClock.fixed(now_s),
        symbols=[FX],
        maxbars=maxbars,
        history_cache_bytes=history_cache_bytes,
        market_watch=[FX.name],
    )
    if not terminal.initialize():
        msg = f"SimTerminal.initialize() failed: {terminal.last_error()}"
        raise SystemExit(msg)
    return terminal


def terminal_runner(seed: int) -> Callable[[], np.ndarray]:
    """copy_rates_range on a SimTerminal with maxbars raised; no history cache, so every run
    generates the bars (the cache is measured by ``repeated_chart``)."""
    terminal = new_terminal(seed, NOW_MSC / 1000, 10 * ROWS, history_cache_bytes=0)

    def run() -> np.ndarray:
        rows: np.ndarray = terminal.copy_rates_range(FX.name, TIMEFRAME_M1, FX_FROM, FX_TO)
        return rows

    return run


def repeated_chart(seed: int, repeat: int, history_cache_bytes: int) -> tuple[float, float]:
    """(first call, best repeat) of copy_rates_from_pos(EURUSD, M1, 0, 100k), a new terminal
    for each first call."""
    firsts, repeats = [], []
    for _ in range(repeat):
        terminal = new_terminal(seed, CHART_NOW_S, 2 * CHART_BARS, history_cache_bytes)

        def chart(terminal: SimTerminal = terminal) -> np.ndarray:
            rows: np.ndarray = terminal.copy_rates_from_pos(FX.name, TIMEFRAME_M1, 0, CHART_BARS)
            return rows

        firsts.append(timed(chart, CHART_BARS))
        repeats.append(best_of(3, chart, CHART_BARS))
    return min(firsts), min(repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per case; the best counts")
    parser.add_argument("--seed", type=int, default=1)
    _results.add_option(parser)
    args = parser.parse_args()

    base = best_of(args.repeat, lambda: baseline(np.random.default_rng(args.seed)))
    print(f"baseline numpy random-walk OHLC, {ROWS:,} rows: {base * 1e3:8.1f} ms")

    def model_case(spec: SymbolSpec, date_from: int, date_to: int) -> Callable[[], np.ndarray]:
        # A fresh model each run: nothing is cached between runs.
        return lambda: MarketModel(spec, args.seed).rates_range(
            TIMEFRAME_M1, date_from, date_to, NOW_MSC
        )

    cases: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("MarketModel.rates_range M1, FX (weekends closed)", model_case(FX, FX_FROM, FX_TO)),
        ("MarketModel.rates_range M1, crypto (24/7)", model_case(CRYPTO, CRYPTO_FROM, CRYPTO_TO)),
        ("SimTerminal.copy_rates_range M1, FX", terminal_runner(args.seed)),
    ]
    rows: list[dict[str, object]] = [
        {"case": "numpy random walk (baseline)", "ms": base * 1e3, "ratio": 1.0}
    ]
    for label, case in cases:
        took = best_of(args.repeat, case)
        print(f"{label}: {took * 1e3:8.1f} ms   ratio {took / base:5.2f}x baseline")
        rows.append({"case": label, "ms": took * 1e3, "ratio": took / base})

    label = f"repeated {CHART_BARS // 1000}k-bar copy_rates_from_pos M1, FX"
    first, again = repeated_chart(args.seed, args.repeat, HISTORY_CACHE_BYTES)
    first_0, again_0 = repeated_chart(args.seed, args.repeat, 0)
    print(
        f"{label}: first {first * 1e3:6.1f} ms, repeat {again * 1e3:6.2f} ms; "
        f"uncached (history_cache_bytes=0): first {first_0 * 1e3:6.1f} ms, "
        f"repeat {again_0 * 1e3:6.2f} ms; repeat ratio {again / again_0:5.3f}x uncached"
    )
    _results.write(
        args.json,
        tables={
            "generate": _results.table(
                [
                    ("case", f"{ROWS:,} M1 bars (best of {args.repeat})"),
                    ("ms", "ms"),
                    ("ratio", "÷ baseline"),
                ],
                rows,
            ),
            "chart_cache": _results.table(
                [
                    ("cache", f"{CHART_BARS // 1000}k M1 bars, FX"),
                    ("first", "first call, ms"),
                    ("repeat", "repeat, ms"),
                ],
                [
                    {
                        "cache": "with the history cache (default)",
                        "first": first * 1e3,
                        "repeat": again * 1e3,
                    },
                    {
                        "cache": "history_cache_bytes=0",
                        "first": first_0 * 1e3,
                        "repeat": again_0 * 1e3,
                    },
                ],
            ),
        },
        figures={"repeat_ratio": again / again_0},
    )


if __name__ == "__main__":
    main()
