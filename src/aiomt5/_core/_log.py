"""Library logging: a thin structlog shim over stdlib ``logging`` that never configures anything.

Events are namespaced names (``aiomt5.worker.call_timed_out``) with key/value fields. By default
they go to the stdlib logger of the area (``logging.getLogger("aiomt5.worker")``) with:

* the message rendered as ``event key=value ...`` (readable with any plain formatter), and
* the event name and fields also attached as ``extra`` (so ``structlog.stdlib.ExtraAdder`` or
  a JSON formatter see them as data),
* values bound with ``structlog.contextvars.bind_contextvars`` merged in, so the application's
  request/strategy ids reach the worker thread's log lines too.

An unconfigured application therefore only sees WARNING and above (stdlib's last resort).
``aiomt5.logging.use_structlog()`` opts into sending events through the application's structlog
configuration instead. Levels are always those of the stdlib loggers, so hot paths check
``Logger.enabled(level)`` (one dict lookup) before building any field.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Final

import structlog

__all__ = ["Logger", "Outage", "get_logger", "set_structlog"]

# LogRecord attributes: an ``extra`` key with one of these names makes stdlib raise.
_RESERVED: Final = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
    }
)


class _State:
    via_structlog = False


def set_structlog(enabled: bool) -> None:
    """Route events through ``structlog.stdlib.get_logger`` (the app's structlog config) or not."""
    _State.via_structlog = enabled


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        plain = value and not any(ch.isspace() or ch in "='\"" for ch in value)
        return value if plain else repr(value)
    return str(value)


class _Message:
    """The log message, rendered lazily: only when a handler formats the record."""

    __slots__ = ("event", "fields")

    def __init__(self, event: str, fields: dict[str, Any]) -> None:
        self.event = event
        self.fields = fields

    def __str__(self) -> str:
        if not self.fields:
            return self.event
        rendered = " ".join(f"{key}={_render_value(value)}" for key, value in self.fields.items())
        return f"{self.event} {rendered}"


class Logger:
    """A named event logger (``get_logger("aiomt5.worker")``); cheap, thread-safe."""

    __slots__ = ("_std", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._std = logging.getLogger(name)

    def enabled(self, level: int) -> bool:
        """True when an event at ``level`` would be emitted; check it before costly fields."""
        return self._std.isEnabledFor(level)

    def debug(self, event: str, **fields: Any) -> None:
        """Emit ``event`` at DEBUG."""
        if self._std.isEnabledFor(logging.DEBUG):
            self._emit(logging.DEBUG, event, fields, None)

    def info(self, event: str, **fields: Any) -> None:
        """Emit ``event`` at INFO."""
        if self._std.isEnabledFor(logging.INFO):
            self._emit(logging.INFO, event, fields, None)

    def warning(self, event: str, **fields: Any) -> None:
        """Emit ``event`` at WARNING."""
        if self._std.isEnabledFor(logging.WARNING):
            self._emit(logging.WARNING, event, fields, None)

    def error(self, event: str, *, exc_info: BaseException | None = None, **fields: Any) -> None:
        """Emit ``event`` at ERROR, with a traceback when ``exc_info`` is given."""
        if self._std.isEnabledFor(logging.ERROR):
            self._emit(logging.ERROR, event, fields, exc_info)

    def exception(self, event: str, **fields: Any) -> None:
        """Emit ``event`` at ERROR with the exception being handled (call it in ``except``)."""
        if self._std.isEnabledFor(logging.ERROR):
            self._emit(logging.ERROR, event, fields, sys.exc_info()[1])

    def _emit(
        self, level: int, event: str, fields: dict[str, Any], exc_info: BaseException | None
    ) -> None:
        context = structlog.contextvars.get_contextvars()
        if context:
            fields = {**context, **fields}
        if _State.via_structlog:
            if exc_info is not None:
                fields = {**fields, "exc_info": exc_info}
            structlog.stdlib.get_logger(self.name).log(level, event, **fields)
            return
        extra = {(f"{key}_" if key in _RESERVED else key): value for key, value in fields.items()}
        extra["event"] = event
        # stacklevel 3: the record points at the code that called debug()/info(), not at us.
        self._std.log(level, _Message(event, fields), exc_info=exc_info, extra=extra, stacklevel=3)


def get_logger(name: str) -> Logger:
    """The event logger for an area of the library (``"aiomt5.connector"``...)."""
    return Logger(name)


class Outage:
    """Warnings repeated while something stays broken, logged once, then summed up.

    The first ``warning()`` of an outage is logged; the repeats (one per retry, say) only at
    DEBUG and counted; ``ended()`` logs one INFO line with how many there were and for how long.
    A retry loop therefore says "connection lost" once and "resumed after 57 retries" once,
    however long the outage lasts.
    """

    __slots__ = ("_log", "_repeats", "_since")

    def __init__(self, logger: Logger) -> None:
        self._log = logger
        self._repeats = 0
        self._since: float | None = None

    @property
    def active(self) -> bool:
        """True between the first warning and ``ended()``."""
        return self._since is not None

    def warning(self, event: str, **fields: Any) -> None:
        """Log ``event`` if it starts an outage; count it (DEBUG) if one is going on."""
        if self._since is None:
            self._since = time.monotonic()
            self._log.warning(event, **fields)
        else:
            self._repeats += 1
            self._log.debug(event, repeat=self._repeats, **fields)

    def ended(self, event: str, **fields: Any) -> None:
        """Log ``event`` once with the outage's ``retries`` and ``seconds``; no-op without one."""
        if self._since is None:
            return
        seconds = round(time.monotonic() - self._since, 3)
        self._log.info(event, retries=self._repeats + 1, seconds=seconds, **fields)
        self._since, self._repeats = None, 0
