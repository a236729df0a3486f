"""Library logging: namespaced events over stdlib, nothing configured, and the opt-in layout."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

import aiomt5
import aiomt5.logging
from aiomt5._core._log import get_logger
from aiomt5.sim import DEFAULT_LOGIN, DEFAULT_PASSWORD, SimClock, SimTerminal


class Collect(logging.Handler):
    """Keeps records without formatting them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[Collect]:
    logger = logging.getLogger("aiomt5")
    handler = Collect()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


@pytest.fixture(autouse=True)
def _undo_configuration() -> Iterator[None]:
    yield
    aiomt5.logging.unconfigure()
    aiomt5.logging.use_structlog(False)


def sim_settings(**overrides: Any) -> aiomt5.MT5Settings:
    fields: dict[str, Any] = {"backend": "sim", "testing": True, "sim_start": "2026-03-02T10:00Z"}
    fields.update(overrides)
    return aiomt5.MT5Settings(_env_file=None, **fields)


def test_events_render_as_name_and_fields_and_carry_them_as_extra(collected: Collect) -> None:
    get_logger("aiomt5.test").info("aiomt5.test.happened", function="symbol_info", code=-4)
    (record,) = collected.records
    assert record.getMessage() == "aiomt5.test.happened function=symbol_info code=-4"
    assert record.__dict__["event"] == "aiomt5.test.happened"
    assert record.__dict__["function"] == "symbol_info"
    assert record.__dict__["code"] == -4


def test_fields_named_like_logrecord_attributes_do_not_clash(collected: Collect) -> None:
    get_logger("aiomt5.test").info("aiomt5.test.clash", name="n", args="a")
    (record,) = collected.records
    assert record.name == "aiomt5.test"
    assert (record.__dict__["name_"], record.__dict__["args_"]) == ("n", "a")


def test_values_with_spaces_are_quoted(collected: Collect) -> None:
    get_logger("aiomt5.test").warning("aiomt5.test.q", detail="Terminal: Not found")
    assert collected.records[0].getMessage() == "aiomt5.test.q detail='Terminal: Not found'"


def test_library_events_use_no_field_a_stdlib_record_reserves() -> None:
    """A field named like a LogRecord attribute (``message``, ``name``, ...) cannot travel as
    ``extra``: stdlib refuses it, and ``Formatter.format`` overwrites ``record.message``. The shim
    renames such a field (``message_``), which structlog's ``ProcessorFormatter`` + ``ExtraAdder``
    then shows as ``message_=``; so the library's own events never use those names."""
    import ast

    from aiomt5._core._log import _RESERVED

    source = Path(aiomt5.__file__).parent
    offenders = []
    for path in sorted(source.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in {"debug", "info", "warning", "error", "exception"}:
                continue
            if not (node.args and isinstance(node.args[0], ast.Constant)):
                continue
            if not str(node.args[0].value).startswith("aiomt5."):
                continue
            offenders += [
                f"{path.relative_to(source)}:{node.lineno} {kw.arg}="
                for kw in node.keywords
                if kw.arg in _RESERVED
            ]
    assert offenders == []


def test_structlog_processor_formatter_shows_fields_by_their_names(collected: Collect) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.KeyValueRenderer(key_order=["event"]),
            ],
        )
    )
    logger = logging.getLogger("aiomt5")
    logger.addHandler(handler)
    try:
        from aiomt5._backends._checked import check_failure
        from aiomt5.sim import SimTerminal as _Sim

        term = _Sim(seed=0)
        term.initialize()
        term.symbol_info("NOPE")
        logging.getLogger("aiomt5.worker").setLevel(logging.DEBUG)
        check_failure(term, "symbol_info", ("NOPE",))
    finally:
        logger.removeHandler(handler)
        logging.getLogger("aiomt5.worker").setLevel(logging.NOTSET)
    line = stream.getvalue().strip()
    assert line.startswith("event='aiomt5.worker.call_failed'"), line
    assert "detail=" in line, line
    assert "message_" not in line, line


def test_disabled_levels_build_nothing(collected: Collect) -> None:
    class Loud:
        def __repr__(self) -> str:
            raise AssertionError("rendered")

        __str__ = __repr__

    logging.getLogger("aiomt5").setLevel(logging.INFO)
    log = get_logger("aiomt5.test")
    assert not log.enabled(logging.DEBUG)
    log.debug("aiomt5.test.hidden", value=Loud())
    log.info("aiomt5.test.shown", value=1)
    assert [r.__dict__["event"] for r in collected.records] == ["aiomt5.test.shown"]


async def test_bound_contextvars_reach_events_from_the_worker_thread(collected: Collect) -> None:
    async with aiomt5.AsyncMT5Connector(sim_settings()) as mt5:
        structlog.contextvars.bind_contextvars(strategy="mean-revert-7")
        try:
            with pytest.raises(aiomt5.MT5SymbolNotFoundError):
                await mt5.get_symbol_info("NOPE")
        finally:
            structlog.contextvars.unbind_contextvars("strategy")
    (failed,) = [r for r in collected.records if r.__dict__["event"] == "aiomt5.worker.call_failed"]
    assert str(failed.threadName).startswith("aiomt5-worker")
    assert failed.__dict__["strategy"] == "mean-revert-7"
    assert "strategy=mean-revert-7" in failed.getMessage()


