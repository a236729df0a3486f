"""``aiomt5 replay``: the command's work (the typer declaration is in ``aiomt5._cli``)."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._run import BotError, Progress, ReplayError, run

__all__ = ["replay_command"]


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Progress | None]:
    """A rich progress bar of simulated time on stderr (None when disabled or not a terminal)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]replay"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[now]}"),
        TimeElapsedColumn(),
    )
    with RichProgress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("replay", total=1.0, now="")

        def update(now: float, start: float, end: float) -> None:
            stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M UTC")
            done = (now - start) / (end - start) if end > start else 1.0
            bar.update(task, completed=min(max(done, 0.0), 1.0), now=stamp)

        yield update


def replay_command(
    bot: Path,
    bot_args: Sequence[str],
    *,
    store: Path | None,
    data: Sequence[str],
    server: str | None,
    date_from: str | None,
    date_to: str | None,
    speed: float | None,
    fast: bool,
    seed: int,
    balance: float,
    report: Path | None,
    as_json: bool,
    progress: bool = True,
) -> int:
    """Run the replay, print the summary, write the report; returns the exit status."""
    errors = sys.stderr
    if store is not None and data:
        errors.write("error: give --store or --data, not both\n")
        return 2
    if store is None and not data:
        errors.write("error: give the recorded market: --store DIR or --data FILE...\n")
        return 2
    if speed is not None and fast:
        errors.write("error: give --speed N or --fast, not both\n")
        return 2
    try:
        with _progress_bar(progress and not as_json) as update:
            result = run(
                bot,
                store=store,
                data=list(data) or None,
                server=server,
                start=_when("--from", date_from),
                end=_when("--to", date_to),
                fast=speed is None,
                speed=speed,
                seed=seed,
                balance=balance,
                args=list(bot_args),
                progress=update,
            )
    except ReplayError as exc:
        if isinstance(exc, BotError) and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=errors)
        errors.write(f"error: {exc}\n")
        return 1
    files = result.write_report(report if report is not None else Path("replay-report.html"))
    if as_json:
        payload: dict[str, Any] = {
            "summary": {k: _finite(v) for k, v in vars(result.summary).items()},
            "start": result.start,
            "end": result.end,
            "simulated_until": result.simulated_until,
            "wall_seconds": result.wall_seconds,
            "mode": result.mode,
            "deals": len(result.deal_rows),
            "files": [str(f) for f in files],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(result.text() + "\n")
        sys.stdout.write("report: " + ", ".join(str(f) for f in files) + "\n")
    return 0


def _finite(value: Any) -> Any:
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    return value


def _when(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(
            f"{option} {text!r}: use an ISO date or time, e.g. 2026-03-02T08:00"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
