"""``MT5Settings``: every knob of a connector, from arguments, ``MT5_*`` variables and ``.env``.

Precedence is pydantic-settings': constructor arguments, then environment variables, then the
``.env`` file in the working directory, then the defaults below. The password is a
``SecretStr``: it never appears in a repr, a log line or an exception; only the backend call
that logs in reads its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["BackendURL", "MT5Settings", "parse_backend_url", "settings_with"]

_NAMED_BACKENDS: Final = ("auto", "metatrader5", "sim")
_REMOTE_SCHEMES: Final = ("mt5linux", "aiomt5")
_NONE_WORDS: Final = frozenset({"", "none", "null"})


@dataclass(frozen=True, slots=True)
class BackendURL:
    """A parsed remote-terminal address: ``mt5linux://host:port`` or ``aiomt5://host:port``."""

    scheme: Literal["mt5linux", "aiomt5"]
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_backend_url(value: str) -> BackendURL:
    """Parse ``scheme://host:port`` for a remote backend.

    Raises:
        ValueError: The text is not a valid remote address; the message says which part is wrong.
    """
    scheme, sep, rest = value.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _REMOTE_SCHEMES:
        choices = ", ".join(repr(name) for name in _NAMED_BACKENDS)
        raise ValueError(
            f"backend must be one of {choices}, 'mt5linux://host:port' or "
            f"'aiomt5://host:port'; got {value!r}"
        )
    host, colon, port_text = rest.rstrip("/").rpartition(":")
    if not colon or not host or "/" in host:
        raise ValueError(f"backend {value!r}: expected {scheme}://host:port (e.g. localhost:18812)")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"backend {value!r}: port must be a number from 1 to 65535")
    return BackendURL(scheme, host.strip("[]"), int(port_text))  # type: ignore[arg-type]  # checked above


