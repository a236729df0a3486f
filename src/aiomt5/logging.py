"""Opt-in logging setup for applications (the library itself never configures logging).

``configure(log_dir="logs")`` gives the classic layout: a daily file
``logs/mt5_connector_YYYYMMDD.log`` with everything from DEBUG up, and the console at INFO.
It attaches handlers to the ``aiomt5`` logger only (not the root logger) unless told otherwise,
and calling it again replaces what it installed before. ``unconfigure()`` removes it all.

``use_structlog()`` sends aiomt5's events through the application's structlog configuration
instead of plain stdlib records.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final

from ._core._log import set_structlog

__all__ = ["DEFAULT_FORMAT", "DailyFileHandler", "configure", "unconfigure", "use_structlog"]

DEFAULT_FORMAT: Final = "%(asctime)s %(levelname)-8s %(name)s %(message)s"
_MARK: Final = "_aiomt5_configured"


class DailyFileHandler(logging.FileHandler):
    """Writes to ``<directory>/<prefix>YYYYMMDD.log``, switching files when the local date changes.

    Args:
        directory: Where the files go (created if missing).
        prefix: File name before the date.
        now: Clock returning epoch seconds (tests pass a fake one).
    """

    def __init__(
        self,
        directory: str | Path,
        prefix: str = "mt5_connector_",
        *,
        now: Callable[[], float] = time.time,
        encoding: str = "utf-8",
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self._now = now
        self._day = self._today()
        super().__init__(self._path_for(self._day), encoding=encoding, delay=True)

    def _today(self) -> str:
        return time.strftime("%Y%m%d", time.localtime(self._now()))

    def _path_for(self, day: str) -> Path:
        return self.directory / f"{self.prefix}{day}.log"

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record, first switching to a new file if the day has changed."""
        day = self._today()
        if day != self._day:
            self.acquire()
            try:
                self._day = day
                if self.stream is not None:
                    self.stream.close()
                    self.stream = None  # reopened lazily by FileHandler.emit
                self.baseFilename = str(self._path_for(day).resolve())
            finally:
                self.release()
        super().emit(record)


def configure(
    log_dir: str | Path | None = "logs",
    *,
    console: bool = True,
    console_level: int | str = logging.INFO,
    file_level: int | str = logging.DEBUG,
    logger: str = "aiomt5",
    fmt: str = DEFAULT_FORMAT,
    stream: IO[str] | None = None,
    propagate: bool = False,
) -> tuple[logging.Handler, ...]:
    """Install the daily-file + console layout on ``logger`` (default: the ``aiomt5`` logger).

    Args:
        log_dir: Directory of the daily ``mt5_connector_YYYYMMDD.log`` files; ``None``: no file.
        console: Also log to the console (``stream``, default stderr).
        console_level: Console threshold (default INFO).
        file_level: File threshold (default DEBUG).
        logger: Which logger gets the handlers; ``""`` for the root logger.
        fmt: ``logging.Formatter`` format string for both handlers.
        stream: Console stream (default ``sys.stderr``).
        propagate: Whether records also reach ancestor loggers' handlers (avoids double lines
            when the application configured the root logger too, if left False).

    Returns:
        The handlers installed.
    """
    target = logging.getLogger(logger)
    unconfigure(logger)
    formatter = logging.Formatter(fmt)
    handlers: list[logging.Handler] = []
    if log_dir is not None:
        file_handler = DailyFileHandler(log_dir)
        file_handler.setLevel(file_level)
        handlers.append(file_handler)
    if console:
        console_handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        console_handler.setLevel(console_level)
        handlers.append(console_handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _MARK, True)
        target.addHandler(handler)
    levels = [h.level for h in handlers] or [logging.WARNING]
    setattr(target, _MARK, (target.level, target.propagate))
    target.setLevel(min(levels))
    target.propagate = propagate
    return tuple(handlers)


def unconfigure(logger: str = "aiomt5") -> None:
    """Remove the handlers ``configure`` installed on ``logger`` and restore its level."""
    target = logging.getLogger(logger)
    for handler in [h for h in target.handlers if getattr(h, _MARK, False)]:
        target.removeHandler(handler)
        handler.close()
    saved = target.__dict__.pop(_MARK, None)
    if saved is not None:
        target.setLevel(saved[0])
        target.propagate = saved[1]


def use_structlog(enabled: bool = True) -> None:
    """Send aiomt5's events through ``structlog.stdlib.get_logger`` (your structlog configuration).

    Levels still follow the stdlib ``aiomt5.*`` loggers.
    """
    set_structlog(enabled)
