"""Remote terminals: ``aiomt5 serve`` and the ``aiomt5://`` / ``mt5linux://`` backends.

``remote_backend(url, settings)`` builds the MetaTrader5-shaped object the connector's worker
calls; ``serve``/``serve_main``/``RemoteServer`` are the server side. ``aiomt5 serve``, the
``aiomt5://`` client and process isolation speak their own framed protocol (``_wire``) and
need nothing beyond numpy; only ``mt5linux://`` needs rpyc (the ``remote`` extra), imported
when such a backend is built.
"""

from __future__ import annotations

from typing import Any

from aiomt5._settings import BackendURL, MT5Settings, parse_backend_url

from ._auth import client_tls_context, server_tls_context
from ._client import RemoteTerminal
from ._server import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV, RemoteServer, serve, serve_main

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "TOKEN_ENV",
    "RemoteServer",
    "RemoteTerminal",
    "client_tls_context",
    "remote_backend",
    "serve",
    "serve_main",
    "server_tls_context",
]

_TCP_CONNECT_TIMEOUT = 10.0


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if callable(getter) else value)


def _request_timeout(settings: MT5Settings) -> float | None:
    # A reply may legitimately take as long as the slowest call the connector allows
    # (initialize waits for the terminal); None anywhere means "no limit".
    limits = (settings.call_timeout, settings.connect_timeout)
    return None if None in limits else max(t for t in limits if t is not None)


def remote_backend(
    url: BackendURL | str, settings: MT5Settings, *, token: str | None = None
) -> RemoteTerminal:
    """The backend object for ``aiomt5://host:port`` or ``mt5linux://host:port``.

    Nothing is connected yet: the link opens on ``initialize()`` (the connector's connect).

    Args:
        url: The parsed (or textual) address.
        settings: ``remote_token`` (``MT5_REMOTE_TOKEN``), ``remote_tls``/``remote_tls_ca``
            when present, and the timeouts.
        token: Overrides ``settings.remote_token`` (``aiomt5://`` only).

    Raises:
        ValueError: ``url`` is not a remote backend address.
    """
    if isinstance(url, str):
        url = parse_backend_url(url)
    timeout = _request_timeout(settings)
    if url.scheme == "mt5linux":
        from ._mt5linux import ClassicTransport

        classic = ClassicTransport(
            url.host, url.port, connect_timeout=_TCP_CONNECT_TIMEOUT, request_timeout=timeout
        )
        return RemoteTerminal(classic, str(url))
    from ._aiomt5 import ServeTransport

    cafile = getattr(settings, "remote_tls_ca", None)
    use_tls = bool(getattr(settings, "remote_tls", False)) or cafile is not None
    transport = ServeTransport(
        url.host,
        url.port,
        token=token if token is not None else _secret(getattr(settings, "remote_token", None)),
        tls=client_tls_context(cafile) if use_tls else None,
        connect_timeout=_TCP_CONNECT_TIMEOUT,
        request_timeout=timeout,
    )
    return RemoteTerminal(transport, str(url) + (" (TLS)" if use_tls else ""))