def _none_if_word(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in _NONE_WORDS:
        return None
    return value


class MT5Settings(BaseSettings):
    """Connector configuration; every field can come from an ``MT5_<FIELD>`` variable or ``.env``.

    Example:
        ```python
        settings = MT5Settings(backend="sim", call_timeout=5.0)
        settings = MT5Settings()  # MT5_LOGIN, MT5_PASSWORD, MT5_SERVER... from the environment
        ```
    """

    model_config = SettingsConfigDict(
        env_prefix="MT5_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # Validation errors must never echo a value back: it could be the password.
        hide_input_in_errors=True,
        validate_default=True,
    )

    # -- the terminal and the account
    login: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Trading account number (None or 0: the account the terminal is logged in to, as "
            "MetaTrader5 treats login=0)."
        ),
    )
    password: SecretStr | None = Field(default=None, description="Account password (secret).")
    server: str | None = Field(default=None, description="Trade server name, e.g. 'Broker-Demo'.")
    path: str | None = Field(default=None, description="Path to terminal64.exe (None: find it).")
    portable: bool = Field(default=False, description="Launch the terminal in portable mode.")
    timeout_ms: int = Field(
        default=60_000, gt=0, description="MT5's own initialize/login timeout, in milliseconds."
    )
    attach_first: bool = Field(
        default=True,
        description="Try attaching to a running terminal (no credentials) before logging in.",
    )

    # -- connecting
    max_retries: int | None = Field(
        default=3, ge=1, description="Connect attempts before giving up (None: keep trying)."
    )
    retry_delay: float = Field(
        default=1.0, ge=0, description="First backoff delay in seconds; doubles per attempt."
    )
    retry_max_delay: float = Field(default=30.0, ge=0, description="Backoff cap in seconds.")
    testing: bool = Field(
        default=False, description="Testing mode: no backoff sleeps (see aiomt5.set_testing)."
    )
    reconnect_max_retries: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Reconnect attempts after the link is lost before the supervisor gives up "
            "(None: keep trying)."
        ),
    )
    wait_for_reconnect: bool = Field(
        default=True,
        description=(
            "Calls made while reconnecting wait for the connection, up to their own timeout "
            "(False: they fail at once with MT5NotConnectedError)."
        ),
    )

    # -- health
    health_check: bool = Field(default=True, description="Run periodic health checks.")
    health_check_interval: float = Field(
        default=30.0, gt=0, description="Seconds between health checks."
    )
    health_check_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a health check may take before it counts as failed.",
    )

    # -- backend and calls
    backend: str = Field(
        default="auto",
        description="'auto', 'metatrader5', 'sim', 'mt5linux://host:port' or 'aiomt5://host:port'.",
    )
    call_timeout: float | None = Field(
        default=30.0, gt=0, description="Default per-call timeout in seconds (None: none)."
    )
    connect_timeout: float | None = Field(
        default_factory=lambda data: 2 * data.get("timeout_ms", 60_000) / 1000 + 70.0,
        gt=0,
        description=(
            "Seconds one connect attempt (initialize + login) may take before it is given up; "
            "default: MT5's 60 s terminal start-up wait plus twice timeout_ms, plus 10 s. "
            "None: no limit."
        ),
    )
    worker_wedged_after: float = Field(
        default=1.0,
        ge=0,
        description=(
            "Seconds a call may stay stuck past its caller's timeout before the worker counts "
            "as wedged and new calls fail fast with MT5WorkerBusyError."
        ),
    )
    max_queued_calls: int = Field(
        default=10_000, ge=1, description="Calls allowed to wait for the worker at once."
    )
    worker_idle_spin: float = Field(
        default=0.0005,
        ge=0,
        le=0.01,
        description=(
            "Seconds the idle worker polls for the next call before sleeping, while calls come "
            "back to back; it roughly halves their latency for a little CPU. 0 disables."
        ),
    )
    symbol_cache_ttl: float = Field(
        default=300.0, ge=0, description="Seconds find_symbol() remembers answers (0: no cache)."
    )

    # -- remote terminals (backend="aiomt5://host:port" or "mt5linux://host:port")
    remote_token: SecretStr | None = Field(
        default=None, description="Token of the `aiomt5 serve` server (secret)."
    )
    remote_tls: bool = Field(default=False, description="Use TLS to reach `aiomt5 serve`.")
    remote_tls_ca: str | None = Field(
        default=None, description="CA file (or the server's certificate) to verify TLS with."
    )

    # -- the built-in simulator (backend="sim")
    sim_seed: int = Field(default=0, description="Simulator random seed.")
    sim_start: datetime | None = Field(
        default=None,
        description=(
            "Start the simulator's clock at this aware time; it then runs at sim_speed (None: "
            "wall time, or for the CLI the same hour of the latest open session)."
        ),
    )
    sim_speed: float = Field(
        default=1.0,
        gt=0,
        allow_inf_nan=False,
        description="Simulated seconds per wall second (60: a simulated minute each second).",
    )
    sim_symbol_suffix: str = Field(
        default="", description="Broker suffix on simulated symbol names, e.g. '.m'."
    )

    # -- isolation
    isolation: Literal["thread", "process"] = Field(
        default="thread",
        description=(
            "'process' runs a local backend (metatrader5, sim) in a child process, so a call "
            "wedged past isolation_hard_limit is ended by killing the child."
        ),
    )
    isolation_hard_limit: float | None = Field(
        default=60.0,
        gt=0,
        description="With process isolation: seconds a call may run before the child is killed.",
    )

    @field_validator(
        "call_timeout",
        "connect_timeout",
        "max_retries",
        "reconnect_max_retries",
        "login",
        "sim_start",
        mode="before",
    )
    @classmethod
    def _words_mean_none(cls, value: Any) -> Any:
        return _none_if_word(value)

    @field_validator("login", mode="before")
    @classmethod
    def _zero_login_means_none(cls, value: Any) -> Any:
        # MetaTrader5's initialize(login=0) attaches to the logged-in account: 0 is "not given".
        zero = value == 0 if isinstance(value, int) else str(value).strip() == "0"
        return None if zero and not isinstance(value, bool) else value

    @field_validator("password", "server", "path", "remote_tls_ca", mode="before")
    @classmethod
    def _blank_means_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, value: str) -> str:
        name = value.strip()
        if name.lower() in _NAMED_BACKENDS:
            return name.lower()
        return str(parse_backend_url(name))

    @field_validator("sim_start")
    @classmethod
    def _check_sim_start(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError(
                "sim_start must be timezone-aware (e.g. '2026-03-02T10:00:00Z'); "
                "a naive time would be read in the machine's local zone"
            )
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> MT5Settings:
        if self.password is not None and self.login is None:
            raise ValueError("password is set but login is not: set MT5_LOGIN too")
        if self.retry_max_delay < self.retry_delay:
            raise ValueError(
                f"retry_max_delay ({self.retry_max_delay}) must be >= retry_delay "
                f"({self.retry_delay})"
            )
        return self

    @property
    def backend_url(self) -> BackendURL | None:
        """The parsed remote address when ``backend`` is a URL, else None."""
        if "://" in self.backend:
            return parse_backend_url(self.backend)
        return None

    def safe_summary(self) -> dict[str, Any]:
        """The settings as a dict fit for logs: secrets reduced to whether they are set."""
        data = self.model_dump(exclude={"password", "remote_token"})
        data["password_set"] = self.password is not None
        data["remote_token_set"] = self.remote_token is not None
        return data


def settings_with(settings: MT5Settings | None, overrides: dict[str, Any]) -> MT5Settings:
    """``settings`` (default: from the environment) with ``overrides`` applied.

    Only fields given explicitly are carried over, so derived defaults (``connect_timeout`` from
    ``timeout_ms``) are recomputed from the overrides.
    """
    if not overrides:
        return settings if settings is not None else MT5Settings()
    base = settings.model_dump(exclude_unset=True) if settings is not None else {}
    return MT5Settings(**{**base, **overrides})
