"""CLI polish: global options on either side of the command, one-line settings errors, tables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from aiomt5._cli import _build_app

RUNNER = CliRunner()
COMMANDS_WITH_BACKEND = [
    ("diagnose",),
    ("symbols", "--find", "EURUSD"),
    ("rates", "EURUSD", "H1", "--count", "2"),
    ("ticks", "EURUSD", "--from", "2026-03-04T12:00Z", "--to", "2026-03-04T12:00:05Z"),
    ("account",),
    ("positions",),
]


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiomt5", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS_WITH_BACKEND, ids=lambda c: c[0])
def test_global_options_work_after_the_command(command: tuple[str, ...]) -> None:
    after = RUNNER.invoke(_build_app(), [*command, "--backend", "sim", "--json"])
    assert after.exit_code == 0, after.output
    before = RUNNER.invoke(_build_app(), ["--backend", "sim", "--json", *command])
    assert before.exit_code == 0, before.output
    assert type(json.loads(after.stdout)) is type(json.loads(before.stdout))


def test_the_reported_case_diagnose_backend_sim() -> None:
    result = run_cli("diagnose", "--backend", "sim")
    assert result.returncode == 0, result.stderr
    assert "No such option" not in result.stderr


def test_json_is_accepted_by_every_command() -> None:
    app = _build_app()
    for name in ("demo", "diagnose", "symbols", "rates", "ticks", "account", "positions"):
        shown = RUNNER.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert "--json" in shown.output, name


@pytest.mark.parametrize(
    "command",
    [
        ("rates", "EURUSD", "H1", "--count", "3", "--backend", "sim"),
        ("ticks", "EURUSD", "--from", "2026-03-04", "--backend", "sim"),
        ("diagnose", "--backend", "sim"),
        ("demo", "--seconds", "0"),
    ],
    ids=lambda c: c[0],
)
def test_a_bad_setting_is_one_clear_line(command: tuple[str, ...]) -> None:
    result = run_cli(*command, MT5_TIMEOUT_MS="soon")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "MT5_TIMEOUT_MS" in errors[0]
    assert "connect_timeout" not in result.stderr  # the derived field's echo is left out
    assert result.stdout == ""


def test_a_secret_is_never_echoed_in_a_settings_error() -> None:
    result = run_cli("account", "--backend", "sim", MT5_LOGIN="hunter2-not-a-number")
    assert result.returncode == 1
    assert "hunter2" not in result.stderr + result.stdout
    assert "MT5_LOGIN" in result.stderr


@pytest.mark.parametrize("columns", ["120", "80", "60", "40"])
def test_tables_never_cut_timestamps_or_prices(columns: str) -> None:
    start = "2026-03-04T10:00:05Z"  # both runs see the same bars (the clock starts there)
    args = ("rates", "EURUSD", "M1", "--count", "4", "--backend", "sim")
    result = run_cli(*args, COLUMNS=columns, MT5_SIM_START=start)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= int(columns)
    rows = [line for line in lines if re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line)]
    assert len(rows) == 4  # one line per bar: nothing wrapped onto a second line
    assert "…" not in result.stdout
    bars = json.loads(run_cli("--json", *args, MT5_SIM_START=start).stdout)
    assert str(bars[0]["open"]) in rows[0]  # the price whole, never cut
    if "not shown:" in result.stdout:  # a narrow terminal leaves whole columns out, and says so
        assert "--json" in result.stdout
    else:
        assert "spread" in result.stdout
