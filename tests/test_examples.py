"""The scripts in examples/ run as users would run them."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

from aiomt5 import AsyncMT5Connector, MT5Settings
from aiomt5._remote import RemoteServer
from aiomt5.sim import SimClock, SimTerminal, make_module

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


def _load_bot():
    spec = importlib.util.spec_from_file_location("example_bot", EXAMPLES / "bot.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def test_bot_script_runs_on_the_simulator() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "bot.py"), "--bars", "60"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("60 bars, ")


async def test_bot_survives_a_broken_pipe_and_a_lost_reply_without_duplicates() -> None:
    bot = _load_bot()
    terminal = SimTerminal(seed=7, clock=SimClock.fixed("2026-03-02T08:00:00Z"))

    async def fast_sleep(seconds: float) -> None:
        terminal.clock.advance(seconds)
        await asyncio.sleep(0)

    def on_bar(count: int) -> None:
        if count == 25:
            terminal.faults.break_pipe()
        if count == 40:
            terminal.faults.lose_reply("order_send", times=2)

    settings = MT5Settings(backend="sim", testing=True, health_check=False, call_timeout=5.0)
    async with AsyncMT5Connector(settings, backend=terminal) as mt5:
        report = await bot.run_bot(mt5, bars=90, sleep=fast_sleep, on_bar=on_bar)
        mine = [p for p in await mt5.positions("EURUSD") if p.magic == bot.MAGIC]
        stats = mt5.get_connection_stats()
    assert report.bars == 90
    assert report.trades > 0
    assert len(mine) <= 1  # never two positions: no order was sent twice
    assert stats.reconnects >= 1
    kinds = [(r.function, r.kind) for r in terminal.faults.fired]
    assert ("order_send", "fail") in kinds  # a reply really was lost after execution


SYNC_EXAMPLES = ["sync_script.py", "compat_script.py"]
EXAMPLE_TOKEN = "example-token-" + "5eed" * 6


def _run_with(name: str, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("name", SYNC_EXAMPLES)
def test_synchronous_examples_run_on_the_simulator(name: str) -> None:
    result = _run_with(name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "positions now: 0" in result.stdout


@pytest.mark.parametrize("name", SYNC_EXAMPLES)
def test_synchronous_examples_run_against_aiomt5_serve(name: str) -> None:
    remote = SimTerminal(seed=3, clock=SimClock.fixed("2026-03-04T12:00:00Z"))
    with RemoteServer(make_module(remote), port=0, token=EXAMPLE_TOKEN) as server:
        server.start()
        result = _run_with(name, "--backend", server.url, env={"MT5_REMOTE_TOKEN": EXAMPLE_TOKEN})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "positions now: 0" in result.stdout
    assert remote.calls["order_send"] == 2  # opened and closed on the remote terminal


def test_every_example_is_linked_from_the_readme_and_the_docs() -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    docs = "".join(p.read_text() for p in (EXAMPLES.parent / "docs").glob("*.md"))
    for example in sorted(EXAMPLES.glob("*.py")):
        assert f"examples/{example.name}" in readme, example.name
        assert f"examples/{example.name}" in docs, example.name
