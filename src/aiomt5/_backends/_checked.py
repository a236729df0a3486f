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
    REMOTE_BUSY,
    REMOTE_PROTOCOL,
    REMOTE_REPLY_TOO_LARGE,
    MT5AutoTradingDisabledError,
    MT5CallError,
    MT5CallFailedError,
    MT5ConnectionError,
    MT5Error,
    MT5InitializationError,
    MT5InvalidArgumentError,
    MT5InvalidParamsError,
    MT5IPCTimeoutError,
    MT5LoginError,
    MT5NotConnectedError,
    MT5NotFoundError,
    MT5ProtocolError,
    MT5ReplyTooLargeError,
    MT5ServerBusyError,
    MT5SymbolNotFoundError,
    summarize_call,
)
from aiomt5._core._log import get_logger
from aiomt5._core._worker import plain_call

from . import Backend, backend_function

__all__ = [
    "BatchCall",
    "check_failure",
    "checked",
    "checked_many",
    "error_from_last_error",
    "health_job",
]

BatchCall = tuple[tuple[Any, ...], dict[str, Any] | None]
"""One call of a batch: its positional and keyword arguments."""

log = get_logger("aiomt5.worker")

# MT5 documents these as never failing; every other function fails with None or False.
_NEVER_FAILS: Final = frozenset({"last_error", "shutdown"})


_BY_CODE: Final[dict[int, type[MT5Error]]] = {
    -10000: MT5ConnectionError,
    -10001: MT5ConnectionError,
    -10002: MT5ConnectionError,
    -10003: MT5InitializationError,
    -10004: MT5NotConnectedError,
    -10005: MT5IPCTimeoutError,
    -6: MT5LoginError,
    -4: MT5NotFoundError,
    -8: MT5AutoTradingDisabledError,
    REMOTE_BUSY: MT5ServerBusyError,
    REMOTE_PROTOCOL: MT5ProtocolError,
    REMOTE_REPLY_TOO_LARGE: MT5ReplyTooLargeError,
}
# Codes whose meaning depends on the function: initialize() failing says why it could not start.
_CALL_FAILED: Final = -1
_INVALID_PARAMS: Final = -2

# Functions whose only lookup key is a symbol: "not found" there means "no such symbol".
_SYMBOL_FUNCTIONS: Final = frozenset(
    {
        "symbol_info",
        "symbol_info_tick",
        "symbol_select",
        "market_book_add",
        "market_book_get",
        "market_book_release",
        "copy_rates_from",
        "copy_rates_from_pos",
        "copy_rates_range",
        "copy_ticks_from",
        "copy_ticks_range",
    }
)

_HINTS: Final[dict[type[MT5Error], str]] = {
    MT5NotConnectedError: "the terminal pipe is closed; reconnect (connector.connect())",
    MT5InitializationError: (
        "check that MetaTrader 5 is installed, `path` points at terminal64.exe, and the "
        "process runs in an interactive desktop session"
    ),
    MT5LoginError: "check login, password and server (MT5_LOGIN, MT5_PASSWORD, MT5_SERVER)",
    MT5IPCTimeoutError: "the terminal did not reach the trade server; check the server name",
    MT5AutoTradingDisabledError: (
        "enable 'Allow algorithmic trading' in the terminal (Tools > Options > Expert Advisors)"
    ),
}


