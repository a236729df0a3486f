"""``aiomt5 serve``: one MetaTrader5 terminal offered to remote aiomt5 clients, safely.

Unlike mt5linux's server (an rpyc *classic* server: any client runs any code on the host), this
is an rpyc *service* with exactly two remote entry points, ``call(name, args, kwargs)`` for the
MetaTrader5 API functions in ``SERVED_FUNCTIONS`` and ``constants()``; no eval, no imports, no
attribute access beyond those two (``_rpyc_getattr`` whitelists them and the protocol config
turns every other kind of access off). Before rpyc starts, a client must present the token
(``_auth``); TLS is optional. Values cross as plain tuples (``_wire``), never as netrefs.

The backend is any MetaTrader5-like module: the real package on Windows (or Wine), or the
simulator (``--backend sim``). Calls from all clients are serialized, as the terminal's one
IPC pipe would anyway.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import ssl
import sys
import threading
from collections.abc import Sequence
from typing import Any, Final

import rpyc
from rpyc.utils.authenticators import AuthenticationError
from rpyc.utils.server import ThreadedServer

from aiomt5._errors import MT5ConfigurationError, MT5Error
from aiomt5._log import get_logger

from ._aiomt5 import uncompressed_channel
from ._auth import (
    MIN_TOKEN_LENGTH,
    AuthRejectedError,
    is_loopback,
    server_handshake,
    server_tls_context,
)
from ._wire import serve_call

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "TOKEN_ENV", "RemoteServer", "serve", "serve_main"]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 18813
"""mt5linux's default is 18812; the next port keeps both runnable side by side."""
TOKEN_ENV: Final = "MT5_REMOTE_TOKEN"

log = get_logger("aiomt5.remote")
# rpyc logs its own plain messages (connections accepted, closed) to a stdlib logger.
_rpyc_log = logging.getLogger("aiomt5.remote.rpyc")

# Everything a client could reach through rpyc's generic handlers is off; the service's own
# _rpyc_getattr is the only door.
_SERVER_CONFIG: Final[dict[str, Any]] = {
    "allow_safe_attrs": False,
    "allow_exposed_attrs": True,
    "allow_public_attrs": False,
    "allow_all_attrs": False,
    "allow_getattr": True,
    "allow_setattr": False,
    "allow_delattr": False,
    "allow_pickle": False,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": False,
    "instantiate_oldstyle_exceptions": False,
    "propagate_SystemExit_locally": False,
    "propagate_KeyboardInterrupt_locally": False,
    "include_local_traceback": False,
    "include_local_version": False,
}
_ENTRY_POINTS: Final = frozenset({"call", "constants"})


