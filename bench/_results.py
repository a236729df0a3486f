"""Benchmark results as JSON: the one source of the docs' benchmark tables, charts and figures.

A script takes ``--json PATH`` (``add_option``) and, after printing its report, hands its tables
and figures to ``write``. The committed results live in ``docs/assets/bench/<name>.json``;
``bench/charts.py`` draws the charts from them and ``tests/_docs_gen.py`` makes the tables and
the figures quoted in the pages, so a number is typed in nowhere. Refresh one with, e.g.::

    python bench/bench_worker.py --json docs/assets/bench/worker.json
    python bench/charts.py && python tests/test_docs.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]


def add_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--json PATH``: also write the results there (``docs/assets/bench/<name>.json``)."""
    parser.add_argument(
        "--json",
        metavar="PATH",
        type=pathlib.Path,
        default=None,
        help="also write the results as JSON (the docs' source: docs/assets/bench/NAME.json)",
    )


def table(columns: Sequence[tuple[str, str]], rows: Sequence[Row]) -> dict[str, Any]:
    """One table: ``columns`` as ``(key, label)``, ``rows`` as dicts holding every key."""
    for row in rows:
        missing = [key for key, _ in columns if key not in row]
        if missing:
            raise ValueError(f"row {dict(row)} has no value for the columns {missing}")
    return {
        "columns": [{"key": key, "label": label} for key, label in columns],
        "rows": [dict(row) for row in rows],
    }


def slug(key: str) -> str:
    """A figure's key as pages quote it: words, digits, dots and underscores only."""
    return re.sub(r"[^\w.]+", "_", key).strip("_").lower()


def _command() -> str:
    """The command that ran, without its ``--json`` option (it reproduces the figures)."""
    args = sys.argv[1:]
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--json":
            skip = True
            continue
        if arg.startswith("--json="):
            continue
        kept.append(arg)
    script = pathlib.Path(sys.argv[0])
    name = f"bench/{script.name}" if script.parent.name == "bench" else str(script)
    return shlex.join(["python", name, *kept])


def write(
    path: pathlib.Path | None,
    *,
    tables: Mapping[str, Mapping[str, Any]],
    figures: Mapping[str, float | int | str] | None = None,
    notes: str = "",
) -> None:
    """Write the results to ``path`` (nothing when None), with the command, date and load."""
    if path is None:
        return
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    data = {
        "command": _command(),
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "machine": f"{os.cpu_count()} cores, load average {load}",
        "notes": notes,
        "tables": {name: dict(value) for name, value in tables.items()},
        "figures": {slug(key): value for key, value in (figures or {}).items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    print(f"\nresults written to {path}")