def error_from_last_error(
    function: str,
    code: int,
    message: str,
    *,
    args_summary: str | None = None,
) -> MT5Error:
    """Build the most specific error for a failed MetaTrader5 call.

    This is the single choke point from MT5's ``last_error()`` to the exception tree.

    Args:
        function: The MetaTrader5 function that returned its failure value.
        code: ``last_error()[0]``.
        message: ``last_error()[1]``.
        args_summary: The call as ``summarize_call`` renders it.

    Returns:
        An ``MT5Error`` subclass instance (not raised).
    """
    said = (code, message)
    cls = _BY_CODE.get(code)
    if cls is None:
        if code <= -10000:
            cls = MT5ConnectionError
        elif code == -7 and function in {"initialize", "login"}:
            cls = MT5LoginError  # "Unsupported authorization mode, OTP or certificate..."
        elif function == "initialize":
            cls = MT5InitializationError
        elif code == _CALL_FAILED:
            cls = MT5CallFailedError
        elif code == _INVALID_PARAMS:
            cls = MT5InvalidParamsError
        else:
            cls = MT5CallError
    elif cls is MT5NotFoundError and function in _SYMBOL_FUNCTIONS:
        cls = MT5SymbolNotFoundError
    if code == 1:
        # market_book_add/release return False without touching last_error.
        message = f"returned failure while last_error() still reads {message!r}"
    hint = _HINTS.get(cls)
    text = f"{message} ({hint})" if hint else message
    error = cls(text, function=function, args_summary=args_summary, code=code)
    error.last_error = said  # exactly what MetaTrader5 said (aiomt5.compat shows it)
    return error


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
            detail=message,
            error=type(error).__name__,
        )
    return error


def _method(backend: Backend, function: str) -> Callable[..., Any]:
    method = backend_function(backend, function)
    if method is None:
        known = [n for n in dir(backend) if not n.startswith("_")]
        close = difflib.get_close_matches(function, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise MT5InvalidArgumentError(
            f"the backend has no function {function!r}{hint}", function=function
        )
    return method


def checked(backend: Backend, function: str) -> Callable[..., Any]:
    """``backend.<function>``, raising the matching ``MT5Error`` instead of returning failure.

    Raises:
        MT5InvalidArgumentError: The backend has no such function (with close matches).
    """
    method = _method(backend, function)
    if function in _NEVER_FAILS:
        return method
    failed = _version_failed if function == "version" else _failed

    def invoke(*args: Any, **kwargs: Any) -> Any:
        # Runs on the worker thread: last_error() is read in this same job, right after the call.
        result = method(*args, **kwargs)
        if failed(result):
            raise check_failure(backend, function, args, kwargs)
        return result

    return plain_call(invoke)  # the backend function as named: a read may be sent ahead


def checked_many(
    backend: Backend, function: str
) -> Callable[[list[BatchCall], bool], tuple[list[Any], list[int]]]:
    """A worker job making ``function`` calls back to back, each checked as by ``checked``.

    The job ``run(calls, stop_at_first)`` returns ``(results, failed)``: per call, in order, its
    result or the exception it raised (an ``MT5Error`` for MT5's failure value, read from
    ``last_error()`` right after that call), and the indices of the failed ones. With
    ``stop_at_first`` it stops at the first failure (the calls after it are not made). A backend
    with ``call_many`` (a remote terminal, a child process) makes the whole batch in one round
    trip and replays each call's result and ``last_error()`` here, in order.

    Raises:
        MT5InvalidArgumentError: The backend has no such function (with close matches).
    """
    method = _method(backend, function)
    failed = _version_failed if function == "version" else _failed
    never_fails = function in _NEVER_FAILS
    many = getattr(backend, "call_many", None)

    def run(calls: list[BatchCall], stop_at_first: bool) -> tuple[list[Any], list[int]]:
        steps = many(function, calls) if many is not None else None
        results: list[Any] = []
        errors: list[int] = []
        for index, (args, kwargs) in enumerate(calls):
            try:
                if steps is not None:
                    result = steps[index]()
                elif kwargs:
                    result = method(*args, **kwargs)
                else:
                    result = method(*args)
            except Exception as exc:  # noqa: BLE001  # each call's outcome goes to the caller
                result = exc
            else:
                if never_fails or not failed(result):
                    results.append(result)
                    continue
                result = check_failure(backend, function, args, kwargs)
            results.append(result)
            errors.append(index)
            if stop_at_first:
                break
        return results, errors

    return run


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