async def test_connector_events_are_namespaced(collected: Collect) -> None:
    term = SimTerminal(seed=0, clock=SimClock.fixed("2026-03-02T10:00Z"))
    async with aiomt5.AsyncMT5Connector(sim_settings(), backend=term) as mt5:
        hang = term.faults.hang("order_check")
        with pytest.raises(aiomt5.MT5OutcomeUnknownError):
            await mt5.call("order_check", {"action": 1}, timeout=0.2)
        late = asyncio.Event()
        mt5.add_event_hook(lambda event: late.set())
        hang.release()
        await late.wait()
        hang = term.faults.hang("symbol_info_tick")
        with pytest.raises(aiomt5.MT5TimeoutError):
            await mt5.call("symbol_info_tick", "EURUSD", timeout=0.2)
        hang.release()
    events = {r.__dict__["event"] for r in collected.records}
    assert {
        "aiomt5.connector.connect_attempt",
        "aiomt5.connector.connected",
        "aiomt5.connector.state_changed",
        "aiomt5.worker.outcome_unknown",
        "aiomt5.worker.late_result",
        "aiomt5.worker.call_timed_out",
    } <= events
    assert all(event.startswith("aiomt5.") for event in events)
    by_event = {r.__dict__["event"]: r for r in collected.records}
    assert by_event["aiomt5.worker.late_result"].levelno == logging.WARNING
    assert by_event["aiomt5.connector.connect_attempt"].levelno == logging.INFO


async def test_the_library_configures_neither_logging_nor_structlog() -> None:
    root_handlers = list(logging.getLogger().handlers)
    async with aiomt5.mt5_connection(sim_settings()) as mt5:
        await mt5.get_terminal_info()
    assert logging.getLogger("aiomt5").handlers == []
    assert logging.getLogger().handlers == root_handlers
    assert not structlog.is_configured()


async def test_secrets_never_reach_the_log(collected: Collect) -> None:
    settings = sim_settings(
        attach_first=False, login=DEFAULT_LOGIN, password=DEFAULT_PASSWORD, server="AioMT5-Demo"
    )
    term = SimTerminal(seed=0, clock=SimClock.fixed("2026-03-02T10:00Z"))
    term.faults.reject_login()
    with pytest.raises(aiomt5.MT5LoginError):
        await aiomt5.AsyncMT5Connector(settings, backend=term).connect()
    async with aiomt5.AsyncMT5Connector(settings, backend=SimTerminal()) as mt5:
        await mt5.call("login", DEFAULT_LOGIN, DEFAULT_PASSWORD)
    assert collected.records
    for record in collected.records:
        assert DEFAULT_PASSWORD not in record.getMessage()
        assert DEFAULT_PASSWORD not in str(record.__dict__)


def test_configure_gives_a_daily_debug_file_and_an_info_console(tmp_path: Path) -> None:
    console = io.StringIO()
    aiomt5.logging.configure(log_dir=tmp_path, stream=console)
    log = get_logger("aiomt5.test")
    log.debug("aiomt5.test.detail", n=1)
    log.info("aiomt5.test.summary", n=2)
    for handler in logging.getLogger("aiomt5").handlers:
        handler.flush()
    (logfile,) = tmp_path.iterdir()
    assert logfile.name == f"mt5_connector_{time.strftime('%Y%m%d')}.log"
    text = logfile.read_text(encoding="utf-8")
    assert "aiomt5.test.detail n=1" in text
    assert "aiomt5.test.summary n=2" in text
    assert "aiomt5.test.summary n=2" in console.getvalue()
    assert "aiomt5.test.detail" not in console.getvalue()


def test_configure_twice_replaces_and_unconfigure_restores(tmp_path: Path) -> None:
    logger = logging.getLogger("aiomt5")
    level, propagate = logger.level, logger.propagate
    aiomt5.logging.configure(log_dir=tmp_path, stream=io.StringIO())
    aiomt5.logging.configure(log_dir=tmp_path, stream=io.StringIO())
    assert len(logger.handlers) == 2
    aiomt5.logging.unconfigure()
    assert logger.handlers == []
    assert (logger.level, logger.propagate) == (level, propagate)


def test_daily_file_switches_when_the_date_changes(tmp_path: Path) -> None:
    now = [time.mktime((2026, 3, 2, 23, 59, 0, 0, 0, -1))]
    handler = aiomt5.logging.DailyFileHandler(tmp_path, now=lambda: now[0])
    handler.setFormatter(logging.Formatter("%(message)s"))
    record = logging.LogRecord("aiomt5", logging.INFO, __file__, 1, "before midnight", None, None)
    handler.emit(record)
    now[0] += 120
    record.msg = "after midnight"
    handler.emit(record)
    handler.close()
    assert (tmp_path / "mt5_connector_20260302.log").read_text(encoding="utf-8") == (
        "before midnight\n"
    )
    assert (tmp_path / "mt5_connector_20260303.log").read_text(encoding="utf-8") == (
        "after midnight\n"
    )


def test_use_structlog_routes_events_through_structlog(collected: Collect) -> None:
    aiomt5.logging.use_structlog()
    with structlog.testing.capture_logs() as captured:
        get_logger("aiomt5.test").info("aiomt5.test.via_structlog", symbol="EURUSD")
    assert captured == [
        {"event": "aiomt5.test.via_structlog", "symbol": "EURUSD", "log_level": "info"}
    ]
