"""The checked call: MetaTrader5's failure conventions become typed errors here, and only here.

MetaTrader5 answers a failure with ``None`` or ``False`` (``version()``: ``(0, 0, "")``) and
leaves the reason in ``last_error()``. ``checked(backend, name)`` wraps one function so that it
returns a real result or raises the matching ``MT5Error``: it reads ``last_error()`` in the same
worker job, right after the call, so no other call can reset it in between. The connector's call
path, the connect handshake and the health check all call the backend through it; nothing above
this layer reads ``last_error()`` or compares MT5's codes.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from typing import Any, Final

from aiomt5._core._errors import (
    MT5ConnectionError,
    MT5Error,
    MT5InvalidArgumentError,
    error_from_last_error,
    summarize_call,
)
from aiomt5._core._log import get_logger

from . import Backend, backend_function

__all__ = ["check_failure", "checked", "health_job"]

log = get_logger("aiomt5.worker")

# MT5 documents these as never failing; every other function fails with None or False.
_NEVER_FAILS: Final = frozenset({"last_error", "shutdown"})


def _failed(result: Any) -> bool:
    return result is None or result is False


def _version_failed(result: Any) -> bool:
    # version() answers (0, 0, "") with last_error set; it never returns None.
    return not result or result[0] == 0


def check_failure(
    backend: Backend,
    function: str,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    summary: str | None = None,
) -> MT5Error:
    """The typed error for a call of ``function`` that just returned MT5's failure value.

    Reads ``last_error()`` (call it right after the failed call, on the same thread).

    Args:
        backend: The backend that was called.
        function: The MetaTrader5 function name.
        args: Its positional arguments (summarised, secrets masked, into the error).
        kwargs: Its keyword arguments.
        summary: A ready summary instead of ``args``/``kwargs`` (for masked credentials).
    """
    code, message = backend.last_error()
    if summary is None:
        summary = summarize_call(function, args, kwargs or {})
    error = error_from_last_error(function, code, message, args_summary=summary)
    level = logging.WARNING if isinstance(error, MT5ConnectionError) else logging.DEBUG
    if log.enabled(level):
        emit = log.warning if level == logging.WARNING else log.debug
        emit(
            "aiomt5.worker.call_failed",
            function=function,
            code=code,
            message=message,
            error=type(error).__name__,
        )
    return error


def checked(backend: Backend, function: str) -> Callable[..., Any]:
    """``backend.<function>``, raising the matching ``MT5Error`` instead of returning failure.

    Raises:
        MT5InvalidArgumentError: The backend has no such function (with close matches).
    """
    method = backend_function(backend, function)
    if method is None:
        known = [n for n in dir(backend) if not n.startswith("_")]
        close = difflib.get_close_matches(function, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise MT5InvalidArgumentError(
            f"the backend has no function {function!r}{hint}", function=function
        )
    if function in _NEVER_FAILS:
        return method
    failed = _version_failed if function == "version" else _failed

    def invoke(*args: Any, **kwargs: Any) -> Any:
        # Runs on the worker thread: last_error() is read in this same job, right after the call.
        result = method(*args, **kwargs)
        if failed(result):
            raise check_failure(backend, function, args, kwargs)
        return result

    return invoke


def health_job(backend: Backend) -> Callable[[], tuple[Any, Any]]:
    """One worker job reading ``(terminal_info(), account_info() or None)``.

    The pipe must answer ``terminal_info`` (else it raises); the account may legitimately be
    unreachable while the trade server is down, so its failure is reported as None.
    """
    terminal_info = checked(backend, "terminal_info")
    account_info = backend.account_info

    def check() -> tuple[Any, Any]:
        return terminal_info(), account_info()

    return check
