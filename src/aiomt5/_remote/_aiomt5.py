"""The ``aiomt5://host:port`` transport: a token-authenticated, framed link to ``aiomt5 serve``.

After the handshake (``_auth``) each call is one frame out and one frame back (``_wire``):
a small JSON message, plus, for ``copy_rates_*``/``copy_ticks_*``, the array's raw bytes sent
after it and received straight into the memory of the array the caller gets.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

from ._auth import AuthRejectedError, ProtocolMismatchError, client_handshake
from ._client import FramedLink, LinkError, tcp_connect

__all__ = ["ServeTransport"]


class ServeTransport:
    """One connection to ``aiomt5 serve``: the token handshake, then one round trip a call.

    Args:
        host: Server address.
        port: Server port.
        token: The server's token (None: send none; only ``--insecure-no-token`` servers
            accept that).
        tls: A client ``ssl.SSLContext`` (see ``client_tls_context``), or None for plain TCP.
        connect_timeout: Seconds to connect and authenticate.
        request_timeout: Seconds to wait for a reply (None: no limit).
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
    ) -> None:
        self._host = host
        self._port = port
        self._token = token
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._url = f"aiomt5://{host}:{port}"
        self._link: FramedLink | None = None

    @property
    def is_open(self) -> bool:
        """Whether the connection is up (as far as we know)."""
        return self._link is not None

    def open(self) -> None:
        """Connect and authenticate (raises ``LinkError``)."""
        self.close()
        sock = tcp_connect(self._host, self._port, self._connect_timeout, self._url)
        try:
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            client_handshake(sock, self._token)
        except AuthRejectedError as exc:
            sock.close()
            # -6 is MT5's "Authorization failed": the connector does not retry it.
            raise LinkError(-6, f"Authorization failed: {self._url}: {exc}") from None
        except ProtocolMismatchError as exc:
            sock.close()
            raise LinkError(-10003, f"IPC initialize failed: {self._url}: {exc}") from None
        except OSError as exc:  # ssl.SSLError included
            sock.close()
            raise LinkError(-10004, f"No IPC connection: {self._url}: {exc}") from None
        sock.settimeout(self._request_timeout)
        self._link = FramedLink(sock, self._url)

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
