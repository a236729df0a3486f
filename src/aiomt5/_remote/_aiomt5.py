"""The ``aiomt5://host:port`` transport: a token-authenticated, framed link to ``aiomt5 serve``.

After the handshake (``_auth``) each call is one frame out and one frame back (``_wire``):
a small JSON message, plus, for ``copy_rates_*``/``copy_ticks_*``, the array's raw bytes sent
after it and received straight into the memory of the array the caller gets.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from typing import Any

from aiomt5._core._errors import REMOTE_BUSY, REMOTE_PROTOCOL

from ._auth import (
    AuthRejectedError,
    ProtocolMismatchError,
    ServerBusyError,
    TLSMismatchError,
    client_handshake,
)
from ._client import FramedLink, LinkError, tcp_connect
from ._wire import MAX_REPLY_BYTES, time_left

__all__ = ["ServeTransport"]


class ServeTransport:
    """One connection to ``aiomt5 serve``: the token handshake, then one round trip a call.

    Args:
        host: Server address.
        port: Server port.
        token: The server's token (None: send none; only ``--insecure-no-token`` servers
            accept that).
        tls: A client ``ssl.SSLContext`` (see ``client_tls_context``), or None for plain TCP.
        connect_timeout: Seconds to connect and authenticate, all of it.
        request_timeout: Seconds for a whole call, however slowly the reply trickles in
            (None: no limit).
        max_reply_bytes: Largest reply accepted (memory is taken as data arrives, up to this).
        trusted: The server is our own child process (see ``FramedLink``).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        token: str | None,
        tls: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        request_timeout: float | None = None,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        trusted: bool = False,
    ) -> None:
        self._host = host
        self._port = port
        self._token = token
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._max_reply_bytes = max_reply_bytes
        self._trusted = trusted
        self._url = f"aiomt5://{host}:{port}"
        self._link: FramedLink | None = None

    @property
    def is_open(self) -> bool:
        """Whether the connection is up (as far as we know)."""
        return self._link is not None

    def open(self) -> None:
        """Connect and authenticate (raises ``LinkError``)."""
        self.close()
        deadline = time.monotonic() + self._connect_timeout
        sock = tcp_connect(self._host, self._port, self._connect_timeout, self._url)
        try:
            sock = self._secure(sock, deadline)
            client_handshake(sock, self._token, deadline)
        except LinkError:
            sock.close()
            raise
        except (OSError, EOFError) as exc:  # ssl.SSLError and the handshake's errors included
            sock.close()
            raise self._handshake_failure(exc) from None
        self._link = FramedLink(
            sock, self._url, self._request_timeout, self._max_reply_bytes, trusted=self._trusted
        )

    def _secure(self, sock: socket.socket, deadline: float) -> socket.socket:
        if self._tls is None:
            return sock
        try:
            sock.settimeout(time_left(deadline))
            return self._tls.wrap_socket(sock, server_hostname=self._host)
        except ssl.SSLCertVerificationError as exc:
            raise LinkError(
                REMOTE_PROTOCOL,
                f"TLS to {self._url}: the server's certificate is not trusted ({exc.reason}): "
                "set remote_tls_ca (MT5_REMOTE_TLS_CA) to its certificate",
            ) from None
        except (ssl.SSLError, ConnectionResetError, EOFError) as exc:
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            raise LinkError(
                REMOTE_PROTOCOL,
                f"TLS to {self._url} failed ({reason}): if the server runs without "
                "--tls-cert, unset remote_tls/remote_tls_ca (MT5_REMOTE_TLS, MT5_REMOTE_TLS_CA)",
            ) from None

    def _handshake_failure(self, exc: OSError | EOFError) -> LinkError:
        url = self._url
        if isinstance(exc, AuthRejectedError):
            # -6 is MT5's "Authorization failed": nobody retries it.
            return LinkError(-6, f"Authorization failed: {url}: {exc}")
        if isinstance(exc, ServerBusyError):
            return LinkError(REMOTE_BUSY, f"{url} is busy: {exc}")
        if isinstance(exc, TLSMismatchError):
            return LinkError(REMOTE_PROTOCOL, f"{url}: {exc}")
        if isinstance(exc, ProtocolMismatchError):
            return LinkError(-10003, f"IPC initialize failed: {url}: {exc}")
        if isinstance(exc, ssl.SSLError):
            return LinkError(REMOTE_PROTOCOL, f"TLS with {url} failed: {exc}")
        return LinkError(-10004, f"No IPC connection: {url}: {str(exc) or type(exc).__name__}")

    def call(self, name: str, args: Any, kwargs: Any) -> tuple[Any, list[Any]]:
        """One remote call (see ``FramedLink.call``)."""
        return self._open_link().call(name, args, kwargs)

    def send(self, requests: Sequence[tuple[str, Any, Any]]) -> None:
        """Send requests ahead of their replies (see ``FramedLink.send``)."""
        self._open_link().send(requests)

    def receive(self) -> tuple[Any, list[Any]]:
        """The oldest unanswered request's reply (see ``FramedLink.receive``)."""
        return self._open_link().receive()

    def _open_link(self) -> FramedLink:
        if self._link is None:
            raise LinkError(-10004, "No IPC connection")
        return self._link

    def close(self) -> None:
        """Drop the connection (idempotent)."""
        link, self._link = self._link, None
        if link is not None:
            link.close()
