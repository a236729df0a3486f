"""``RemoteTerminal``: a MetaTrader5-shaped object whose calls run on a remote terminal.

The connector's worker calls it exactly as it calls the ``MetaTrader5`` module: same
functions, same constants, same struct types and dtypes, and the same failure convention. A
broken link is therefore not an exception but what the real package reports when its pipe to
the terminal breaks: the function's failure value (``None``, ``False``...) with
``last_error()`` at ``-10004`` (no connection), ``-10002`` (the request went out, no reply:
it may have run), ``-10001`` (it could not be sent) or aiomt5's ``REMOTE_PROTOCOL`` (the reply
was garbage or over the client's limit: it may have run too). Like the real pipe, the link is only
reopened by ``initialize()``, which the connector's supervisor calls when it reconnects.

``last_error()`` needs no round trip: every reply carries the server's ``last_error()`` read
right after the call.

The transport (``aiomt5 serve`` or an mt5linux server) is a small object with ``open``,
``call`` and ``close``; see ``_aiomt5`` and ``_mt5linux``.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from aiomt5._core._errors import REMOTE_PROTOCOL
from aiomt5._mt5.constants import CONSTANTS
from aiomt5._mt5.structs import STRUCT_TYPES

from ._wire import (
    BATCH,
    BUSY_POLL,
    MAX_BATCH_CALLS,
    MAX_REPLY_BUFFERS,
    MAX_REPLY_BYTES,
    RAISABLE,
    SERVED_FUNCTIONS,
    FrameReader,
    WireError,
    decode,
    encode,
    pack_frame,
    send_frame,
    time_left,
)

__all__ = [
    "FAILURE_VALUES",
    "NO_CONNECTION",
    "FramedLink",
    "LinkError",
    "RemoteTerminal",
    "Transport",
    "link_error",
    "tcp_connect",
]

NO_CONNECTION: Final = (-10004, "No IPC connection")
# Answered locally or managing the link: never batched.
_UNBATCHED: Final = frozenset({"initialize", "shutdown", "last_error"})
_SUCCESS: Final = (1, "Success")

FAILURE_VALUES: Final[Mapping[str, Any]] = {
    "initialize": False,
    "login": False,
    "symbol_select": False,
    "market_book_add": False,
    "market_book_release": False,
    "version": (0, 0, ""),
}
"""What a function returns when the terminal cannot be reached (None for the others)."""

_EXCEPTIONS: Final[dict[str, type[Exception]]] = {
    "TypeError": TypeError,
    "ValueError": ValueError,
    "OverflowError": OverflowError,
    "AttributeError": AttributeError,
    "RuntimeError": RuntimeError,
}
assert set(_EXCEPTIONS) == set(RAISABLE)


class LinkError(ConnectionError):
    """The link to the remote terminal failed; ``code``/``text`` are what ``last_error()`` says.

    Raised by transports, turned into a MetaTrader5-style failure by ``RemoteTerminal``.
    """

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def link_error(url: str, exc: BaseException, *, timed_out: bool = False) -> LinkError:
    """The ``last_error()`` of a call whose reply never came: it may have run."""
    if timed_out or isinstance(exc, TimeoutError):
        return LinkError(-10002, f"IPC recv failed: no reply from {url} in time")
    return LinkError(-10002, f"IPC recv failed: link to {url} broke ({type(exc).__name__})")


def protocol_error(url: str, problem: str) -> LinkError:
    """The ``last_error()`` of a reply that broke the protocol (the call may have run)."""
    return LinkError(REMOTE_PROTOCOL, f"invalid reply from {url}: {problem}")


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


class FramedLink:
    """A connected socket speaking the framed protocol (``_wire.send_frame``/``FrameReader``).

    What ``aiomt5 serve`` speaks after its handshake, and an mt5linux server after the
    ``mt5linux://`` transport hands its connection over.

    Args:
        sock: The connected socket.
        url: How errors name the server.
        request_timeout: Seconds for a whole call, request out and reply in, however slowly
            the server trickles it (None: no limit).
        max_reply_bytes: Largest reply accepted; a bigger one drops the link before its
            memory is taken.
        trusted: The peer is our own child process: a big array's memory is taken at once
            for its announced size (a server could announce gigabytes and send nothing, so
            its arrays' memory is only taken as their data arrives).
    """

    def __init__(
        self,
        sock: socket.socket,
        url: str,
        request_timeout: float | None = None,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        *,
        trusted: bool = False,
    ) -> None:
        self._sock = sock
        if trusted:
            self._reader = FrameReader(sock, BUSY_POLL, first_buffer=max_reply_bytes)
        else:
            self._reader = FrameReader(sock, BUSY_POLL)
        self._url = url
        self._timeout = request_timeout
        self._max_reply_bytes = max_reply_bytes
        sock.settimeout(request_timeout)

    def call(self, name: str, args: Any, kwargs: Any) -> tuple[Any, list[Any]]:
        """One request, one reply (JSON arrays as lists) with its buffers.

        Raises:
            LinkError: -10001 the request could not be sent, -10002 the reply did not come in
                time, ``REMOTE_PROTOCOL`` it was garbage or too big (the request may have run).
            WireError: An argument JSON cannot carry; nothing was sent.
        """
        deadline = self._deadline()
        self._send(lambda: send_frame(self._sock, (name, args, kwargs), (), deadline))
        return self._receive(deadline)

    def send(self, requests: Sequence[tuple[str, Any, Any]]) -> None:
        """Send ``(name, args, kwargs)`` requests in one write, without waiting for replies.

        Their replies come back in order (``receive``).

        Raises:
            LinkError: -10001 they could not be sent, -10002 not in time.
            WireError: One holds something JSON cannot carry; nothing was sent.
        """
        data = b"".join(pack_frame(request) for request in requests)
        deadline = self._deadline()

        def write() -> None:
            if deadline is not None:
                self._sock.settimeout(time_left(deadline))
            self._sock.sendall(data)

        self._send(write)

    def receive(self) -> tuple[Any, list[Any]]:
        """The reply to the oldest request sent and not yet answered."""
        return self._receive(self._deadline())

    def _deadline(self) -> float | None:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _send(self, write: Callable[[], None]) -> None:
        try:
            write()
        except TimeoutError as exc:
            raise link_error(self._url, exc) from None  # part of it may have gone out
        except OSError as exc:
            raise LinkError(-10001, f"IPC send failed: link to {self._url} broke: {exc}") from None

    def _receive(self, deadline: float | None) -> tuple[Any, list[Any]]:
        try:
            return self._reader.read(self._max_reply_bytes, MAX_REPLY_BUFFERS, deadline)
        except (OSError, EOFError) as exc:
            raise link_error(self._url, exc) from None
        except WireError as exc:
            raise protocol_error(self._url, str(exc)) from None

    def close(self) -> None:
        """Shut the connection down (idempotent)."""
        with contextlib.suppress(OSError):  # already broken: nothing to tell it
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class Transport(Protocol):
    """One link to a remote terminal (not thread-safe; ``RemoteTerminal`` serializes it)."""

    @property
    def is_open(self) -> bool:
        """Whether ``call`` can be tried."""

    def open(self) -> None:
        """Connect (and authenticate). Raises ``LinkError``."""

    def call(self, name: str, args: Any, kwargs: Any) -> tuple[Any, list[Any] | None]:
        """Send one encoded call; return the raw reply and its out-of-band buffers (if any).

        Raises ``LinkError`` when the link fails, ``WireError`` when an argument cannot be
        sent (before anything is sent).
        """

    def close(self) -> None:
        """Drop the link (idempotent)."""


class RemoteTerminal:
    """Every MetaTrader5 function, constant and struct type, answered by a remote terminal.

    Args:
        transport: The link (``aiomt5 serve`` or mt5linux).
        description: How logs and ``repr`` name it, e.g. ``"aiomt5://127.0.0.1:18813"``.
    """

    def __init__(self, transport: Transport, description: str) -> None:
        self._transport = transport
        self._description = description
        self._last_error: tuple[int, str] = _SUCCESS
        self._lock = threading.Lock()
        self._batches = True  # until a server says it does not know them
        self.__dict__.update(CONSTANTS)
        self.__dict__.update(STRUCT_TYPES)
        for name in SERVED_FUNCTIONS - {"initialize", "shutdown", "last_error"}:
            self.__dict__[name] = functools.partial(self._call, name)
        self.__version__ = "5.0.6231"

    def __getattr__(self, name: str) -> Any:
        # Only reached for names __init__ did not set: typed access for mypy, and a clear error.
        raise AttributeError(f"remote MetaTrader5 terminal has no attribute {name!r}")

    # ------------------------------------------------------------------ the special three

    def initialize(self, *args: Any, **kwargs: Any) -> bool:
        """(Re)open the link if needed, then ``initialize`` the remote terminal."""
        with self._lock:
            if not self._transport.is_open:
                try:
                    self._transport.open()
                except LinkError as exc:
                    self._last_error = (exc.code, exc.text)
                    return False
            return bool(self._send("initialize", args, kwargs))

    def shutdown(self, *args: Any, **kwargs: Any) -> bool:
        """``shutdown`` the remote terminal's connection and drop the link; always True."""
        if args or kwargs:
            raise TypeError("shutdown() takes no arguments")
        with self._lock:
            if self._transport.is_open:
                self._send("shutdown", (), {})
                self._transport.close()
            self._last_error = _SUCCESS
        return True

    def last_error(self, *args: Any, **kwargs: Any) -> tuple[int, str]:
        """The last error, as the server read it after the last call (no round trip)."""
        if args or kwargs:
            raise TypeError("last_error() takes no arguments")
        return self._last_error

    # ------------------------------------------------------------------ every other function

    def _call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if not self._transport.is_open:
                self._last_error = NO_CONNECTION
                return FAILURE_VALUES.get(name)
            return self._send(name, args, kwargs)

    def _send(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            reply, buffers = self._transport.call(name, encode(args), encode(kwargs))
            status, result, error = _parse_reply(reply, buffers)
        except WireError as exc:  # an argument the wire cannot carry: nothing was sent
            raise TypeError(f"{name}(): {exc}") from None
        except LinkError as exc:
            self._transport.close()
            self._last_error = (exc.code, exc.text)
            return FAILURE_VALUES.get(name)
        self._last_error = error
        if status == "raise":
            raise _EXCEPTIONS[result[0]](result[1])
        return result

    def call_many(
        self, name: str, calls: Sequence[tuple[tuple[Any, ...], Mapping[str, Any] | None]]
    ) -> list[Callable[[], Any]] | None:
        """Make ``calls`` of ``name`` in one round trip (one per ``MAX_BATCH_CALLS`` calls).

        The server runs them back to back (``_wire.serve_batch``). Returns one step per call,
        in order, to run in order on the caller's thread: each sets ``last_error()`` to what the
        server read after that call, then returns the call's result (or raises its exception),
        exactly as calling ``name`` would have. A link failure fails every call not answered
        yet the way a single call would (the failure value and ``-10002``...). Returns None
        when the calls must be made one by one instead: ``name`` is not batched, an argument
        cannot be sent, or the server predates batches.
        """
        if not self._batches or name not in SERVED_FUNCTIONS or name in _UNBATCHED:
            return None
        try:
            encoded = [(encode(args), encode(dict(kwargs or {}))) for args, kwargs in calls]
        except WireError:
            return None  # each call reports its own argument
        steps: list[Callable[[], Any]] = []
        with self._lock:
            while len(steps) < len(encoded):
                if not self._transport.is_open:
                    failure = self._step("ok", FAILURE_VALUES.get(name), NO_CONNECTION)
                    steps.extend([failure] * (len(encoded) - len(steps)))
                    break
                chunk = encoded[len(steps) : len(steps) + MAX_BATCH_CALLS]
                try:
                    reply, buffers = self._transport.call(BATCH, name, chunk)
                    answers = _parse_batch(reply, buffers, len(chunk))
                    if answers is None:  # one reply standing for the whole request
                        status, result, error = _parse_reply(reply, buffers)
                        if status == "raise" and result[0] == "AttributeError" and not steps:
                            self._batches = False  # a server without batches: one by one
                            return None
                        answers = [(status, result, error)] * len(chunk)
                except WireError as exc:  # JSON cannot carry it: nothing was sent
                    failure = self._step(
                        "raise", ("TypeError", f"{name}(): {exc}"), self._last_error
                    )
                    steps.extend([failure] * (len(encoded) - len(steps)))
                    break
                except LinkError as exc:
                    self._transport.close()
                    self._last_error = (exc.code, exc.text)
                    failure = self._step("ok", FAILURE_VALUES.get(name), self._last_error)
                    steps.extend([failure] * (len(encoded) - len(steps)))
                    break
                steps.extend(self._step(*answer) for answer in answers)
                self._last_error = answers[-1][2]
        return steps

    def _step(self, status: str, result: Any, error: tuple[int, str]) -> Callable[[], Any]:
        """One call of a batch, replayed: it sets ``last_error``, then returns or raises."""

        def step() -> Any:
            self._last_error = error
            if status == "raise":
                raise _EXCEPTIONS[result[0]](result[1])
            return result

        return step

    def __repr__(self) -> str:
        state = "open" if self._transport.is_open else "closed"
        return f"<RemoteTerminal {self._description} {state}>"


def _parse_batch(
    reply: Any, buffers: list[Any] | None, sent: int
) -> list[tuple[str, Any, tuple[int, str]]] | None:
    """The answers of a ``serve_batch`` reply (None: one ``serve_call`` reply for them all).

    Raises:
        LinkError: ``REMOTE_PROTOCOL``, the reply is malformed (or answers more calls than sent).
    """
    if type(reply) not in (tuple, list) or not reply or reply[0] != "many":
        return None
    if len(reply) != 2 or type(reply[1]) not in (tuple, list) or not 0 < len(reply[1]) <= sent:
        raise protocol_error("the server", "malformed batch reply")
    return [_parse_reply(answer, buffers) for answer in reply[1]]


def _parse_reply(reply: Any, buffers: list[Any] | None) -> tuple[str, Any, tuple[int, str]]:
    """Check and decode a ``serve_call`` reply; malformed replies are link errors."""
    try:
        return _decode_reply(reply, buffers)
    except Exception as exc:  # noqa: BLE001  # whatever a hostile reply trips over is its fault
        raise protocol_error("the server", f"{type(exc).__name__}: {exc}") from None


def _decode_reply(reply: Any, buffers: list[Any] | None) -> tuple[str, Any, tuple[int, str]]:
    # Tuples from rpyc, lists from the framed protocol's JSON.
    if type(reply) not in (tuple, list) or len(reply) not in (3, 4):
        raise WireError("malformed reply")
    code_text = reply[-1]
    if type(code_text) not in (tuple, list) or len(code_text) != 2:
        raise WireError("malformed last_error in reply")
    error = (code_text[0], code_text[1])
    if type(error[0]) is not int or type(error[1]) is not str:
        raise WireError("malformed last_error in reply")
    if reply[0] == "ok" and len(reply) == 3:
        return "ok", decode(reply[1], STRUCT_TYPES, arrays=True, buffers=buffers), error
    kind = reply[1]
    if reply[0] == "raise" and len(reply) == 4 and type(kind) is str and kind in _EXCEPTIONS:
        return "raise", (kind, str(reply[2])), error
    raise WireError("malformed reply")
