"""Benchmark: remote terminals on loopback — mt5linux's client vs ``mt5linux://`` vs ``aiomt5://``.

Three clients, same run, same simulated terminal (seeded, frozen clock, 200k-bar limit), each
server in its own process:

* **mt5linux** — the ``mt5linux`` client package against its server, ``python -m mt5linux``
  (an rpyc classic server) with the simulator installed as ``MetaTrader5``. Its struct
  results are netrefs, so reading ``tick.bid`` and ``tick.ask`` is part of the cost (as in any
  bot); its ``copy_rates_*`` results are pickled over (``rpyc.classic.obtain``).
* **mt5linux://** — our backend against another ``python -m mt5linux`` (after its setup the
  connection speaks aiomt5's framed protocol: see docs/remote.md).
* **aiomt5://** — our backend against ``aiomt5 serve`` (token authenticated).

Calls: a trivial call (``version()``), ``symbol_info_tick`` + reading bid/ask, and
``copy_rates_from_pos`` of 100 and 100,000 M1 bars. Rounds interleave the clients so load
spikes hit all of them, in a shuffled order, each after a few untimed calls; the median
per-call time is reported with the ratio to mt5linux.
Goals: trivial call <= 0.7x mt5linux; 100k bars <= 0.1x mt5linux.

Run: ``.venv/bin/python bench/bench_remote.py [--rounds N]`` (needs ``pip install mt5linux``).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import _results
from aiomt5._remote import remote_backend
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal, make_module

TOKEN = "bench-token-" + "0123456789abcdef" * 2
# The servers' terminal, as source for their processes; main() builds the same in-process.
SIM = "SimTerminal(seed=3, clock=SimClock.fixed('2026-03-02T10:00Z'), maxbars=200_000)"

# The mt5linux server is the package's own `python -m mt5linux`, with this MetaTrader5.py (the
# simulator) on its PYTHONPATH, as the real package would be in the Wine Python.
MT5_SHIM = textwrap.dedent(
    f"""
    import aiomt5.sim
    from aiomt5.sim import SimClock, SimTerminal
    aiomt5.sim.install({SIM})
    """
)
_STARTED = re.compile(r"server started on \[[^\]]*\]:(\d+)")

AIOMT5_SERVER = textwrap.dedent(
    f"""
    import sys
    from aiomt5.sim import SimClock, SimTerminal, make_module
    from aiomt5._remote import RemoteServer
    server = RemoteServer(make_module({SIM}), port=0, token={TOKEN!r})
    sys.stdout.write(f"{{server.port}}\\n")
    sys.stdout.flush()
    server.serve_forever()
    """
)

# (label, calls per round, operation name)
CASES = [
    ("trivial call (version)", 200, "trivial"),
    ("symbol_info_tick + bid/ask", 200, "tick"),
    ("copy_rates_from_pos 100", 50, "rates100"),
    ("copy_rates_from_pos 100k", 2, "rates100k"),
]


@contextmanager
def server(source: str) -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", source], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        yield int(process.stdout.readline())
    finally:
        process.terminate()
        process.communicate()


@contextmanager
def mt5linux_server() -> Iterator[int]:
    """``python -m mt5linux`` on an ephemeral loopback port (read from its log line)."""
    with tempfile.TemporaryDirectory() as shim_dir:
        (Path(shim_dir) / "MetaTrader5.py").write_text(MT5_SHIM)
        path = os.pathsep.join(p for p in (shim_dir, os.environ.get("PYTHONPATH", "")) if p)
        process = subprocess.Popen(
            [sys.executable, "-m", "mt5linux", "--host", "127.0.0.1", "--port", "0"],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        assert process.stderr is not None
        try:
            for line in process.stderr:
                if found := _STARTED.search(line):
                    break
            else:
                sys.exit("python -m mt5linux did not start")
            # rpyc logs every connection; keep its pipe drained so the server never blocks on it
            threading.Thread(target=process.stderr.read, daemon=True).start()
            yield int(found[1])
        finally:
            process.terminate()
            process.wait()  # not communicate(): the drain thread owns stderr


def operations(mt5: Any) -> dict[str, Callable[[], object]]:
    def tick() -> object:
        t = mt5.symbol_info_tick("EURUSD")
        return (t.bid, t.ask)

    return {
        "trivial": mt5.version,
        "tick": tick,
        "rates100": lambda: mt5.copy_rates_from_pos("EURUSD", 1, 0, 100),
        "rates100k": lambda: mt5.copy_rates_from_pos("EURUSD", 1, 0, 100_000),
    }


def per_call(operation: Callable[[], object], calls: int) -> float:
    # A server process idle while the others were measured wakes up slowly (its CPU dozed):
    # untimed calls first, so no client pays for the order it is measured in.
    for _ in range(max(1, calls // 10)):
        operation()
    start = time.perf_counter()
    for _ in range(calls):
        operation()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    _results.add_option(parser)
    options = parser.parse_args()
    try:
        import mt5linux
    except ImportError:
        sys.exit("this benchmark compares with the mt5linux client: pip install mt5linux")

    settings = MT5Settings(backend="sim")
    # The same calls in-process: the servers' own share of every remote time.
    local = make_module(
        SimTerminal(seed=3, clock=SimClock.fixed("2026-03-02T10:00Z"), maxbars=200_000)
    )
    local.initialize()
    local_ops = operations(local)
    # A server process per client: state one client leaves in a shared server (mt5linux's
    # netrefs, a bigger heap for the garbage collector) would slow the other one down.
    with (
        mt5linux_server() as classic_port,
        mt5linux_server() as ours_port,
        server(AIOMT5_SERVER) as serve_port,
    ):
        clients = {
            "mt5linux": mt5linux.MetaTrader5(host="127.0.0.1", port=classic_port),
            "mt5linux://": remote_backend(f"mt5linux://127.0.0.1:{ours_port}", settings),
            "aiomt5://": remote_backend(f"aiomt5://127.0.0.1:{serve_port}", settings, token=TOKEN),
        }
        ops = {}
        for name, client in clients.items():
            if not client.initialize():
                sys.exit(f"{name}: initialize failed: {client.last_error()}")
            ops[name] = operations(client)
            for operation in ops[name].values():
                assert operation() is not None  # warm up, and check every call works
        ops["local"] = local_ops
        results: dict[tuple[str, str], list[float]] = {}
        # A shuffled order each round (seeded): a client measured right after mt5linux's runs
        # slower (its garbage, its cold caches), and no client should always be the one.
        shuffle = random.Random(0).shuffle
        order = list(ops)
        for _ in range(options.rounds):
            for _, calls, key in CASES:
                shuffle(order)
                for name in order:
                    results.setdefault((key, name), []).append(per_call(ops[name][key], calls))

    print(f"remote terminals on loopback, median of {options.rounds} rounds (lower is better)")
    header = f"{'call':<28}{'in-process':>12}{'mt5linux':>12}{'mt5linux://':>14}{'aiomt5://':>12}"
    print(header + f"{'ratios':>22}{'net of sim':>22}")
    for label, _, key in CASES:
        sim, base, ours, serve = (
            statistics.median(results[(key, name)])
            for name in ("local", "mt5linux", "mt5linux://", "aiomt5://")
        )
        print(
            f"{label:<28}{_fmt(sim):>12}{_fmt(base):>12}{_fmt(ours):>14}{_fmt(serve):>12}"
            f"{ours / base:>10.2f}x {serve / base:>9.2f}x"
            f"{(ours - sim) / (base - sim):>10.2f}x {(serve - sim) / (base - sim):>9.2f}x"
        )
    print("ratios: mt5linux:// / mt5linux, aiomt5:// / mt5linux; 'net of sim' subtracts the")
    print("in-process time of the call (the simulated terminal's own work) from both sides")
    print("goals: trivial call <= 0.7x; copy_rates_from_pos 100k <= 0.1x")
    names = {"local": "in_process", "mt5linux": "mt5linux", "mt5linux://": "ours"}
    names["aiomt5://"] = "serve"
    rows = [
        {"call": label, **{names[n]: statistics.median(results[(key, n)]) * 1e6 for n in names}}
        for label, _, key in CASES
    ]
    for row in rows:
        row["ours_ratio"] = row["ours"] / row["mt5linux"]
        row["serve_ratio"] = row["serve"] / row["mt5linux"]
    _results.write(
        options.json,
        tables={
            "calls": _results.table(
                [
                    ("call", "Call (µs per call)"),
                    ("in_process", "in-process"),
                    ("mt5linux", "mt5linux"),
                    ("ours", "mt5linux://"),
                    ("ours_ratio", "÷ mt5linux"),
                    ("serve", "aiomt5://"),
                    ("serve_ratio", "÷ mt5linux"),
                ],
                rows,
            )
        },
        figures={
            f"{key}_{column}": row[column]
            for (_, _, key), row in zip(CASES, rows, strict=True)
            for column in ("in_process", "mt5linux", "ours", "serve", "ours_ratio", "serve_ratio")
        },
    )


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us" if seconds < 0.01 else f"{seconds * 1e3:.1f} ms"


if __name__ == "__main__":
    main()
