"""The aiomt5 command line, through its real entry points (subprocess, pty) and typer's runner."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aiomt5._cli import _build_app

RUNNER = CliRunner()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiomt5", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def invoke(*args: str):
    return RUNNER.invoke(_build_app(), list(args))


def test_python_m_aiomt5_lists_symbols_as_json() -> None:
    result = run_cli("--backend", "sim", "--json", "symbols", "*USD*,!*JPY*")
    assert result.returncode == 0, result.stderr
    names = {row["name"] for row in json.loads(result.stdout)}
    assert "EURUSD" in names
    assert not any("JPY" in n for n in names)


def test_backend_defaults_to_mt5_backend_env() -> None:
    result = run_cli("--json", "account", env={"MT5_BACKEND": "sim"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["currency"] == "USD"


def test_user_errors_print_one_line_and_a_hint_without_traceback() -> None:
    result = run_cli("--backend", "sim", "symbols", "--find", "NOSUCH")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr
    assert "NOSUCH" in result.stderr


def test_auto_backend_on_linux_explains_the_alternatives() -> None:
    result = run_cli("--backend", "auto", "account")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "sim" in result.stderr


def test_demo_runs_in_a_pseudo_terminal_and_finishes() -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "aiomt5", "demo", "--seconds", "0.5"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        returncode = process.wait(timeout=60)
        os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))
    assert returncode == 0, text
    assert "\x1b[" in output.decode(errors="replace")  # a terminal gets colours
    for expected in (
        "connected: True",
        "downloaded",
        "live",
        "bought 0.1",
        "closed position",
    ):
        assert expected in text
    assert "demo finished" in text


def test_symbols_info_and_find() -> None:
    found = invoke("--backend", "sim", "--json", "symbols", "--find", "EURUSD")
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout) == {"query": "EURUSD", "symbol": "EURUSD"}
    info = invoke("--backend", "sim", "--json", "symbols", "--info", "XAUUSD")
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["digits"] == 2


def test_rates_by_count_as_json() -> None:
    result = invoke("--backend", "sim", "--json", "rates", "EURUSD", "H1", "--count", "5")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 5
    assert rows[0]["time"] < rows[-1]["time"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rates_written_to_a_file(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"bars{suffix}"
    result = invoke(
        "--backend", "sim", "rates", "EURUSD", "M5",
        "--from", "2026-03-02", "--to", "2026-03-03", "--out", str(target),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert target.stat().st_size > 0
    if suffix == ".csv":
        lines = target.read_text().splitlines()
        assert lines[0].startswith("time,open,high,low,close")
        assert len(lines) == 1 + 289  # 24 h of M5 bars, both ends included


def test_rates_rejects_a_bad_request() -> None:
    result = invoke("--backend", "sim", "rates", "EURUSD", "H1")
    assert result.exit_code == 1
    assert "--count" in result.output
    bad_tf = invoke("--backend", "sim", "rates", "EURUSD", "H7", "--count", "3")
    assert bad_tf.exit_code == 1
    bad_out = invoke("--backend", "sim", "rates", "EURUSD", "H1", "--count", "3", "--out", "x.txt")
    assert bad_out.exit_code == 1


def test_ticks_by_range() -> None:
    result = invoke(
        "--backend", "sim", "--json", "ticks", "EURUSD",
        "--from", "2026-03-04T12:00Z", "--to", "2026-03-04T12:01Z",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows
    assert all(r["bid"] <= r["ask"] for r in rows)


def test_diagnose_gives_a_verdict() -> None:
    result = invoke("--backend", "sim", "--json", "diagnose")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "ok"
    assert report["health"]["ok"] is True
    assert report["symbols"] >= 30


def test_positions_of_a_fresh_account_are_empty() -> None:
    result = invoke("--backend", "sim", "--json", "positions")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_serve_and_a_remote_client_through_the_real_entry_points() -> None:
    token = "cli-test-token-0123456789"
    env = {**os.environ, "MT5_REMOTE_TOKEN": token}
    server = subprocess.Popen(
        [sys.executable, "-m", "aiomt5", "serve", "--backend", "sim", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        match = re.search(r"aiomt5://127\.0\.0\.1:\d+", line)
        assert match, line + server.stderr.read() if server.poll() is not None else line
        result = run_cli("--backend", match.group(0), "--json", "account", env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["login"] == 5001234
        refused = run_cli(
            "--backend", match.group(0), "account", env={"MT5_REMOTE_TOKEN": "wrong-token-0123456"}
        )
        assert refused.returncode == 1
        assert "Traceback" not in refused.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()


def test_serve_json_announces_the_chosen_port_and_its_end_as_json_lines() -> None:
    token = "cli-test-token-0123456789"
    server = subprocess.Popen(
        [sys.executable, "-m", "aiomt5", "serve", "--backend", "sim", "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MT5_REMOTE_TOKEN": token},
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        listening = json.loads(first)
        assert listening["event"] == "listening"
        assert listening["url"] == f"aiomt5://127.0.0.1:{listening['port']}"
        assert listening["port"] > 0
        assert (listening["tls"], listening["token"], listening["backend"]) == (False, True, "sim")
        assert token not in first
        server.send_signal(signal.SIGINT)
        rest, errors = server.communicate(timeout=30)
        assert server.returncode == 0, errors
        (stopped,) = [json.loads(line) for line in rest.splitlines()]
        assert stopped["event"] == "stopped"
        assert stopped["url"] == listening["url"]
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate(timeout=30)


def test_serve_refuses_a_public_address_without_a_token() -> None:
    result = run_cli("serve", "--backend", "sim", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "token" in result.stderr


SATURDAY_NOON = 1781956800.0  # Sat 2026-06-20 12:00 UTC: the FX market is closed
WEDNESDAY_NOON = 1781697600.0  # Wed 2026-06-17 12:00 UTC: open


def _wall_clock_at(monkeypatch: pytest.MonkeyPatch, epoch: float) -> None:
    import aiomt5.sim._setup as setup

    monkeypatch.setattr(setup.time, "time", lambda: epoch)


def test_a_closed_market_starts_the_simulator_in_the_latest_open_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _wall_clock_at(monkeypatch, SATURDAY_NOON)
    result = invoke("--backend", "sim", "--json", "symbols", "--info", "EURUSD")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("\n") == 1  # one line says what happened
    assert "market is closed now (Sat 2026-06-20 12:00 UTC)" in result.stderr
    assert "starts at Fri 2026-06-19 12:00 UTC" in result.stderr
    assert "MT5_SIM_START" in result.stderr
    quoted = json.loads(result.stdout)["time"]
    assert SATURDAY_NOON - 86_400 - 60 <= quoted <= SATURDAY_NOON - 86_400  # Friday noon


def test_an_open_market_or_an_explicit_start_leaves_the_clock_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _wall_clock_at(monkeypatch, WEDNESDAY_NOON)
    assert invoke("--backend", "sim", "--json", "account").stderr == ""
    _wall_clock_at(monkeypatch, SATURDAY_NOON)
    monkeypatch.setenv("MT5_SIM_START", "2026-06-17T10:00:00Z")
    result = invoke("--backend", "sim", "--json", "symbols", "--info", "EURUSD")
    assert result.stderr == ""
    assert 1781690400 - 60 <= json.loads(result.stdout)["time"] <= 1781690400 + 60


def test_demo_as_json_trades_and_streams_several_symbols() -> None:
    # Whatever the day: CI runs this under faketime on a Saturday and on a Wednesday too.
    result = run_cli("--json", "demo", "--seconds", "0.3")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["connected"] is True
    assert report["history"]["bars"] > 0
    assert len({tick["symbol"] for tick in report["ticks"]}) > 1
    assert report["trade"]["opened"]["retcode"] == "TRADE_RETCODE_DONE"
    assert report["trade"]["closed"]["retcode"] == "TRADE_RETCODE_DONE"
