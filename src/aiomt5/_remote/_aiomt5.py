"""The ``aiomt5://host:port`` transport: a token-authenticated link to ``aiomt5 serve``."""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Any, Final

import rpyc
from rpyc.core.async_ import AsyncResultTimeout
from rpyc.core.channel import Channel
from rpyc.core.stream import SocketStream

from ._auth import AuthRejectedError, client_handshake
from ._client import LinkError

__all__ = [
    "CLIENT_CONFIG",
    "ServeTransport",
    "link_error",
    "tcp_connect",
    "uncompressed_channel",
]

# The client exposes nothing to the server either.
CLIENT_CONFIG: Final[dict[str, Any]] = {
    "allow_safe_attrs": False,
    "allow_public_attrs": False,
    "allow_all_attrs": False,
    "allow_setattr": False,
    "allow_delattr": False,
    "allow_pickle": False,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": False,
    "instantiate_oldstyle_exceptions": False,
}


def link_error(url: str, exc: BaseException) -> LinkError:
    """The ``last_error()`` a failed remote call reports: it may have reached the terminal."""
    if isinstance(exc, AsyncResultTimeout):
        return LinkError(-10002, f"IPC recv failed: no reply from {url} in time")
    return LinkError(-10002, f"IPC recv failed: link to {url} broke ({type(exc).__name__})")


class _BulkSocketStream(SocketStream):  # type: ignore[misc]  # rpyc is untyped
    """rpyc's socket stream, reading and writing big messages in one piece.

    rpyc's own ``write`` re-slices the remaining data after every 64 kB ``send`` (quadratic
    copying: ~300 MB moved for 6 MB of bars) and ``read`` joins 64 kB chunks; these use
    ``sendall`` and ``recv_into`` one buffer. Errors close the stream and raise ``EOFError``,
    as rpyc's do.
    """

    __slots__ = ()

    def read(self, count: int) -> bytes:
        first = self._recv(count)
        if len(first) == count:
            return first  # the usual case for small messages: no buffer to assemble
        buffer = bytearray(count)
        buffer[: len(first)] = first
        with memoryview(buffer) as view:
            received = len(first)
            while received < count:
                received += self._recv_into(view[received:], count - received)
        return bytes(buffer)

    def _recv(self, count: int) -> bytes:
        while True:
            try:
                data: bytes = self.sock.recv(count)
            except TimeoutError:
                continue  # rpyc's convention: timeouts are handled by poll()
            except OSError as exc:
                self.close()
                raise EOFError(exc) from None
            if not data:
                self.close()
                raise EOFError("connection closed by peer")
            return data

    def _recv_into(self, view: memoryview, count: int) -> int:
        while True:
            try:
                size: int = self.sock.recv_into(view, count)
            except TimeoutError:
                continue
            except OSError as exc:
                self.close()
                raise EOFError(exc) from None
            if not size:
                self.close()
                raise EOFError("connection closed by peer")
            return size

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None


def uncompressed_channel(sock: socket.socket) -> Channel:
    """An rpyc channel over ``sock`` that never zlib-compresses and moves big messages fast.

    rpyc compresses every message over 3 kB by default: on loopback or a LAN that costs far
    more than it saves (100k bars: ~6 MB through zlib each way). Over a slow link, tunnel
    with ``ssh -C`` instead.
    """
    return Channel(_BulkSocketStream(sock), compress=False)


def tcp_connect(host: str, port: int, timeout: float, url: str) -> socket.socket:
    """A connected TCP socket with Nagle off (small requests must not wait for an ACK).

    Raises:
        LinkError: -10004, the server cannot be reached.
    """
    try:
        sock = socket.create_connection((host, port), timeout)
    except OSError as exc:
        raise LinkError(-10004, f"No IPC connection: cannot reach {url}: {exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class ServeTransport:
    """One rpyc connection to ``aiomt5 serve``: the token handshake, then one round trip a call.

    Args:
        host: Server address.
        port: Server port.
        token: The server's token (None: send none; only ``--insecure-no-token`` servers
            accept that).
        tls: A client ``ssl.SSLContext`` (see ``client_tls_context``), or None for plain TCP.
        connect_timeout: Seconds to connect and authenticate.
        request_timeout: Seconds to wait for one reply (None: no limit).
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
        self._conn: Any = None
        self._remote_call: Any = None

    @property
    def is_open(self) -> bool:
        """Whether the connection is up (as far as we know)."""
        return self._conn is not None and not self._conn.closed

    def open(self) -> None:
        """Connect, authenticate and fetch the ``call`` entry point (one round trip, once)."""
        self.close()
        sock = self._connect()
        try:
            conn = rpyc.connect_channel(
                uncompressed_channel(sock), service=rpyc.VoidService, config=dict(CLIENT_CONFIG)
            )
            conn._config["sync_request_timeout"] = self._request_timeout
            self._remote_call = conn.root.call
        except (OSError, EOFError, AsyncResultTimeout) as exc:
            sock.close()
            raise LinkError(-10004, f"No IPC connection: {self._url} failed: {exc}") from None
        self._conn = conn

    def _connect(self) -> socket.socket:
        sock = tcp_connect(self._host, self._port, self._connect_timeout, self._url)
        try:
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            client_handshake(sock, self._token)
        except AuthRejectedError as exc:
            sock.close()
            # -6 is MT5's "Authorization failed": the connector does not retry it.
            raise LinkError(-6, f"Authorization failed: {self._url}: {exc}") from None
        except OSError as exc:  # ssl.SSLError included
            sock.close()
            raise LinkError(-10004, f"No IPC connection: {self._url}: {exc}") from None
        sock.settimeout(None)
        return sock

    def call(self, name: str, args: Any, kwargs: Any) -> tuple[Any, ...]:
        """One remote call; the reply is a plain tuple (see ``_wire.serve_call``)."""
        try:
            reply: tuple[Any, ...] = self._remote_call(name, args, kwargs)
        except (OSError, EOFError, AsyncResultTimeout) as exc:
            raise link_error(self._url, exc) from None
        return reply

    def close(self) -> None:
        """Drop the connection (idempotent)."""
        conn, self._conn, self._remote_call = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(OSError, EOFError):  # already broken: nothing to tell it
                conn.close()
