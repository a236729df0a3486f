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
from rpyc.core.service import FakeSlaveService

from aiomt5._log import get_logger

from . import _wire
from ._aiomt5 import CLIENT_CONFIG, link_error, tcp_connect, uncompressed_channel
from ._client import LinkError

__all__ = ["HELPER_ENTRY", "ClassicTransport", "helper_source"]

log = get_logger("aiomt5.remote")

HELPER_ENTRY: Final = """
import MetaTrader5 as _aiomt5_mt5


def _aiomt5_call(name, args, kwargs):
    return serve_call(_aiomt5_mt5, name, args, kwargs)


def _aiomt5_tune(conn):
    # Our own connection only: no zlib, and writes in one piece (rpyc re-slices the rest of
    # the message after every 64 kB send, quadratic in its size).
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


def helper_source() -> str:
    """The constant source executed once per connection on the mt5linux server."""
    return inspect.getsource(_wire) + HELPER_ENTRY


class ClassicTransport:
    """One rpyc connection to an mt5linux server; one round trip per call after the setup.

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
        self._helper: Any = None

    @property
    def is_open(self) -> bool:
        """Whether the connection is up (as far as we know)."""
        return self._conn is not None and not self._conn.closed

    def open(self) -> None:
        """Connect and install the helper (a few round trips, once per connection)."""
        self.close()
        sock = tcp_connect(self._host, self._port, self._connect_timeout, self._url)
        sock.settimeout(None)
        conn: Any = None
        try:
            # FakeSlaveService: the classic server's handshake finds nothing to run on our side.
            conn = rpyc.connect_channel(
                uncompressed_channel(sock),
                service=FakeSlaveService,
                config={**CLIENT_CONFIG, "sync_request_timeout": self._connect_timeout},
            )
            root = conn.root
            root.execute(helper_source())
            self._helper = root.namespace["_aiomt5_call"]
            self._tune(root)
        except (OSError, EOFError, AsyncResultTimeout) as exc:
            _close_quietly(conn, sock)
            raise LinkError(-10004, f"No IPC connection: {self._url} failed: {exc}") from None
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

    @staticmethod
    def _tune(root: Any) -> None:
        # Our connection's server end compresses and slices large replies: tune it (our
        # connection object only, with the constant helper). Best effort: a server whose rpyc
        # differs keeps its defaults and works, only slower for big arrays.
        try:
            root.namespace["_aiomt5_tune"](root.getconn())
        except (OSError, EOFError, AsyncResultTimeout):
            raise
        except Exception:  # noqa: BLE001
            log.info("aiomt5.remote.mt5linux_tuning_skipped")

    def call(self, name: str, args: Any, kwargs: Any) -> tuple[Any, ...]:
        """One remote call; the reply is a plain tuple (see ``_wire.serve_call``)."""
        try:
            reply: tuple[Any, ...] = self._helper(name, args, kwargs)
        except (OSError, EOFError, AsyncResultTimeout) as exc:
            raise link_error(self._url, exc) from None
        return reply

    def close(self) -> None:
        """Drop the connection (idempotent)."""
        conn, self._conn, self._helper = self._conn, None, None
        if conn is not None:
            _close_quietly(conn, None)


def _close_quietly(conn: Any, sock: socket.socket | None) -> None:
    with contextlib.suppress(OSError, EOFError):  # already broken: nothing to tell it
        if conn is not None:
            conn.close()
    if sock is not None:
        sock.close()
