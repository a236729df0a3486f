"""The ``aiomt5 serve`` connection handshake: a token checked before any request is read.

Right after TCP (and TLS, when configured) connects::

    client: b"AIOMT5" + protocol version byte
    server: b"HI"                      go on (b"VE": another version, b"TL": use TLS)
    client: 2-byte big-endian length + the token (UTF-8)
    server: b"OK"                      then framed requests follow (see ``_wire``)
            b"NO"                      wrong token
            b"BU"                      busy: full, or this address must wait; try again later

The token is sent only once the server has said it is a plain-text ``aiomt5 serve`` (``HI``):
a client without TLS talking to a TLS server gets ``TL`` and sends nothing secret. An
unauthenticated peer never reaches the request loop. The token is compared in constant time
(``hmac.compare_digest`` over SHA-256 digests, which also hides its length).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import socket
import ssl
from typing import Final

from ._wire import PROTOCOL, time_left

__all__ = [
    "MIN_TOKEN_LENGTH",
    "AuthRejectedError",
    "ProtocolMismatchError",
    "ServerBusyError",
    "TLSMismatchError",
    "client_handshake",
    "client_tls_context",
    "is_loopback",
    "read_exactly",
    "server_tls_context",
    "token_matches",
    "token_problem",
]

PREFIX: Final = b"AIOMT5"
MAGIC: Final = PREFIX + bytes([PROTOCOL])
HELLO: Final = b"HI"
ACCEPTED: Final = b"OK"
REJECTED: Final = b"NO"
BUSY: Final = b"BU"
OTHER_VERSION: Final = b"VE"
USE_TLS: Final = b"TL"
ANSWER_SIZE: Final = 2
MAX_TOKEN_BYTES: Final = 1024
MIN_TOKEN_LENGTH: Final = 16
"""Shortest token ``aiomt5 serve`` accepts (``secrets.token_urlsafe(32)`` gives 43)."""
MIN_PUBLIC_TOKEN_BITS: Final = 80
"""Least estimated strength (length x log2 of distinct characters) for a non-loopback bind."""
MIN_PUBLIC_TOKEN_CHARACTERS: Final = 8
"""Fewest distinct characters a token needs for a non-loopback bind."""


class AuthRejectedError(ConnectionError):
    """The peer did not complete the handshake: wrong token, wrong protocol, or it hung up."""


class ProtocolMismatchError(ConnectionError):
    """Client and server are different aiomt5 versions speaking different protocols."""


class ServerBusyError(ConnectionError):
    """The server has no room for this client now (or throttles its address): retry later."""


class TLSMismatchError(ConnectionError):
    """TLS on one side only; the message says which setting to change."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def token_matches(given: bytes, expected: bytes) -> bool:
    """Constant-time token comparison that does not reveal the expected token's length."""
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


def token_problem(token: str, *, public: bool) -> str | None:
    """What is wrong with ``token`` for a bind (``public``: not loopback), or None.

    Every token needs ``MIN_TOKEN_LENGTH`` characters; a public bind also needs
    ``MIN_PUBLIC_TOKEN_CHARACTERS`` distinct ones and an estimated ``MIN_PUBLIC_TOKEN_BITS``.
    The message never contains the token.
    """
    if len(token) < MIN_TOKEN_LENGTH:
        return f"the token is too short ({len(token)} characters): use at least {MIN_TOKEN_LENGTH}"
    if not public:
        return None
    distinct = len(set(token))
    bits = len(token) * math.log2(distinct) if distinct > 1 else 0.0
    if distinct < MIN_PUBLIC_TOKEN_CHARACTERS or bits < MIN_PUBLIC_TOKEN_BITS:
        return (
            f"the token is too weak for a non-loopback address ({distinct} distinct characters, "
            f"about {bits:.0f} bits; at least {MIN_PUBLIC_TOKEN_CHARACTERS} distinct characters "
            f"and {MIN_PUBLIC_TOKEN_BITS} bits are needed)"
        )
    return None


def read_exactly(sock: socket.socket, size: int, deadline: float | None = None) -> bytes:
    """``size`` bytes from ``sock``, all of them before ``deadline`` (``time.monotonic()``).

    Raises:
        EOFError: The peer closed the connection first.
        OSError: The connection failed (``TimeoutError``: the deadline passed).
    """
    chunks = bytearray()
    while len(chunks) < size:
        if deadline is not None:
            sock.settimeout(time_left(deadline))
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError("the peer closed the connection during the handshake")
        chunks += chunk
    return bytes(chunks)


def client_handshake(sock: socket.socket, token: str | None, deadline: float | None = None) -> None:
    """Say hello, send the token once the server answered, and wait for its verdict.

    ``deadline`` (``time.monotonic()``) bounds the whole exchange.

    Raises:
        AuthRejectedError: The server refused the token.
        ProtocolMismatchError: The server speaks another protocol version, or is no
            ``aiomt5 serve``.
        ServerBusyError: The server has no room now.
        TLSMismatchError: The server wants TLS.
        OSError: The connection failed or timed out (``EOFError`` is reported as one).
    """
    data = (token or "").encode()
    if len(data) > MAX_TOKEN_BYTES:
        raise AuthRejectedError(f"the remote token is longer than {MAX_TOKEN_BYTES} bytes")
    sock.sendall(MAGIC)
    _check_answer(_answer(sock, deadline), expected=HELLO)
    sock.sendall(len(data).to_bytes(2, "big") + data)
    _check_answer(_answer(sock, deadline), expected=ACCEPTED)


def _answer(sock: socket.socket, deadline: float | None) -> bytes:
    try:
        return read_exactly(sock, ANSWER_SIZE, deadline)
    except EOFError:
        raise ConnectionResetError("the server closed the connection without answering") from None


def _check_answer(answer: bytes, *, expected: bytes) -> None:
    if answer == expected:
        return
    if answer == BUSY:
        raise ServerBusyError("the server is full or throttles this address: try again later")
    if answer == REJECTED:
        raise AuthRejectedError(
            "the server rejected the token: set remote_token (MT5_REMOTE_TOKEN) to the token "
            "`aiomt5 serve` was started with"
        )
    if answer == OTHER_VERSION:
        raise ProtocolMismatchError(
            f"the server speaks another aiomt5 remote protocol (this client: version {PROTOCOL}):"
            " install the same aiomt5 release on both sides"
        )
    if answer == USE_TLS:
        raise TLSMismatchError(
            "the server uses TLS and this client does not: set remote_tls (MT5_REMOTE_TLS=true)"
            " or remote_tls_ca (MT5_REMOTE_TLS_CA); the token was not sent"
        )
    if answer[:1] == b"\x15" or answer[:1] == b"\x16":  # a TLS alert or handshake record
        raise TLSMismatchError(
            "the server answered with TLS and this client does not use it: set remote_tls "
            "(MT5_REMOTE_TLS=true); the token was not sent"
        )
    raise ProtocolMismatchError("the server is not an aiomt5 serve server (unexpected answer)")


def server_tls_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2+) from a PEM certificate and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


def client_tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """A verifying TLS client context: system CAs, or ``cafile`` (e.g. a self-signed cert)."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
