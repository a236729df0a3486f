"""The ``mt5linux://host:port`` transport: an existing mt5linux (rpyc classic) server.

mt5linux's own client builds a Python source string for every call with the arguments
spliced in (``f'mt5.copy_rates_from_pos("{symbol}",...)'``), so a quote in a symbol runs code,
and it gets most results back as netrefs (a round trip per attribute). This transport never
builds code from user data:

* Once per connection it executes one *constant* source text on the server: the source of
  ``aiomt5._remote._wire`` (self-contained: encoder, decoder, ``serve_call``) plus a three-line
  entry point. No user value is interpolated into it; it only defines functions. This is the
  one use of the classic server's ``execute``, and it is what lets every later call be a
  single round trip with values, not code.
* Each call then sends the function name (checked against the API list on both sides) and
  the encoded arguments as plain data, and gets plain data back: structs as tuples, arrays as
  ``(dtype, bytes)``.

The classic protocol has no authentication: anyone who reaches the port runs any code on the
server. Use it on loopback or through an SSH tunnel only; prefer ``aiomt5 serve``.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
from typing import Any, Final

import rpyc
from rpyc.core.async_ import AsyncResultTimeout
from rpyc.core.channel import Channel
from rpyc.core.service import FakeSlaveService
from rpyc.core.stream import SocketStream

from aiomt5._core._log import get_logger

from . import _wire
from ._auth import read_exactly
from ._client import FramedLink, LinkError, link_error, tcp_connect

__all__ = ["HANDOVER_ACK", "HELPER_ENTRY", "ClassicTransport", "helper_source"]

log = get_logger("aiomt5.remote")

# The client exposes nothing to the server.
_CLIENT_CONFIG: Final[dict[str, Any]] = {
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

HANDOVER_ACK: Final = b"AIOMT5-FRAMES" + bytes([_wire.PROTOCOL])
"""What the server-side helper writes when it takes the connection over from rpyc."""

HELPER_ENTRY: Final = f"""
import socket as _aiomt5_socket
import threading as _aiomt5_threading

import MetaTrader5 as _aiomt5_mt5

_aiomt5_lock = _aiomt5_threading.Lock()


def _aiomt5_call(name, args, kwargs):
    return serve_call(_aiomt5_mt5, name, args, kwargs)


def _aiomt5_socket_of(conn):
    sock = getattr(conn._channel.stream, "sock", None)
    return sock if type(sock) is _aiomt5_socket.socket else None


def _aiomt5_can_hand_over(conn):
    return _aiomt5_socket_of(conn) is not None


def _aiomt5_hand_over(conn):
    # Runs in the thread serving this (our) rpyc connection: from here on it speaks the
    # framed protocol on the same socket, until the client leaves; then rpyc's own loop
    # finds the socket closed and ends the connection.
    sock = _aiomt5_socket_of(conn)
    sock.settimeout(None)
    sock.setsockopt(_aiomt5_socket.IPPROTO_TCP, _aiomt5_socket.TCP_NODELAY, 1)
    sock.sendall({HANDOVER_ACK!r})
    try:
        serve_frames(sock, _aiomt5_mt5, _aiomt5_lock)
    except Exception:
        pass
    try:
        sock.shutdown(_aiomt5_socket.SHUT_RDWR)
    except OSError:
        pass


def _aiomt5_tune(conn):
    # Our connection only, for servers that cannot hand over: no zlib, and writes in one
    # piece (rpyc re-slices the rest of the message after every 64 kB send).
    channel = conn._channel
    channel.compress = False
    if not hasattr(channel.stream, "sock"):
        return

    class _Stream(type(channel.stream)):
        __slots__ = ()

        def write(self, data):
            try:
                self.sock.sendall(data)
            except OSError as exc:
                self.close()
                raise EOFError(exc)

    channel.stream = _Stream(channel.stream.sock)
"""
"""Defines the server-side entry points, after ``_wire``'s source (no user data, ever)."""


class _DeadStream:
    """What our rpyc connection writes to once the socket speaks frames: nothing gets out.

    rpyc still writes on its own (a netref's ``__del__`` releases the remote object, ``close``
    says goodbye); those bytes would corrupt the framed stream, so they fail instead.
    """

    closed = True
    MAX_IO_CHUNK = 65536

    def close(self) -> None:
        pass

    def fileno(self) -> int:
        raise EOFError("stream handed over")

    def poll(self, timeout: float) -> bool:
        raise EOFError("stream handed over")

    def read(self, count: int) -> bytes:
        raise EOFError("stream handed over")

    def write(self, data: bytes) -> None:
        raise EOFError("stream handed over")


class _BulkSocketStream(SocketStream):  # type: ignore[misc]  # rpyc is untyped
    """rpyc's socket stream, reading and writing big messages in one piece.

    rpyc's own ``write`` re-slices the remaining data after every 64 kB ``send`` (quadratic
    copying) and ``read`` joins 64 kB chunks; these use ``sendall`` and ``recv_into`` one
    buffer. Errors close the stream and raise ``EOFError``, as rpyc's do. Only used with
    servers that cannot hand the connection over.
    """

    __slots__ = ()

    def read(self, count: int) -> bytes:
        buffer = bytearray(count)
        with memoryview(buffer) as view:
            received = 0
            while received < count:
                try:
                    size: int = self.sock.recv_into(view[received:], count - received)
                except TimeoutError:
                    continue  # rpyc's convention: timeouts are handled by poll()
                except OSError as exc:
                    self.close()
                    raise EOFError(exc) from None
                if not size:
                    self.close()
                    raise EOFError("connection closed by peer")
                received += size
        return bytes(buffer)

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None