class _TerminalService(rpyc.Service):  # type: ignore[misc]  # rpyc is untyped
    """The rpyc root object clients see: ``call`` and ``constants``, nothing else."""

    def __init__(self, backend: object) -> None:
        self._backend = backend
        self._lock = threading.Lock()

    def _rpyc_getattr(self, name: str) -> Any:
        if name in _ENTRY_POINTS:
            return getattr(self, f"exposed_{name}")
        raise AttributeError(f"aiomt5 serve exposes only call() and constants(), not {name!r}")

    def _rpyc_setattr(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot set {name!r}")

    def _rpyc_delattr(self, name: str) -> None:
        raise AttributeError(f"cannot delete {name!r}")

    def exposed_call(self, name: Any, args: Any, kwargs: Any) -> tuple[Any, ...]:
        """One MetaTrader5 call: see ``_wire.serve_call``."""
        with self._lock:
            return serve_call(self._backend, name, args, kwargs)

    def exposed_constants(self) -> tuple[tuple[str, int], ...]:
        """The backend's integer constants, as ``(name, value)`` pairs."""
        backend = self._backend
        return tuple(
            (name, int(value))
            for name in dir(backend)
            if name.isupper() and type(value := getattr(backend, name)) is int
        )


class _ThreadedServer(ThreadedServer):  # type: ignore[misc]  # rpyc is untyped
    def _authenticate_and_serve_client(self, sock: socket.socket) -> None:
        # rpyc only shuts the socket down; close it, or every connection leaks a descriptor.
        try:
            super()._authenticate_and_serve_client(sock)
        finally:
            sock.close()

    def _serve_client(self, sock: socket.socket, credentials: Any) -> None:
        config = dict(
            self.protocol_config,
            credentials=credentials,
            endpoints=(sock.getsockname(), sock.getpeername()),
            logger=self.logger,
        )
        # The client went away, or close() shut its socket: nothing to report.
        with contextlib.suppress(OSError, EOFError):
            conn = self.service._connect(uncompressed_channel(sock), config)
            self._handle_connection(conn)


class RemoteServer:
    """An ``aiomt5 serve`` server in front of one MetaTrader5-like ``backend``.

    The socket listens from construction on (``port=0`` picks a free port, see ``port``); serve
    with ``serve_forever()`` (blocking) or ``start()`` (a daemon thread), stop with ``close()``.

    Args:
        backend: The MetaTrader5 module, ``aiomt5.sim.make_module(...)``, or similar.
        host: Address to bind; loopback by default.
        port: TCP port (0: any free port).
        token: The secret clients must present (at least 16 characters).
        allow_no_token: Accept clients without a token; refused unless ``host`` is loopback.
        tls: A server ``ssl.SSLContext`` (see ``server_tls_context``), or None for plain TCP.
        handshake_timeout: Seconds a new connection may take to present its token.

    Raises:
        MT5ConfigurationError: No token (without ``allow_no_token``), a token too short, or no
            token on a non-loopback address.
        OSError: The address cannot be bound.
    """

    def __init__(
        self,
        backend: object,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        allow_no_token: bool = False,
        tls: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
    ) -> None:
        self._token = _check_token(token, host=host, allow_no_token=allow_no_token)
        self._tls = tls
        self._handshake_timeout = handshake_timeout
        self._server = _ThreadedServer(
            _TerminalService(backend),
            hostname=host,
            port=port,
            reuse_addr=True,
            authenticator=self._authenticate,
            protocol_config=dict(_SERVER_CONFIG),
            logger=_rpyc_log,
            listener_timeout=0.2,
            auto_register=False,
        )
        # Listen at once: the address is reported (and connectable) before serving starts.
        self._server._listen()
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._server.host)

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when constructed with ``port=0``)."""
        return int(self._server.port)

    @property
    def url(self) -> str:
        """The ``aiomt5://host:port`` address clients use."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"aiomt5://{host}:{self.port}"

    def _authenticate(self, sock: socket.socket) -> tuple[socket.socket, None]:
        # Runs in the connection's own thread: a slow client cannot block the others.
        peer = _peer(sock)
        try:
            sock.settimeout(self._handshake_timeout)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True)
            server_handshake(sock, self._token)
            sock.settimeout(None)
        except (AuthRejectedError, OSError) as exc:
            log.warning("aiomt5.remote.client_rejected", peer=peer, reason=str(exc))
            sock.close()  # the TLS socket when wrapped (the plain one is then detached)
            raise AuthenticationError(str(exc)) from None
        log.info("aiomt5.remote.client_accepted", peer=peer)
        return sock, None

    def serve_forever(self) -> None:
        """Serve until ``close()`` (from another thread) or Ctrl-C."""
        self._server.start()

    def start(self) -> None:
        """Serve in a daemon thread; returns at once (the socket is already listening)."""
        self._thread = threading.Thread(
            target=self._server.start, name=f"aiomt5-serve-{self.port}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, drop every client and wait for the serving thread."""
        self._server.close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> RemoteServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        tls = "tls" if self._tls else "plain"
        auth = "token" if self._token is not None else "no token"
        return f"<RemoteServer {self.url} {tls} {auth}>"


def _peer(sock: socket.socket) -> str:
    try:
        return "{}:{}".format(*sock.getpeername()[:2])
    except OSError:
        return "?"


def _check_token(token: str | None, *, host: str, allow_no_token: bool) -> bytes | None:
    if token is None or not token.strip():
        if not is_loopback(host):
            raise MT5ConfigurationError(
                f"refusing to serve on {host} without a token: anyone who can reach it could "
                f"trade on the account. Set {TOKEN_ENV} or --token-file, or bind 127.0.0.1"
            )
        if not allow_no_token:
            raise MT5ConfigurationError(
                f"aiomt5 serve needs a token: set {TOKEN_ENV} or --token-file (e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`); "
                "--insecure-no-token allows none on a loopback address"
            )
        return None
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise MT5ConfigurationError(
            f"the token is too short ({len(token)} characters): use at least {MIN_TOKEN_LENGTH}, "
            "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return token.encode()


def serve(
    backend: object,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    allow_no_token: bool = False,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Serve ``backend`` until interrupted (see ``RemoteServer`` for the arguments)."""
    server = RemoteServer(
        backend, host=host, port=port, token=token, allow_no_token=allow_no_token, tls=tls
    )
    try:
        server.serve_forever()
    finally:
        server.close()


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiomt5 serve",
        description=(
            "Serve a MetaTrader5 terminal to aiomt5 clients (backend 'aiomt5://host:port'). "
            f"The token comes from --token-file or ${TOKEN_ENV}."
        ),
    )
    parser.add_argument("--backend", choices=("metatrader5", "sim"), default="metatrader5")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: any free)")
    parser.add_argument("--token-file", help="file holding the token (first line)")
    parser.add_argument(
        "--insecure-no-token",
        action="store_true",
        help="accept clients without a token (loopback addresses only)",
    )
    parser.add_argument("--tls-cert", help="PEM certificate: serve over TLS")
    parser.add_argument("--tls-key", help="PEM private key (if not in --tls-cert)")
    parser.add_argument("--sim-seed", type=int, default=0, help="simulator seed (--backend sim)")
    return parser


def _read_token(token_file: str | None) -> str | None:
    if token_file is None:
        return os.environ.get(TOKEN_ENV)
    try:
        with open(token_file, encoding="utf-8") as file:
            return file.readline().strip()
    except OSError as exc:
        raise MT5ConfigurationError(f"cannot read --token-file {token_file}: {exc}") from None


def _load_backend(name: str, seed: int) -> object:
    if name == "sim":
        from aiomt5.sim import SimTerminal, make_module

        return make_module(SimTerminal(seed=seed))
    from aiomt5._backends import resolve_backend
    from aiomt5._settings import MT5Settings

    return resolve_backend("metatrader5", MT5Settings(backend="metatrader5")).module


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``aiomt5 serve [options]``: parse ``argv``, serve until Ctrl-C, return the exit status.

    Prints one line ``aiomt5 serve: listening on aiomt5://HOST:PORT ...`` (stdout) once the
    socket listens; errors go to stderr with status 2.
    """
    options = _parser().parse_args(argv)
    try:
        token = _read_token(options.token_file)
        tls = server_tls_context(options.tls_cert, options.tls_key) if options.tls_cert else None
        backend = _load_backend(options.backend, options.sim_seed)
        server = RemoteServer(
            backend,
            host=options.host,
            port=options.port,
            token=token,
            allow_no_token=options.insecure_no_token,
            tls=tls,
        )
    except (MT5Error, ValueError, OSError) as exc:  # MT5NotAvailableError, bad TLS files...
        sys.stderr.write(f"aiomt5 serve: {exc}\n")
        return 2
    sys.stdout.write(
        f"aiomt5 serve: listening on {server.url} (backend {options.backend}, "
        f"{'TLS' if tls else 'no TLS'}, {'token' if token else 'NO TOKEN'})\n"
    )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
