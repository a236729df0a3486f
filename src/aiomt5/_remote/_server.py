"""``aiomt5 serve``: one MetaTrader5 terminal offered to remote aiomt5 clients, safely.

Unlike mt5linux's server (an rpyc *classic* server: any client runs any code on the host), the
only thing a client can ask for is a MetaTrader5 API call: a request names a function from
``SERVED_FUNCTIONS`` and carries plain values (``_wire``); there is no eval, no import, no
object or attribute protocol to walk. Before the first request a client must present the
token (``_auth``); TLS is optional. Replies are plain values, structs as tuples, arrays as raw
bytes after the message.

The backend is any MetaTrader5-like object: the real package on Windows (or Wine), the
simulator (``--backend sim``), or a terminal in a child process. Calls from all clients are
serialized, as the terminal's one IPC pipe would anyway, and no request holds it for long
(``_bounded``).

It holds against hostile and broken peers (see docs/remote.md, "Security model"):

* Unauthenticated connections have their own small limit (``max_pending``) and a deadline for
  the whole handshake. When they are all taken, a new connection evicts the oldest one of
  the address holding the most, so a flood never locks a legitimate client out for long.
* Failed tokens are throttled per source address with a growing delay, and every kind of
  refusal is counted and logged in aggregate (``aiomt5.remote.refusals``), not line by line.
* A full server answers "busy", which clients retry; idle clients time out, TCP keepalive
  finds dead peers, and a client that stops reading is dropped when its reply's send
  deadline passes.
* ``accept()`` errors (out of descriptors...) are logged and backed off, never fatal; a
  failure in one connection is contained and logged with its peer.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiomt5._core._errors import MT5ConfigurationError, MT5Error
from aiomt5._core._log import get_logger

from ._auth import (
    ACCEPTED,
    BUSY,
    HELLO,
    MAGIC,
    MAX_TOKEN_BYTES,
    OTHER_VERSION,
    PREFIX,
    REJECTED,
    USE_TLS,
    is_loopback,
    read_exactly,
    server_tls_context,
    token_matches,
    token_problem,
)
from ._bounded import DEFAULT_MAX_REPLY_BYTES, BoundedBackend, reply_too_large
from ._wire import WireError, serve_frames, time_left

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_REPLY_BYTES",
    "DEFAULT_PORT",
    "TOKEN_ENV",
    "RemoteServer",
    "serve",
    "serve_main",
]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 18813
"""mt5linux's default is 18812; the next port keeps both runnable side by side."""
TOKEN_ENV: Final = "MT5_REMOTE_TOKEN"
_ACCEPT_POLL: Final = 0.2  # seconds between housekeeping rounds while no client connects
_ACCEPT_BACKOFF: Final = (0.01, 1.0)  # after a failed accept(): first and longest pause
_SUMMARY_EVERY: Final = 10.0  # seconds between aggregate refusal log lines
_THROTTLE_FIRST: Final = 0.1  # seconds a second token check from an address waits
_THROTTLE_MAX: Final = 5.0
_THROTTLE_FORGET: Final = 600.0  # an address without failures for this long starts afresh
_THROTTLE_ADDRESSES: Final = 4096
_KEEPALIVE: Final = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 5}
_TLS_CLIENT_HELLO: Final = b"\x16"
_M_MMAP_THRESHOLD: Final = -3  # glibc's mallopt() parameter
_OUT_OF_DESCRIPTORS: Final = frozenset(
    code
    for code in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, 10024, 10055)
    # 10024/10055: Windows' WSAEMFILE/WSAENOBUFS
)

log = get_logger("aiomt5.remote")


