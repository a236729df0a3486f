"""The exception tree and the single mapping from MT5's ``(code, message)``."""

from __future__ import annotations

import pickle

import pytest
from pydantic import SecretStr

import aiomt5
from aiomt5._backends._checked import error_from_last_error
from aiomt5._core import _errors
from aiomt5._core._errors import summarize_call


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (aiomt5.MT5ConnectionError, aiomt5.MT5Error),
        (aiomt5.MT5InitializationError, aiomt5.MT5ConnectionError),
        (aiomt5.MT5LoginError, aiomt5.MT5ConnectionError),
        (aiomt5.MT5NotConnectedError, aiomt5.MT5ConnectionError),
        (aiomt5.MT5WorkerBusyError, aiomt5.MT5ConnectionError),
        (aiomt5.MT5IPCTimeoutError, aiomt5.MT5ConnectionError),
        (aiomt5.MT5IPCTimeoutError, aiomt5.MT5TimeoutError),
        (aiomt5.MT5TimeoutError, aiomt5.MT5Error),
        (aiomt5.MT5TimeoutError, TimeoutError),
        (aiomt5.MT5NotAvailableError, aiomt5.MT5Error),
        (aiomt5.MT5CallError, aiomt5.MT5Error),
        (aiomt5.MT5TradeError, aiomt5.MT5CallError),
        (aiomt5.MT5NotFoundError, aiomt5.MT5CallError),
        (aiomt5.MT5NotFoundError, LookupError),
        (aiomt5.MT5SymbolNotFoundError, aiomt5.MT5NotFoundError),
        (aiomt5.MT5AutoTradingDisabledError, aiomt5.MT5CallError),
        (aiomt5.MT5OutcomeUnknownError, aiomt5.MT5Error),
        (aiomt5.MT5ConfigurationError, ValueError),
        (aiomt5.MT5InvalidArgumentError, ValueError),
        (aiomt5.MT5ClosedError, aiomt5.MT5Error),
    ],
)
def test_tree_shape(child: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(child, parent)


def test_outcome_unknown_is_not_a_timeout_so_it_is_never_retried_as_one() -> None:
    assert not issubclass(aiomt5.MT5OutcomeUnknownError, TimeoutError)
    assert not issubclass(aiomt5.MT5OutcomeUnknownError, aiomt5.MT5TimeoutError)


def _error_classes() -> list[type[aiomt5.MT5Error]]:
    return [
        obj
        for name in _errors.__all__
        if isinstance(obj := getattr(_errors, name), type) and issubclass(obj, aiomt5.MT5Error)
    ]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_is_drawn_in_the_tree_and_says_when_it_is_raised(
    cls: type[aiomt5.MT5Error],
) -> None:
    assert cls.__name__ in (_errors.__doc__ or "")
    assert cls.__doc__
    assert "raised" in cls.__doc__.lower() or cls is aiomt5.MT5Error


@pytest.mark.parametrize(
    ("function", "code", "message", "expected"),
    [
        ("symbol_info_tick", -10000, "IPC call failed", aiomt5.MT5ConnectionError),
        ("symbol_info_tick", -10001, "IPC send failed", aiomt5.MT5ConnectionError),
        ("copy_rates_from", -10002, "IPC recv failed", aiomt5.MT5ConnectionError),
        (
            "initialize",
            -10003,
            "IPC initialize failed, MetaTrader 5 x64 not found",
            aiomt5.MT5InitializationError,
        ),
        ("account_info", -10004, "No IPC connection", aiomt5.MT5NotConnectedError),
        ("login", -10005, "IPC timeout", aiomt5.MT5IPCTimeoutError),
        ("positions_get", -10099, "IPC something new", aiomt5.MT5ConnectionError),
        ("initialize", -6, "Terminal: Authorization failed", aiomt5.MT5LoginError),
        ("login", -6, "Terminal: Authorization failed", aiomt5.MT5LoginError),
        (
            "login",
            -7,
            "Unsupported authorization mode, OTP or certificate password needed",
            aiomt5.MT5LoginError,
        ),
        ("symbol_info", -7, "Terminal: Unsupported function", aiomt5.MT5CallError),
        ("copy_rates_from_pos", -2, "Terminal: Invalid params", aiomt5.MT5InvalidParamsError),
        ("copy_rates_from_pos", -1, "Terminal: Call failed", aiomt5.MT5CallFailedError),
        ("initialize", -1, "Terminal: Call failed", aiomt5.MT5InitializationError),
        ("symbol_info", -4, "Terminal: Not found", aiomt5.MT5SymbolNotFoundError),
        ("symbol_select", -4, "Terminal: Not found", aiomt5.MT5SymbolNotFoundError),
        ("history_deals_get", -4, "Terminal: Not found", aiomt5.MT5NotFoundError),
        (
            "order_send",
            -8,
            "Auto-Trading using Python API disabled in Terminal",
            aiomt5.MT5AutoTradingDisabledError,
        ),
        ("market_book_add", 1, "Success", aiomt5.MT5CallError),
    ],
)
def test_last_error_maps_to_the_most_specific_class(
    function: str, code: int, message: str, expected: type[aiomt5.MT5Error]
) -> None:
    error = error_from_last_error(function, code, message, args_summary=f"{function}(...)")
    assert type(error) is expected
    assert (error.function, error.code) == (function, code)


def test_error_says_what_was_called_with_code_and_message() -> None:
    error = error_from_last_error(
        "copy_rates_from_pos",
        -2,
        "Terminal: Invalid params",
        args_summary="copy_rates_from_pos('EURUSD', 1, 0, 200000)",
    )
    assert error.args_summary == "copy_rates_from_pos('EURUSD', 1, 0, 200000)"
    assert error.message == "Terminal: Invalid params"
    text = str(error)
    assert text.startswith("copy_rates_from_pos('EURUSD', 1, 0, 200000): Terminal: Invalid params")
    assert "-2" in text


def test_login_error_tells_which_settings_to_check() -> None:
    error = error_from_last_error("initialize", -6, "Terminal: Authorization failed")
    assert "MT5_LOGIN" in str(error)
    assert "MT5_PASSWORD" in str(error)


def test_success_code_with_a_failure_value_is_explained() -> None:
    error = error_from_last_error("market_book_add", 1, "Success")
    assert "last_error() still reads" in str(error)


def test_summarize_masks_passwords_by_keyword_position_and_type() -> None:
    assert summarize_call("login", (123, "hunter2", "Srv"), {}) == "login(123, '***', 'Srv')"
    assert (
        summarize_call("initialize", (), {"login": 1, "password": "hunter2"})
        == "initialize(login=1, password='***')"
    )
    assert "hunter2" not in summarize_call("f", (SecretStr("hunter2"),), {})
    assert "hunter2" not in summarize_call("f", ({"password": "hunter2", "a": 1},), {})


def test_summarize_shortens_long_values() -> None:
    text = summarize_call("order_send", ("x" * 500, list(range(1000))), {})
    assert len(text) < 200
    assert "..." in text


@pytest.mark.parametrize(
    "error",
    [
        aiomt5.MT5ConnectionError("gone", function="terminal_info", code=-10002),
        aiomt5.MT5TimeoutError("slow", function="copy_rates_from", args_summary="copy(...)"),
        aiomt5.MT5SymbolNotFoundError("which?", candidates=["EURUSD.m", "EURUSDm"]),
        aiomt5.MT5TradeError(
            "rejected",
            retcode=10019,
            retcode_name="TRADE_RETCODE_NO_MONEY",
            comment="No money",
            request={"symbol": "EURUSD", "volume": 1.0},
        ),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_pickling(error: aiomt5.MT5Error) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


def test_trade_error_carries_the_retcode_and_the_request() -> None:
    error = aiomt5.MT5TradeError(
        "order rejected",
        retcode=10019,
        retcode_name="TRADE_RETCODE_NO_MONEY",
        comment="No money",
        request={"symbol": "EURUSD", "volume": 1.0},
    )
    assert (error.retcode, error.retcode_name, error.comment) == (
        10019,
        "TRADE_RETCODE_NO_MONEY",
        "No money",
    )
    assert error.request == {"symbol": "EURUSD", "volume": 1.0}
    assert error.function == "order_send"
    assert "10019 TRADE_RETCODE_NO_MONEY (No money)" in str(error)


def test_timeout_error_is_caught_by_except_timeouterror() -> None:
    with pytest.raises(TimeoutError):
        raise aiomt5.MT5TimeoutError("late", function="symbol_info_tick")