def helper_source() -> str:
    """The constant source executed once per connection on the mt5linux server."""
    return inspect.getsource(_wire) + HELPER_ENTRY


class ClassicTransport:
    """One connection to an mt5linux server; one round trip per call after the setup.

    Setup (a few rpyc round trips, once per connection): execute the constant helper, then
    ask it to take the connection over, after which the socket speaks the framed protocol of
    ``aiomt5 serve`` (``HANDOVER_ACK`` marks the switch). A server whose connection cannot
    be handed over (not a plain socket) is called through rpyc with the same helper.

    Args:
        host: Server address.
        port: Server port (mt5linux's default is 18812).
        connect_timeout: Seconds to connect and install the helper.
        request_timeout: Seconds to wait for one reply (None: no limit).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float = 10.0,
        request_timeout: float | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._url = f"mt5linux://{host}:{port}"
        self._conn: Any = None
        self._link: FramedLink | None = None
        self._helper: Any = None
        self._netrefs: tuple[Any, ...] = ()

    @property
    def is_open(self) -> bool:
        """Whether the connection is up (as far as we know)."""
        if self._link is not None:
            return True
        return self._conn is not None and not self._conn.closed

    @property
    def handed_over(self) -> bool:
        """Whether calls travel as frames (True) or through rpyc (False)."""
        return self._link is not None

    def open(self) -> None:
        """Connect, install the helper, and hand the connection over to frames if possible."""
        self.close()
        sock = tcp_connect(self._host, self._port, self._connect_timeout, self._url)
        sock.settimeout(None)
        conn: Any = None
        try:
            # FakeSlaveService: the classic server's handshake finds nothing to run on our side.
            conn = rpyc.connect_channel(
                Channel(_BulkSocketStream(sock), compress=False),
                service=FakeSlaveService,
                config={**_CLIENT_CONFIG, "sync_request_timeout": self._connect_timeout},
            )
            root = conn.root
            root.execute(helper_source())
            namespace = root.namespace
            server_conn = root.getconn()
            if namespace["_aiomt5_can_hand_over"](server_conn):
                self._hand_over(conn, sock, (root, namespace, server_conn))
            else:
                self._helper = namespace["_aiomt5_call"]
                self._tune(namespace, server_conn)
        except (OSError, EOFError, AsyncResultTimeout) as exc:
            _close_quietly(conn, sock)
            raise LinkError(-10004, f"No IPC connection: {self._url} failed: {exc}") from None
        except LinkError:
            _close_quietly(conn, sock)
            raise
        except Exception as exc:  # noqa: BLE001  # any error the helper raised over there
            # The server ran our helper and it failed (no MetaTrader5 or numpy there...).
            _close_quietly(conn, sock)
            raise LinkError(
                -10003,
                f"IPC initialize failed: the mt5linux server at {self._url} cannot host the "
                f"aiomt5 helper: {type(exc).__name__}: {exc}",
            ) from None
        conn._config["sync_request_timeout"] = self._request_timeout
        self._conn = conn

    def _hand_over(self, conn: Any, sock: socket.socket, netrefs: tuple[Any, ...]) -> None:
        namespace, server_conn = netrefs[1], netrefs[2]
        hand_over = namespace["_aiomt5_hand_over"]
        request = rpyc.async_(hand_over)
        request(server_conn)  # the server answers with HANDOVER_ACK, never with rpyc
        # From now on nothing of rpyc's may reach the socket: every netref we hold would send
        # a release when collected. They stay alive until the stream is dead.
        conn._channel.stream = _DeadStream()
        self._netrefs = (*netrefs, hand_over, request)
        sock.settimeout(self._connect_timeout)
        ack = read_exactly(sock, len(HANDOVER_ACK))
        if ack != HANDOVER_ACK:
            raise LinkError(
                -10003,
                f"IPC initialize failed: the mt5linux server at {self._url} "
                "did not take the aiomt5 helper's connection over",
            )
        self._link = FramedLink(sock, self._url, self._request_timeout)

    @staticmethod
    def _tune(namespace: Any, server_conn: Any) -> None:
        # Our connection's server end compresses and slices large replies: tune it (our
        # connection object only, with the constant helper). Best effort: a server whose rpyc
        # differs keeps its defaults and works, only slower for big arrays.
        try:
            namespace["_aiomt5_tune"](server_conn)
        except (OSError, EOFError, AsyncResultTimeout):
            raise
        except Exception:  # noqa: BLE001
            log.info("aiomt5.remote.mt5linux_tuning_skipped")

    def call(self, name: str, args: Any, kwargs: Any) -> tuple[Any, list[Any] | None]:
        """One remote call: the reply (see ``_wire.serve_call``) and its buffers, if any."""
        if self._link is not None:
            return self._link.call(name, args, kwargs)
        try:
            reply: tuple[Any, ...] = self._helper(name, args, kwargs)
        except AsyncResultTimeout as exc:
            raise link_error(self._url, exc, timed_out=True) from None
        except (OSError, EOFError) as exc:
            raise link_error(self._url, exc) from None
        return reply, None

    def close(self) -> None:
        """Drop the connection (idempotent)."""
        conn, self._conn, self._helper = self._conn, None, None
        link, self._link = self._link, None
        if link is not None:
            link.close()
        if conn is not None:
            _close_quietly(conn, None)
        self._netrefs = ()


def _close_quietly(conn: Any, sock: socket.socket | None) -> None:
    with contextlib.suppress(OSError, EOFError):  # already broken: nothing to tell it
        if conn is not None:
            conn.close()
    if sock is not None:
        sock.close()
