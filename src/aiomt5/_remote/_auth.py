"""The ``aiomt5 serve`` connection handshake: a token checked before any request is read.

Right after TCP (and TLS, when configured) connects, the client sends::

    b"AIOMT5" + protocol version byte + 2-byte big-endian length + the token (UTF-8)

and the server answers ``b"OK"`` (then framed requests follow, see ``_wire``), ``b"VE"`` when
the client speaks another protocol version, or closes the connection. An unauthenticated peer
never reaches the request loop. The token is compared in constant time
(``hmac.compare_digest`` over SHA-256 digests, which also hides its length).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import ssl
from typing import Final

from ._wire import PROTOCOL

__all__ = [
    "MIN_TOKEN_LENGTH",
    "AuthRejectedError",
    "ProtocolMismatchError",
    "client_handshake",
    "client_tls_context",
    "is_loopback",
    "server_handshake",
    "server_tls_context",
    "token_matches",
]

_PREFIX: Final = b"AIOMT5"
MAGIC: Final = _PREFIX + bytes([PROTOCOL])
_ACCEPTED: Final = b"OK"
_OTHER_VERSION: Final = b"VE"
_MAX_TOKEN_BYTES: Final = 1024
MIN_TOKEN_LENGTH: Final = 16
"""Shortest token ``aiomt5 serve`` accepts (``secrets.token_urlsafe(32)`` gives 43)."""


class AuthRejectedError(ConnectionError):
    """The peer did not complete the handshake: wrong token, wrong protocol, or it hung up."""


class ProtocolMismatchError(ConnectionError):
    """Client and server are different aiomt5 versions speaking different protocols."""


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


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise AuthRejectedError("the peer closed the connection during the handshake")
        chunks += chunk
    return bytes(chunks)


def client_handshake(sock: socket.socket, token: str | None) -> None:
    """Send the token and wait for the server's answer.

    Raises:
        AuthRejectedError: The server refused the token (or is not an ``aiomt5 serve``).
        ProtocolMismatchError: The server speaks another protocol version.
        OSError: The connection failed.
    """
    data = (token or "").encode()
    if len(data) > _MAX_TOKEN_BYTES:
        raise AuthRejectedError(f"the remote token is longer than {_MAX_TOKEN_BYTES} bytes")
    sock.sendall(MAGIC + len(data).to_bytes(2, "big") + data)
    try:
        answer = _read_exactly(sock, len(_ACCEPTED))
    except AuthRejectedError:
        answer = b""
    if answer == _OTHER_VERSION:
        raise ProtocolMismatchError(
            f"the server speaks another aiomt5 remote protocol (this client: version {PROTOCOL}):"
            " install the same aiomt5 release on both sides"
        )
    if answer != _ACCEPTED:
        raise AuthRejectedError(
            "the server rejected the token: set remote_token (MT5_REMOTE_TOKEN) to the token "
            "`aiomt5 serve` was started with"
        )


def server_handshake(sock: socket.socket, expected: bytes | None) -> None:
    """Read the client's token and accept it (``expected`` None: any token is accepted).

    Raises:
        AuthRejectedError: Wrong magic, wrong or missing token.
        OSError: The connection failed or timed out.
    """
    magic = _read_exactly(sock, len(MAGIC))
    if magic != MAGIC:
        if magic.startswith(_PREFIX):
            sock.sendall(_OTHER_VERSION)
            raise AuthRejectedError(
                f"the client speaks aiomt5 remote protocol {magic[-1]}, this server {PROTOCOL}"
            )
        raise AuthRejectedError("not an aiomt5 client (bad handshake)")
    size = int.from_bytes(_read_exactly(sock, 2), "big")
    if size > _MAX_TOKEN_BYTES:
        raise AuthRejectedError("token too long")
    given = _read_exactly(sock, size)
    if expected is not None and not token_matches(given, expected):
        raise AuthRejectedError("wrong token")
    sock.sendall(_ACCEPTED)


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
