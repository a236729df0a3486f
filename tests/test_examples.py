"""The scripts in examples/ run as users would run them."""

from __future__ import annotations

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def run(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unmodified_metatrader5_script_runs_on_the_simulator() -> None:
    result = run("metatrader5_script.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "connected: True" in result.stdout
    assert "order_send: 10009 Request executed" in result.stdout
    assert "close: True" in result.stdout
    assert "positions now: 0" in result.stdout
