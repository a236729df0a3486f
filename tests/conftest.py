"""Shared fixtures: a clean ``MT5_*`` environment and a guard against unhandled loop exceptions."""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Exceptions the event loop could not hand to anyone ("Task exception was never retrieved",
# "Future exception was never retrieved", errors in callbacks): collected per test, and the
# test fails if any are left (asyncpg's test base does the same).
_loop_errors: list[dict[str, Any]] = []


def _record_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    _loop_errors.append(context)


def _guarded_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_record_loop_error)
    return loop


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Every asyncio test runs on a loop whose unhandled exceptions are recorded."""
    return {"asyncio": _guarded_loop}


@pytest.fixture
def loop_errors() -> list[dict[str, Any]]:
    """The unhandled loop exceptions so far, for tests that expect some (clear what you expect)."""
    return _loop_errors


@pytest.fixture(autouse=True)
def _fail_on_unhandled_loop_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    _loop_errors.clear()
    yield
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        gc.collect()  # "never retrieved" is reported when the future is collected
    if _loop_errors:
        messages = [f"{ctx.get('message')}: {ctx.get('exception')!r}" for ctx in _loop_errors]
        _loop_errors.clear()
        pytest.fail("unhandled exceptions in the event loop:\n" + "\n".join(messages))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``MT5_*`` variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("MT5_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run in an empty directory (no stray ``.env``); returns it, for tests that write one."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
