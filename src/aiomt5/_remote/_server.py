"""``aiomt5 serve``: one MetaTrader5 terminal offered to remote aiomt5 clients, safely.

Unlike mt5linux's server (an rpyc *classic* server: any client runs any code on the host), the
only thing a client can ask for is a MetaTrader5 API call: a request names a function from
``SERVED_FUNCTIONS`` and carries plain values (``_wire``); there is no eval, no import, no
object or attribute protocol to walk. Before the first request a client must present the
token (``_auth``); TLS is optional. Replies are plain values, structs as tuples, arrays as raw
bytes after the message.

The backend is any MetaTrader5-like module: the real package on Windows (or Wine), or the
simulator (``--backend sim``). Calls from all clients are serialized, as the terminal's one
IPC pipe would anyway. Each client gets a thread; a client that sends anything that is not a
request is dropped, and the others go on.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import ssl
import sys
import threading
from collections.abc import Sequence
from typing import Final

from aiomt5._core._errors import MT5ConfigurationError, MT5Error
from aiomt5._core._log import get_logger

from ._auth import (
    MIN_TOKEN_LENGTH,
    AuthRejectedError,
    is_loopback,
    server_handshake,
    server_tls_context,
)
from ._wire import WireError, serve_frames

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "TOKEN_ENV", "RemoteServer", "serve", "serve_main"]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 18813
"""mt5linux's default is 18812; the next port keeps both runnable side by side."""
TOKEN_ENV: Final = "MT5_REMOTE_TOKEN"
_ACCEPT_POLL: Final = 0.2  # seconds between checks of close() while waiting for clients

log = get_logger("aiomt5.remote")


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
        max_clients: Connections served at once (each has a thread); more are closed at once,
            so a flood of connections cannot exhaust the host.

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
        max_clients: int = 64,
    ) -> None:
        self._token = _check_token(token, host=host, allow_no_token=allow_no_token)
        self._max_clients = max_clients
        self._backend = backend
        self._tls = tls
        self._handshake_timeout = handshake_timeout
        self._lock = threading.Lock()  # one backend call at a time, from any client
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._clients_lock = threading.Lock()
        self._closed = threading.Event()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Listen at once: the address is reported (and connectable) before serving starts.
        self._listener = socket.create_server((host.strip("[]"), port), family=family)
        self._listener.settimeout(_ACCEPT_POLL)
        self._host, self._port = self._listener.getsockname()[:2]
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._host)

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when constructed with ``port=0``)."""
        return int(self._port)

    @property
    def url(self) -> str:
        """The ``aiomt5://host:port`` address clients use."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"aiomt5://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until ``close()`` (from another thread) or Ctrl-C."""
        while not self._closed.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closed.is_set():
                    break  # close() shut the listener down
                raise
            thread = threading.Thread(
                target=self._serve_client, args=(sock,), name="aiomt5-serve-client", daemon=True
            )
            with self._clients_lock:
                if self._closed.is_set():
                    sock.close()
                    break
                if len(self._clients) >= self._max_clients:
                    log.warning(
                        "aiomt5.remote.client_refused", peer=_peer(sock), reason="too many clients"
                    )
                    sock.close()
                    continue
                self._clients[sock] = thread
            thread.start()

    def start(self) -> None:
        """Serve in a daemon thread; returns at once (the socket is already listening)."""
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"aiomt5-serve-{self.port}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, drop every client and wait for the serving threads."""
        self._closed.set()
        with contextlib.suppress(OSError):  # wakes accept() up at once
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._clients_lock:
            clients = list(self._clients.items())
        for sock, _ in clients:
            with contextlib.suppress(OSError):  # wakes its thread up: recv returns b""
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        for _, thread in clients:
            # A thread inside a hung backend call cannot be woken; it is a daemon.
            thread.join(timeout=1.0)

    def _serve_client(self, sock: socket.socket) -> None:
        peer = _peer(sock)
        try:
            sock.settimeout(self._handshake_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self._secure(sock)
            server_handshake(sock, self._token)
        except (AuthRejectedError, OSError) as exc:  # ssl.SSLError included
            log.warning("aiomt5.remote.client_rejected", peer=peer, reason=str(exc))
            self._forget(sock)
            return
        log.info("aiomt5.remote.client_accepted", peer=peer)
        try:
            sock.settimeout(None)
            serve_frames(sock, self._backend, self._lock)
        except WireError as exc:
            log.warning("aiomt5.remote.client_dropped", peer=peer, reason=str(exc))
        except OSError:
            pass  # the client went away, or close() shut its socket: nothing to report
        finally:
            self._forget(sock)
            log.info("aiomt5.remote.client_closed", peer=peer)

    def _secure(self, sock: socket.socket) -> socket.socket:
        """Wrap ``sock`` in TLS when configured (raises ``OSError``/``ssl.SSLError``)."""
        if self._tls is None:
            return sock
        tls_sock = self._tls.wrap_socket(sock, server_side=True)
        with self._clients_lock:  # close() must shut the TLS socket down from now on
            self._clients[tls_sock] = self._clients.pop(sock)
        return tls_sock

    def _forget(self, sock: socket.socket) -> None:
        with self._clients_lock:
            self._clients.pop(sock, None)
        sock.close()

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
    parser.add_argument(
        "--sim-seed", type=int, default=None, help="simulator seed (default: MT5_SIM_SEED or 0)"
    )
    return parser


def _read_token(token_file: str | None) -> str | None:
    if token_file is None:
        return os.environ.get(TOKEN_ENV)
    try:
        with open(token_file, encoding="utf-8") as file:
            return file.readline().strip()
    except OSError as exc:
        raise MT5ConfigurationError(f"cannot read --token-file {token_file}: {exc}") from None


def _load_backend(name: str, seed: int | None) -> object:
    from aiomt5._settings import MT5Settings

    if name == "sim":
        from aiomt5.sim import make_module, sim_terminal_from_settings

        # The MT5_SIM_* settings apply, as everywhere; --sim-seed wins over MT5_SIM_SEED.
        settings = MT5Settings() if seed is None else MT5Settings(sim_seed=seed)
        terminal, note = sim_terminal_from_settings(settings, open_market=True)
        if note is not None:
            sys.stderr.write(f"aiomt5 serve: {note}\n")
        return make_module(terminal)
    from aiomt5._backends import resolve_backend

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