class _Refused(Exception):
    """A connection turned away before it authenticated; ``reason`` is counted, not logged."""

    def __init__(self, reason: str, answer: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.answer = answer


@dataclass(eq=False)
class _Pending:
    """A connection that has not authenticated yet."""

    sock: socket.socket
    address: str
    peer: str
    deadline: float
    started: float = field(default_factory=time.monotonic)
    evicted: str | None = None  # why the server dropped it
    woken: threading.Event = field(default_factory=threading.Event)


class _Throttle:
    """Failed token checks per source address: each failure makes the next check wait longer.

    An address without failures is not held back. Once one failed, its checks run one at a
    time, each ``_delay(failures)`` after the last failure (doubling up to
    ``_THROTTLE_MAX``); a connection whose turn would come after its handshake deadline, or
    while another check of its address runs, is told "busy" at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, list[Any]] = {}  # count, next check, last failure, checking

    def slot(self, address: str, now: float, latest: float) -> float | None:
        """When ``address`` may check a token (None: not before ``latest``); then ``done``."""
        with self._lock:
            record = self._failures.get(address)
            if record is not None and not record[3] and now - record[2] > _THROTTLE_FORGET:
                del self._failures[address]
                record = None
            if record is None:
                return now
            at = max(now, record[1])
            if record[3] or at > latest:
                return None
            record[3] = True
            return float(at)

    def done(self, address: str, matched: bool | None, now: float) -> None:
        """The check ``slot`` allowed ended: the token ``matched``, or None (not checked)."""
        with self._lock:
            record = self._failures.get(address)
            if matched:
                self._failures.pop(address, None)
            elif matched is None:
                if record is not None:
                    record[3] = False
            elif record is None:
                if len(self._failures) >= _THROTTLE_ADDRESSES:
                    oldest = min(self._failures, key=lambda a: self._failures[a][2])
                    del self._failures[oldest]
                self._failures[address] = [1, now + _delay(1), now, False]
            else:
                record[0] += 1
                record[1:] = [now + _delay(record[0]), now, False]


def _delay(failures: int) -> float:
    return float(min(_THROTTLE_FIRST * 2 ** min(failures - 1, 32), _THROTTLE_MAX))


class RemoteServer:
    """An ``aiomt5 serve`` server in front of one MetaTrader5-like ``backend``.

    The socket listens from construction on (``port=0`` picks a free port, see ``port``); serve
    with ``serve_forever()`` (blocking) or ``start()`` (a daemon thread), stop with ``close()``.

    Args:
        backend: The MetaTrader5 module, ``aiomt5.sim.make_module(...)``, or similar.
        host: Address to bind; loopback by default.
        port: TCP port (0: any free port).
        token: The secret clients must present (at least 16 characters; on a non-loopback
            address also varied enough, see ``_auth.token_problem``).
        allow_no_token: Accept clients without a token; refused unless ``host`` is loopback.
        tls: A server ``ssl.SSLContext`` (see ``server_tls_context``), or None for plain TCP.
        insecure: Serve a non-loopback address without TLS (the token would cross the network
            in clear); refused without it.
        handshake_timeout: Seconds a new connection has for its whole handshake (TLS included).
        max_clients: Authenticated connections served at once; one more is answered "busy".
        max_pending: Connections still in their handshake at once; one more evicts the oldest
            of the address holding the most.
        idle_timeout: Seconds an authenticated client may stay silent (None: forever).
        send_timeout: Seconds a reply may take to be sent before its client is dropped.
        max_reply_bytes: Largest reply; a request for more fails with
            ``REMOTE_REPLY_TOO_LARGE`` (``MT5ReplyTooLargeError`` on the client).
        max_reply_memory: Bytes of tick replies held at once for all clients (default: four
            ``max_reply_bytes``); a request that would overdraw it fails the same way.

    Raises:
        MT5ConfigurationError: No token (without ``allow_no_token``), a weak token, no token
            or no TLS (without ``insecure``) on a non-loopback address, or a bad limit.
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
        insecure: bool = False,
        handshake_timeout: float = 5.0,
        max_clients: int = 64,
        max_pending: int = 32,
        idle_timeout: float | None = 3600.0,
        send_timeout: float = 30.0,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        max_reply_memory: int | None = None,
    ) -> None:
        self._token = _check_token(token, host=host, allow_no_token=allow_no_token)
        _check_exposure(host, tls, insecure=insecure)
        for name, value in (
            ("handshake_timeout", handshake_timeout),
            ("max_clients", max_clients),
            ("max_pending", max_pending),
            ("send_timeout", send_timeout),
            ("max_reply_bytes", max_reply_bytes),
            ("idle_timeout", 1 if idle_timeout is None else idle_timeout),
            ("max_reply_memory", 1 if max_reply_memory is None else max_reply_memory),
        ):
            if not value > 0:
                raise MT5ConfigurationError(f"aiomt5 serve: {name} must be positive, got {value}")
        self._max_clients = max_clients
        self._max_pending = max_pending
        self._tls = tls
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        self._send_timeout = send_timeout
        self._max_reply_bytes = max_reply_bytes
        # One backend call at a time, from any client, and never an unbounded one.
        self._backend = BoundedBackend(backend, threading.Lock(), max_reply_bytes, max_reply_memory)
        self._state = threading.Lock()  # the two tables below
        self._pending: dict[_Pending, threading.Thread] = {}
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._throttle = _Throttle()
        self._refusals: Counter[str] = Counter()
        self._refused_from: Counter[str] = Counter()
        self._accept_errors: Counter[str] = Counter()
        self._summary_at = time.monotonic() + _SUMMARY_EVERY
        self._accept_failures = 0
        self._closed = threading.Event()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Listen at once: the address is reported (and connectable) before serving starts.
        self._listener = socket.create_server((host.strip("[]"), port), family=family)
        self._listener.settimeout(_ACCEPT_POLL)
        self._host, self._port = self._listener.getsockname()[:2]
        self._thread: threading.Thread | None = None
        if not is_loopback(host) and tls is None:
            log.warning(
                "aiomt5.remote.insecure",
                address=self.url,
                reason="no TLS on a non-loopback address: the token and every call cross the "
                "network in clear",
            )

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

    def connections(self) -> tuple[int, int]:
        """How many connections are (still handshaking, authenticated) right now."""
        with self._state:
            return len(self._pending), len(self._clients)

    def refusals(self) -> dict[str, int]:
        """Connections turned away so far, by reason (``"wrong_token"``, ``"deadline"``...)."""
        with self._state:
            return dict(self._refusals)

    # ------------------------------------------------------------------ accepting

    def serve_forever(self) -> None:
        """Serve until ``close()`` (from another thread) or Ctrl-C."""
        while not self._closed.is_set():
            self._housekeeping()
            try:
                sock, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._closed.is_set():
                    break  # close() shut the listener down
                self._accept_failed(exc)
                continue
            self._accept_failures = 0
            try:
                self._admit(sock, address)
            except Exception as exc:  # noqa: BLE001  # no thread left, ...: this one only
                log.warning("aiomt5.remote.connection_failed", peer=_peer(address), error=repr(exc))
                _close(sock)
        self._log_refusals()

    def _accept_failed(self, exc: OSError) -> None:
        # Out of descriptors (EMFILE/ENFILE), a connection reset before accept (ECONNABORTED)
        # or the Windows equivalents: wait a little (longer each time) and go on. Out of
        # descriptors, the oldest handshake of the flooding address gives its one back.
        self._accept_failures += 1
        if exc.errno in _OUT_OF_DESCRIPTORS:
            with self._state:
                live = [p for p in self._pending if p.evicted is None]
                if live:
                    self._evict(_victim(live), "evicted")
        count = self._accept_failures
        name = errno.errorcode.get(exc.errno or 0, repr(exc))
        with self._state:
            quiet = bool(self._accept_errors)
            self._accept_errors[name] += 1
        if not quiet:  # the next ones are counted in the aggregate line
            log.warning("aiomt5.remote.accept_failed", error=name)
        shortest, longest = _ACCEPT_BACKOFF
        self._closed.wait(min(shortest * 2 ** min(count - 1, 16), longest))

    def _admit(self, sock: socket.socket, address: Any) -> None:
        now = time.monotonic()
        pending = _Pending(sock, str(address[0]), _peer(address), now + self._handshake_timeout)
        thread = threading.Thread(
            target=self._handle, args=(pending,), name="aiomt5-serve-client", daemon=True
        )
        with self._state:
            if self._closed.is_set() or len(self._pending) >= 2 * self._max_pending:
                # Closed, or evicted handshakes have not ended yet: no new thread for now.
                self._refusals["overloaded"] += 1
                _close(sock)
                return
            live = [p for p in self._pending if p.evicted is None]
            if len(live) >= self._max_pending:
                self._evict(_victim(live), "evicted")
            self._pending[pending] = thread
        thread.start()

    def _evict(self, pending: _Pending, reason: str) -> None:
        """Drop a handshaking connection (``_state`` held): its thread wakes up and leaves."""
        if pending.evicted is not None:
            return
        pending.evicted = reason
        pending.woken.set()
        with contextlib.suppress(OSError):
            pending.sock.shutdown(socket.SHUT_RD)  # its recv returns b"" at once

    def _housekeeping(self) -> None:
        now = time.monotonic()
        with self._state:
            for pending in list(self._pending):
                if now > pending.deadline:  # stuck where no timeout reaches (TLS internals)
                    self._evict(pending, "deadline")
        if now >= self._summary_at:
            self._log_refusals()

    def _refused(self, pending: _Pending, reason: str) -> None:
        with self._state:
            self._refusals[reason] += 1
            self._refused_from[pending.address] += 1

    def _log_refusals(self) -> None:
        with self._state:
            self._summary_at = time.monotonic() + _SUMMARY_EVERY
            refused, self._refused_from = self._refused_from, Counter()
            failed, self._accept_errors = self._accept_errors, Counter()
            totals = dict(self._refusals)
        if refused:
            address, count = refused.most_common(1)[0]
            log.warning(
                "aiomt5.remote.refusals",
                recent=sum(refused.values()),
                addresses=len(refused),
                top_address=address,
                top_count=count,
                totals=totals,
            )
        if failed:
            log.warning("aiomt5.remote.accept_failures", recent=dict(failed))

    # ------------------------------------------------------------------ one connection

    def _handle(self, pending: _Pending) -> None:
        sock: socket.socket | None = pending.sock
        try:
            sock = self._handshake(pending)
            if sock is not None:
                self._serve(sock, pending.peer)
        except Exception as exc:  # noqa: BLE001  # contained: the other clients go on
            log.warning("aiomt5.remote.connection_failed", peer=pending.peer, error=repr(exc))
        finally:
            with self._state:
                self._pending.pop(pending, None)
                if sock is not None:
                    self._clients.pop(sock, None)
            _close(pending.sock)
            if sock is not None:
                _close(sock)

    def _handshake(self, pending: _Pending) -> socket.socket | None:
        """The authenticated socket (TLS-wrapped if configured), or None when refused."""
        sock = pending.sock
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _keepalive(sock)
            sock = self._secure(pending)
            self._check(pending, _read_token(sock, pending.deadline))
            self._enter(pending, sock)
            sock.sendall(ACCEPTED)
        except _Refused as refusal:
            self._refused(pending, pending.evicted or refusal.reason)
            _answer(sock, BUSY if pending.evicted == "evicted" else refusal.answer)
            return None
        except (OSError, EOFError, ValueError):  # ssl.SSLError included; a deadline
            self._refused(pending, pending.evicted or "broken")
            _answer(sock, BUSY if pending.evicted == "evicted" else b"")
            return None
        log.info("aiomt5.remote.client_accepted", peer=pending.peer)
        return sock

    def _secure(self, pending: _Pending) -> socket.socket:
        """Plain or TLS as configured; a peer speaking the other one is told, or dropped."""
        sock = pending.sock
        sock.settimeout(time_left(pending.deadline))
        first = sock.recv(1, socket.MSG_PEEK)
        if not first:
            raise EOFError("closed before the handshake")
        if self._tls is None:
            if first == _TLS_CLIENT_HELLO:
                # Plain text where its TLS layer expects a record: it reports the failure.
                raise _Refused("tls_mismatch", USE_TLS)
            return sock
        if first == MAGIC[:1]:
            raise _Refused("tls_mismatch", USE_TLS)  # plain client: it has not sent its token
        tls_sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._state:
            pending.sock = tls_sock  # eviction must shut the TLS socket down from now on
        tls_sock.settimeout(time_left(pending.deadline))
        tls_sock.do_handshake()
        return tls_sock

    def _check(self, pending: _Pending, given: bytes) -> None:
        if self._token is None:
            return
        now = time.monotonic()
        slot = self._throttle.slot(pending.address, now, pending.deadline)
        if slot is None:
            raise _Refused("throttled", BUSY)  # this address failed lately: later
        matched = None
        try:
            if slot > now and pending.woken.wait(slot - now):
                raise _Refused("evicted", BUSY)
            matched = token_matches(given, self._token)
        finally:
            self._throttle.done(pending.address, matched, time.monotonic())
        if not matched:
            raise _Refused("wrong_token", REJECTED)

    def _enter(self, pending: _Pending, sock: socket.socket) -> None:
        with self._state:
            if pending.evicted is not None:
                raise _Refused(pending.evicted)
            if len(self._clients) >= self._max_clients:
                raise _Refused("full", BUSY)
            thread = self._pending.pop(pending)
            self._clients[sock] = thread

    def _serve(self, sock: socket.socket, peer: str) -> None:
        try:
            serve_frames(
                sock,
                self._backend,
                contextlib.nullcontext(),  # the backend takes its lock call by call
                idle_timeout=self._idle_timeout,
                send_timeout=self._send_timeout,
                too_large=self._too_large,
            )
        except TimeoutError:
            # Reset, not closed: the kernel drops what it still holds for a peer not reading.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            log.info("aiomt5.remote.client_dropped", peer=peer, reason="idle, or not reading")
        except WireError as exc:
            log.warning("aiomt5.remote.client_dropped", peer=peer, reason=str(exc))
        except OSError:
            pass  # the client went away, or close() shut its socket: nothing to report
        log.info("aiomt5.remote.client_closed", peer=peer)

    def _too_large(self, size: int) -> tuple[Any, ...] | None:
        if size <= self._max_reply_bytes:
            return None
        return ("ok", None, reply_too_large(size, self._max_reply_bytes))

    # ------------------------------------------------------------------ lifecycle

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
        with self._state:
            pending = list(self._pending.items())
            clients = list(self._clients.items())
            for record, _ in pending:
                self._evict(record, "closing")
        for sock, _ in clients:
            with contextlib.suppress(OSError):  # wakes its thread up: recv returns b""
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        for _, thread in pending + clients:
            # A thread inside a hung backend call cannot be woken; it is a daemon.
            thread.join(timeout=1.0)

    def __enter__(self) -> RemoteServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        tls = "tls" if self._tls else "plain"
        auth = "token" if self._token is not None else "no token"
        return f"<RemoteServer {self.url} {tls} {auth}>"


