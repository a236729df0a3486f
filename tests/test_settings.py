"""MT5Settings: defaults, MT5_* variables, .env, validation, and the password staying secret."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from aiomt5 import MT5Settings
from aiomt5._settings import BackendURL

SEED_VARIABLES = {
    "MT5_LOGIN": "5001234",
    "MT5_PASSWORD": "Env-Secret-1",
    "MT5_SERVER": "Broker-Demo",
    "MT5_PATH": r"C:\MT5\terminal64.exe",
    "MT5_TIMEOUT_MS": "30000",
    "MT5_MAX_RETRIES": "7",
    "MT5_RETRY_DELAY": "0.5",
    "MT5_ATTACH_FIRST": "false",
    "MT5_HEALTH_CHECK": "false",
    "MT5_HEALTH_CHECK_INTERVAL": "12.5",
    "MT5_BACKEND": "sim",
    "MT5_CALL_TIMEOUT": "2.5",
}


def test_defaults(settings_env: Path) -> None:
    settings = MT5Settings()
    assert settings.login is None
    assert settings.password is None
    assert settings.backend == "auto"
    assert settings.call_timeout == 30.0
    assert settings.timeout_ms == 60_000
    assert settings.max_retries == 3
    assert settings.attach_first is True
    assert settings.health_check is True
    assert settings.testing is False


def test_login_0_and_blank_credentials_mean_the_logged_in_account(settings_env: Path) -> None:
    # MetaTrader5 code attaches with initialize(login=0, password="", server=""); so may settings.
    settings = MT5Settings(login=0, password="", server="")
    assert (settings.login, settings.password, settings.server) == (None, None, None)


def test_simulated_time_settings(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MT5Settings().sim_speed == 1.0
    monkeypatch.setenv("MT5_SIM_SPEED", "60")
    monkeypatch.setenv("MT5_SIM_START", "2026-06-15T10:00:00Z")
    settings = MT5Settings()
    assert settings.sim_speed == 60.0
    assert settings.sim_start == datetime(2026, 6, 15, 10, tzinfo=UTC)
    for bad in ("0", "-1", "inf", "fast"):
        monkeypatch.setenv("MT5_SIM_SPEED", bad)
        with pytest.raises(ValueError, match="sim_speed"):
            MT5Settings()


def test_seed_variables_are_read_from_the_environment(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SEED_VARIABLES.items():
        monkeypatch.setenv(name, value)
    settings = MT5Settings()
    assert settings.login == 5001234
    assert settings.password is not None
    assert settings.password.get_secret_value() == "Env-Secret-1"
    assert settings.server == "Broker-Demo"
    assert settings.path == r"C:\MT5\terminal64.exe"
    assert settings.timeout_ms == 30000
    assert settings.max_retries == 7
    assert settings.retry_delay == 0.5
    assert settings.attach_first is False
    assert settings.health_check is False
    assert settings.health_check_interval == 12.5
    assert settings.backend == "sim"
    assert settings.call_timeout == 2.5


def test_dotenv_file_is_read(settings_env: Path) -> None:
    (settings_env / ".env").write_text(
        "MT5_LOGIN=42\nMT5_PASSWORD=Dot-Env-Secret\nMT5_SERVER=FromDotEnv\nUNRELATED=1\n",
        encoding="utf-8",
    )
    settings = MT5Settings()
    assert (settings.login, settings.server) == (42, "FromDotEnv")
    assert settings.password is not None
    assert settings.password.get_secret_value() == "Dot-Env-Secret"


def test_environment_beats_dotenv_and_arguments_beat_both(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (settings_env / ".env").write_text("MT5_SERVER=FromDotEnv\nMT5_SIM_SEED=1\n", encoding="utf-8")
    monkeypatch.setenv("MT5_SERVER", "FromEnv")
    assert MT5Settings().server == "FromEnv"
    assert MT5Settings().sim_seed == 1
    assert MT5Settings(server="FromArgs").server == "FromArgs"


@pytest.mark.parametrize("word", ["none", "None", "null", ""])
def test_none_words_disable_the_call_timeout_and_retry_limit(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, word: str
) -> None:
    monkeypatch.setenv("MT5_CALL_TIMEOUT", word)
    monkeypatch.setenv("MT5_MAX_RETRIES", word)
    settings = MT5Settings()
    assert settings.call_timeout is None
    assert settings.max_retries is None


def test_connect_timeout_follows_timeout_ms_unless_given(settings_env: Path) -> None:
    assert MT5Settings(timeout_ms=10_000).connect_timeout == 2 * 10 + 70
    assert MT5Settings(timeout_ms=10_000, connect_timeout=5).connect_timeout == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("auto", "auto"),
        ("SIM", "sim"),
        (" metatrader5 ", "metatrader5"),
        ("mt5linux://localhost:18812", "mt5linux://localhost:18812"),
        ("aiomt5://10.0.0.5:8765/", "aiomt5://10.0.0.5:8765"),
    ],
)
def test_backend_names_and_urls_are_normalised(
    settings_env: Path, value: str, expected: str
) -> None:
    assert MT5Settings(backend=value).backend == expected


def test_backend_url_is_parsed(settings_env: Path) -> None:
    settings = MT5Settings(backend="mt5linux://win-box:18812")
    assert settings.backend_url == BackendURL("mt5linux", "win-box", 18812)
    assert MT5Settings(backend="sim").backend_url is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backend": "wine"}, "backend must be one of 'auto', 'metatrader5', 'sim'"),
        ({"backend": "mt5linux://host"}, "expected mt5linux://host:port"),
        ({"backend": "aiomt5://host:99999"}, "port must be a number from 1 to 65535"),
        ({"login": -5}, "greater than 0"),
        ({"password": "x"}, "set MT5_LOGIN too"),
        ({"retry_delay": 10, "retry_max_delay": 1}, "retry_max_delay"),
        ({"sim_start": "2026-03-02T10:00:00"}, "timezone-aware"),
        ({"timeout_ms": 0}, "greater than 0"),
        ({"call_timeout": 0}, "greater than 0"),
        ({"max_retries": 0}, "greater than or equal to 1"),
    ],
)
def test_invalid_settings_say_what_is_wrong(
    settings_env: Path, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        MT5Settings(**fields)


def test_sim_start_accepts_an_aware_iso_time(settings_env: Path) -> None:
    settings = MT5Settings(sim_start="2026-03-02T10:00:00Z")
    assert settings.sim_start == datetime(2026, 3, 2, 10, tzinfo=UTC)


def test_password_never_appears_in_repr_str_dump_or_errors(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "Very-Secret-42"
    monkeypatch.setenv("MT5_PASSWORD", secret)
    monkeypatch.setenv("MT5_REMOTE_TOKEN", secret)
    monkeypatch.setenv("MT5_LOGIN", "7")
    settings = MT5Settings()
    texts = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.safe_summary()),
    ]
    monkeypatch.setenv("MT5_TIMEOUT_MS", secret)  # a secret typed into the wrong variable
    with pytest.raises(ValidationError) as info:
        MT5Settings()
    texts.append(str(info.value))
    assert not [text for text in texts if secret in text]
    assert settings.safe_summary()["password_set"] is True
    assert settings.safe_summary()["remote_token_set"] is True


def test_settings_are_frozen_and_compare_by_value(settings_env: Path) -> None:
    settings = MT5Settings(backend="sim")
    with pytest.raises(ValidationError):
        settings.backend = "auto"  # type: ignore[misc]
    assert settings == MT5Settings(backend="sim")
    assert settings != MT5Settings(backend="sim", sim_seed=2)
