"""The connect handshake: initialize (attaching first if asked), log in, read the account.

It runs as ONE worker job, so no other call reaches the terminal in the middle of it; failures
go through the checked call (``_checked``), which reads ``last_error()`` right after the call
that failed. Credentials leave ``MT5Settings`` only here, as the arguments of the backend call;
error summaries show them masked.
"""

from __future__ import annotations

from typing import Any

from aiomt5._core._errors import summarize_call
from aiomt5._core._log import get_logger
from aiomt5._settings import MT5Settings

from . import Backend
from ._checked import check_failure, checked

__all__ = ["handshake"]

log = get_logger("aiomt5.connector")


def handshake(backend: Backend, settings: MT5Settings) -> Any:
    """Connect ``backend`` as ``settings`` say and return ``account_info()`` (worker thread).

    With ``attach_first``, ``initialize()`` is first tried without credentials (attaching to a
    running terminal); the attached account is kept if it is the configured one (or none is
    configured), else the configured account logs in on the open pipe. Otherwise, or if
    attaching fails, ``initialize()`` runs with the credentials.

    Raises:
        MT5Error: The mapped failure of the call that failed.
    """
    path = (settings.path,) if settings.path else ()
    common: dict[str, Any] = {"timeout": settings.timeout_ms}
    if settings.portable:
        common["portable"] = True
    if settings.attach_first:
        if backend.initialize(*path, **common):
            account = _read_account(backend)
            if _is_wanted_account(settings, account):
                return account
            _login(backend, settings)
            return _read_account(backend)
        attach_error = check_failure(backend, "initialize", path, common)
        if settings.login is None:
            raise attach_error
        log.info(
            "aiomt5.connector.attach_failed", code=attach_error.code, detail=attach_error.message
        )
    if not backend.initialize(*path, **_credentials(settings), **common):
        masked = {**_credentials(settings, masked=True), **common}
        raise check_failure(
            backend, "initialize", summary=summarize_call("initialize", path, masked)
        )
    return _read_account(backend)


def _credentials(settings: MT5Settings, *, masked: bool = False) -> dict[str, Any]:
    credentials: dict[str, Any] = {}
    if settings.login is not None:
        credentials["login"] = settings.login
    if settings.password is not None:
        # Masked: the SecretStr itself, which summaries render as '***'.
        credentials["password"] = (
            settings.password if masked else settings.password.get_secret_value()
        )
    if settings.server is not None:
        credentials["server"] = settings.server
    return credentials


def _is_wanted_account(settings: MT5Settings, account: Any) -> bool:
    if settings.login is None:
        return True
    if account.login != settings.login:
        return False
    return settings.server is None or account.server == settings.server


def _login(backend: Backend, settings: MT5Settings) -> None:
    credentials = _credentials(settings)
    login = credentials.pop("login")
    if not backend.login(login, **credentials, timeout=settings.timeout_ms):
        masked = _credentials(settings, masked=True)
        masked.pop("login")
        raise check_failure(backend, "login", summary=summarize_call("login", (login,), masked))


def _read_account(backend: Backend) -> Any:
    return checked(backend, "account_info")()