def _victim(pending: list[_Pending]) -> _Pending:
    """The oldest connection of the address holding the most handshakes.

    A flood from one address pushes its own connections out, not a legitimate client's.
    """
    per_address = Counter(p.address for p in pending)
    flooding = max(per_address, key=lambda a: per_address[a])
    return min((p for p in pending if p.address == flooding), key=lambda p: p.started)


def _peer(address: Any) -> str:
    try:
        return "{}:{}".format(*address[:2])
    except (TypeError, IndexError):
        return "?"


def _read_token(sock: socket.socket, deadline: float) -> bytes:
    """The client's hello, then (once answered) its token."""
    magic = read_exactly(sock, len(MAGIC), deadline)
    if magic != MAGIC:
        if magic.startswith(PREFIX):
            raise _Refused("other_version", OTHER_VERSION)
        raise _Refused("not_aiomt5")
    sock.sendall(HELLO)
    size = int.from_bytes(read_exactly(sock, 2, deadline), "big")
    if size > MAX_TOKEN_BYTES:
        raise _Refused("not_aiomt5")
    return read_exactly(sock, size, deadline)


def _answer(sock: socket.socket, answer: bytes) -> None:
    """Best effort: a refused peer is told why if its socket takes two bytes at once."""
    if answer:
        with contextlib.suppress(OSError, ValueError):
            sock.settimeout(0)
            sock.send(answer)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _keepalive(sock: socket.socket) -> None:
    """TCP keepalive: a peer that vanished (cable, NAT, crash) is found within minutes."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in _KEEPALIVE.items():
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
        if hasattr(sock, "ioctl") and hasattr(socket, "SIO_KEEPALIVE_VALS"):  # Windows
            sock.ioctl(socket.SIO_KEEPALIVE_VALS, (1, 60_000, 10_000))


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
    problem = token_problem(token, public=not is_loopback(host))
    if problem is not None:
        raise MT5ConfigurationError(
            f"{problem}: make one with `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`"
        )
    return token.encode()


def _check_exposure(host: str, tls: ssl.SSLContext | None, *, insecure: bool) -> None:
    if tls is None and not insecure and not is_loopback(host):
        raise MT5ConfigurationError(
            f"refusing to serve on {host} without TLS: the token and every order would cross "
            "the network in clear. Give --tls-cert/--tls-key, bind 127.0.0.1 and use an SSH "
            "tunnel, or pass --insecure if the network is private"
        )


def return_freed_memory(threshold: int = 128 << 10) -> None:
    """Make this process give large freed buffers back to the system at once (glibc only).

    A server's replies are arrays of up to ``max_reply_bytes``. glibc raises its mmap
    threshold as such buffers are freed, after which the next ones come from the heap and
    stay in the process when freed: a few big replies would leave it 100 MB larger for good.
    Pinning the threshold (glibc's initial 128 KiB by default) keeps every buffer larger than
    ``threshold`` in its own mapping, unmapped when freed.
    Called by the ``aiomt5 serve`` program (not by ``RemoteServer``: a library does not tune
    its host process) and by a ``ChildTerminal``'s child; elsewhere it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, threshold)


def serve(backend: object, **options: Any) -> None:
    """Serve ``backend`` until interrupted (see ``RemoteServer`` for the options)."""
    server = RemoteServer(backend, **options)
    try:
        server.serve_forever()
    finally:
        server.close()


# --------------------------------------------------------------------------- command line


def _token_from(token_file: str | None) -> str | None:
    if token_file is None:
        return os.environ.get(TOKEN_ENV)
    try:
        with open(token_file, encoding="utf-8") as file:
            return file.readline().strip()
    except OSError as exc:
        raise MT5ConfigurationError(f"cannot read --token-file {token_file}: {exc}") from None


def _load_backend(name: str, seed: int | None) -> object:
    """The served backend, built as a connector would (``MT5_ISOLATION``, ``MT5_SIM_*``...).

    The MetaTrader5 module (and a GIL-holding simulator) runs in a child process by default: a
    call holding the GIL there leaves this process's accept loop, handshakes and deadlines
    running.
    """
    from aiomt5._backends import resolve_backend, runs_in_child
    from aiomt5._settings import MT5Settings

    # The MT5_SIM_* settings apply, as everywhere; --sim-seed wins over MT5_SIM_SEED.
    fields = {"backend": name} if seed is None else {"backend": name, "sim_seed": seed}
    settings = MT5Settings(**fields)
    if name == "sim" and not runs_in_child(name, settings):
        from aiomt5.sim import make_module, sim_terminal_from_settings

        terminal, note = sim_terminal_from_settings(settings, open_market=True)
        if note is not None:
            sys.stderr.write(f"aiomt5 serve: {note}\n")
        return make_module(terminal)
    return resolve_backend(name, settings).module


def run_serve(
    *,
    backend: str = "metatrader5",
    token_file: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    sim_seed: int | None = None,
    as_json: bool = False,
    **options: Any,
) -> int:
    """``aiomt5 serve``: build the server from the command line's options, serve until Ctrl-C.

    ``options`` are ``RemoteServer``'s. Prints one line ``aiomt5 serve: listening on
    aiomt5://HOST:PORT ...`` (stdout) once the socket listens; errors go to stderr with
    status 2, and never contain the token. With ``as_json`` stdout is JSON Lines instead: one
    ``{"event": "listening", "url": ...}`` object once the socket listens (a supervisor reads
    the port chosen for ``--port 0`` from it) and one ``{"event": "stopped", ...}`` at the end.
    """
    return_freed_memory()
    try:
        token = _token_from(token_file)
        tls = server_tls_context(tls_cert, tls_key) if tls_cert else None
        module = _load_backend(backend, sim_seed)
        server = RemoteServer(module, token=token, tls=tls, **options)
    except (MT5Error, ValueError, OSError) as exc:  # MT5NotAvailableError, bad TLS files...
        sys.stderr.write(f"aiomt5 serve: {exc}\n")
        return 2
    try:  # before the announcement: whoever read it may interrupt us at once
        if as_json:
            _json_line(
                event="listening",
                url=server.url,
                host=server.host,
                port=server.port,
                backend=backend,
                tls=tls is not None,
                token=token is not None,
            )
        else:
            sys.stdout.write(
                f"aiomt5 serve: listening on {server.url} (backend {backend}, "
                f"{'TLS' if tls else 'no TLS'}, {'token' if token else 'NO TOKEN'})\n"
            )
            sys.stdout.flush()
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        if as_json:
            _json_line(event="stopped", url=server.url, refusals=server.refusals())
    return 0


def _json_line(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``aiomt5 serve [options]`` from Python: the CLI's ``serve`` command; the exit status."""
    from aiomt5._cli import main

    try:
        main(["serve", *(sys.argv[1:] if argv is None else argv)])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return 0
