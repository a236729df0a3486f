"""The wire format of remote terminals: MetaTrader5 values as plain, tagged tuples, and frames.

Every argument and every result is turned into a few plain types (None, bool, int, float, str,
tuples of those), and back:

==================  ===============================================================
value               on the wire
==================  ===============================================================
None/bool/int/...   itself (numpy scalars and int/float/str subclasses such as
                    ``IntEnum`` become the plain type first)
tuple / list        ``("t", items)`` / ``("l", items)``
dict                ``("d", ((key, value), ...))``
datetime            ``("dt", (y, m, d, H, M, S, us), utcoffset seconds or None)``
struct              ``("s", type name, fields)``: ``Tick``, ``SymbolInfo``, ...
numpy array         ``("a", dtype descr, shape, data)``: data is the index of an
                    out-of-band buffer in a frame, or raw bytes over rpyc
==================  ===============================================================

so a call and its result cross in one round trip and are rebuilt locally, struct types and
dtypes included. The decoder accepts only these shapes (an unknown tag is a protocol error),
never builds object arrays, and limits nesting.

Frames (``send_frame``/``FrameReader``) carry that as JSON plus the arrays' raw bytes: what
``aiomt5 serve`` speaks, and an mt5linux server once the ``mt5linux://`` client has handed its
connection over. ``serve_call`` is the server half of a call, shared by both.

This module is deliberately self-contained (standard library and numpy only, Python 3.7
syntax): the ``mt5linux://`` client sends its source, a constant, to the classic rpyc server
once per connection so the server side of a call speaks the same format (see ``_mt5linux``).
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import os as _os
import select as _select
import struct as _struct
import time as _time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as _np

from aiomt5._mt5.functions import API_FUNCTIONS, HELPER_FUNCTIONS

SERVED_FUNCTIONS = frozenset(API_FUNCTIONS) - frozenset(HELPER_FUNCTIONS)
"""The MetaTrader5 functions a remote terminal answers: the C API, without the pure-Python
``Buy``/``Sell``/``Close``/``_RawOrder`` helpers (they are built on ``order_send``)."""

BATCH = "*many"
"""First item of a batched request ``[BATCH, name, [[args, kwargs], ...]]`` (``serve_batch``).

Not a function name: a server that predates batches answers it with an ``AttributeError``."""

MAX_BATCH_CALLS = 1000
"""Calls one batched request may hold; a client sends a longer batch in several requests."""

RAISABLE = ("TypeError", "ValueError", "OverflowError", "AttributeError", "RuntimeError")
"""Exception types a remote call may report; anything else arrives as ``RuntimeError``."""

_MAX_DEPTH = 8
_SUCCESS = (1, "Success")
_PLAIN = (type(None), bool, int, float, str, bytes)
_SEQUENCES = (tuple, list)  # rpyc brings tuples, the framed protocol's JSON lists


class WireError(ValueError):
    """A value cannot be put on the wire, or what arrived is not valid wire data."""


# --------------------------------------------------------------------------- encoding


def encode(value: Any, buffers: list[Any] | None = None) -> Any:
    """Turn a MetaTrader5 argument or result into plain, tagged tuples (see the module doc).

    Args:
        value: What to send.
        buffers: When given, arrays' data is appended to it (as contiguous memoryviews, no
            copy) and the array's tag holds its index there instead of the bytes: the framed
            protocol sends those buffers after the message, out of band.

    Raises:
        WireError: The value has a type remote terminals cannot carry.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, _np.ndarray):
        return _encode_array(value, buffers)
    if isinstance(value, _np.generic):
        return encode(value.item())
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)  # IntEnum, numpy-like int subclasses
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, _dt.datetime):
        return _encode_datetime(value)
    if isinstance(value, tuple):
        if hasattr(kind, "n_fields") and hasattr(value, "_asdict"):
            plain = _PLAIN  # a struct's fields mostly are: they skip the call
            fields = [item if type(item) in plain else encode(item, buffers) for item in value]
            return ("s", kind.__name__, tuple(fields))
        return ("t", tuple([encode(item, buffers) for item in value]))
    if isinstance(value, list):
        return ("l", tuple([encode(item, buffers) for item in value]))
    if isinstance(value, Mapping):
        return ("d", tuple([(str(key), encode(item, buffers)) for key, item in value.items()]))
    raise WireError(
        f"cannot send a {kind.__name__} to a remote terminal: use int, float, str, bool, "
        "datetime, dict, list or tuple"
    )


def _encode_datetime(value: _dt.datetime) -> Any:
    offset = value.utcoffset()
    seconds = None if offset is None else int(offset.total_seconds())
    fields = (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )
    return ("dt", fields, seconds)


def _encode_array(array: Any, buffers: list[Any] | None) -> Any:
    dtype = array.dtype
    if dtype.hasobject:
        raise WireError("cannot send an object array to a remote terminal")
    descr = _DESCRS.get(dtype)
    if descr is None:
        descr = dtype.str if dtype.names is None else _freeze(dtype.descr)
        _remember(_DESCRS, dtype, descr)
    shape = tuple(int(n) for n in array.shape)
    if buffers is None:
        return ("a", descr, shape, _np.ascontiguousarray(array).tobytes())
    buffers.append(_np.ascontiguousarray(array).reshape(-1).view(_np.uint8).data)
    return ("a", descr, shape, len(buffers) - 1)


# Building a structured dtype from its description (and back) costs more than sending 100
# bars: both directions are remembered (MetaTrader5 has two array dtypes; the bound is slack).
_DESCRS: dict[Any, Any] = {}
_DTYPES: dict[Any, Any] = {}
_REMEMBERED = 32


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _REMEMBERED:
        cache.clear()
    cache[key] = value


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(descr: Any) -> list[Any]:
    entries = []
    for entry in _seq(descr):
        if type(entry) not in _SEQUENCES or len(entry) < 2:
            raise WireError("malformed remote array dtype")
        fmt = _thaw(entry[1]) if type(entry[1]) in _SEQUENCES else entry[1]  # nested fields
        entries.append((entry[0], fmt, *[_freeze(item) for item in entry[2:]]))
    return entries


# --------------------------------------------------------------------------- decoding


def decode(
    wire: Any,
    structs: Mapping[str, Callable[[Any], Any]] | None = None,
    *,
    arrays: bool = False,
    buffers: list[Any] | None = None,
    depth: int = 0,
) -> Any:
    """Rebuild a value encoded by ``encode``.

    Args:
        wire: What arrived (tuples from rpyc, or the lists of a framed message's JSON).
        structs: Struct type name -> constructor; None refuses structs (arguments never have
            them).
        arrays: Whether numpy arrays may appear (results only).
        buffers: The out-of-band buffers that came with a framed message (``bytearray``s
            or ``FrameReader``'s uint8 arrays, each used by at most one array, which then
            shares its memory).
        depth: Current nesting (callers leave it at 0).

    Raises:
        WireError: ``wire`` is not valid wire data.
    """
    kind = type(wire)
    if kind in _PLAIN:
        return wire
    if kind not in _SEQUENCES or not wire or depth > _MAX_DEPTH:
        raise WireError(f"unexpected {kind.__name__} in remote data")
    tag = wire[0]
    size = len(wire)
    if tag == "t" and size == 2:
        items = _seq(wire[1])
        return tuple(
            [decode(i, structs, arrays=arrays, buffers=buffers, depth=depth + 1) for i in items]
        )
    if tag == "l" and size == 2:
        items = _seq(wire[1])
        return [decode(i, structs, arrays=arrays, buffers=buffers, depth=depth + 1) for i in items]
    if tag == "d" and size == 2:
        return _decode_dict(wire[1], structs, arrays, buffers, depth)
    if tag == "dt" and size == 3:
        return _decode_datetime(wire[1], wire[2])
    if tag == "s" and size == 3 and structs is not None:
        return _decode_struct(wire[1], wire[2], structs, arrays, buffers, depth)
    if tag == "a" and size == 4 and arrays:
        return _decode_array(wire[1], wire[2], _array_data(wire[3], buffers))
    raise WireError(f"unknown or misplaced remote value tag {tag!r}")


def _seq(items: Any) -> Any:
    if type(items) not in _SEQUENCES:
        raise WireError("malformed remote sequence")
    return items


def _decode_dict(
    items: Any,
    structs: Mapping[str, Callable[[Any], Any]] | None,
    arrays: bool,
    buffers: list[Any] | None,
    depth: int,
) -> dict[str, Any]:
    result = {}
    for pair in _seq(items):
        if type(pair) not in _SEQUENCES or len(pair) != 2 or type(pair[0]) is not str:
            raise WireError("malformed remote dict")
        result[pair[0]] = decode(pair[1], structs, arrays=arrays, buffers=buffers, depth=depth + 1)
    return result


def _decode_datetime(fields: Any, offset: Any) -> _dt.datetime:
    if (
        type(fields) not in _SEQUENCES
        or len(fields) != 7
        or any(type(f) is not int for f in fields)
    ):
        raise WireError("malformed remote datetime")
    if offset is not None and type(offset) is not int:
        raise WireError("malformed remote datetime offset")
    try:
        tz = None if offset is None else _dt.timezone(_dt.timedelta(seconds=offset))
        year, month, day, hour, minute, second, microsecond = fields
        return _dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=tz)
    except (ValueError, OverflowError) as exc:
        raise WireError(f"invalid remote datetime: {exc}") from None


def _decode_struct(
    name: Any,
    fields: Any,
    structs: Mapping[str, Callable[[Any], Any]],
    arrays: bool,
    buffers: list[Any] | None,
    depth: int,
) -> Any:
    make = structs.get(name) if type(name) is str else None
    if make is None:
        raise WireError(f"unknown remote struct type {name!r}")
    plain = _PLAIN  # most fields are: they skip the call (a reply's fields are most of its work)
    values = [
        item
        if type(item) in plain
        else decode(item, structs, arrays=arrays, buffers=buffers, depth=depth + 1)
        for item in _seq(fields)
    ]
    try:
        return make(tuple(values))
    except (TypeError, ValueError) as exc:
        raise WireError(f"malformed remote {name}: {exc}") from None


def _array_data(data: Any, buffers: list[Any] | None) -> Any:
    if type(data) is not int:
        return data
    if buffers is None or not 0 <= data < len(buffers) or buffers[data] is None:
        raise WireError("remote array refers to a missing buffer")
    buffer, buffers[data] = buffers[data], None  # one array per buffer: they never share
    return buffer


_ARRAY_DATA = (bytes, bytearray, _np.ndarray)  # ndarray: a FrameReader buffer (uint8)


def _decode_array(descr: Any, shape: Any, data: Any) -> Any:
    if type(data) not in _ARRAY_DATA or type(shape) not in _SEQUENCES:
        raise WireError("malformed remote array")
    if any(type(n) is not int or n < 0 for n in shape):
        raise WireError("malformed remote array shape")
    key = descr if type(descr) is str else repr(descr)  # faithful for lists of str/int
    dtype = _DTYPES.get(key)
    if dtype is None:
        try:
            dtype = _np.dtype(descr if type(descr) is str else _thaw(descr))
        except WireError:
            raise
        except Exception as exc:  # noqa: BLE001  # numpy raises several types for nonsense
            raise WireError(f"invalid remote array dtype: {exc}") from None
        _remember(_DTYPES, key, dtype)
    if dtype.hasobject:
        # Object arrays from raw bytes would be pointers chosen by the peer.
        raise WireError("remote array with an object dtype refused")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(data):
        raise WireError("remote array size does not match its shape")
    array = _np.frombuffer(data, dtype=dtype, count=count).reshape(tuple(shape))
    # MetaTrader5's arrays are writable: a received buffer's memory is (and is ours alone);
    # bytes' is not, so those are copied.
    return array.copy() if type(data) is bytes else array


# --------------------------------------------------------------------------- serving


def serve_call(
    backend: Any, name: Any, args: Any, kwargs: Any, buffers: list[Any] | None = None
) -> tuple[Any, ...]:
    """Run one MetaTrader5 call for a remote client; the server half of every remote backend.

    Args:
        backend: The MetaTrader5 module (or anything shaped like it).
        name: The function, one of ``SERVED_FUNCTIONS``.
        args: The encoded positional arguments (``("t", ...)``).
        kwargs: The encoded keyword arguments (``("d", ...)``).
        buffers: Where arrays in the result put their data (see ``encode``); None sends them
            inline as bytes.

    Returns:
        ``("ok", encoded result, last_error)`` or ``("raise", type name, message, last_error)``,
        plain tuples that cross the wire by value. ``last_error`` is read right after the call so
        the client never needs a second round trip for it.
    """
    if type(name) is not str or name not in SERVED_FUNCTIONS:
        message = f"{name!r} is not a MetaTrader5 API function"
        return ("raise", "AttributeError", message, _SUCCESS)
    try:
        call_args, call_kwargs = _decode_arguments(args, kwargs)
    except (WireError, RecursionError) as exc:
        return ("raise", "TypeError", str(exc), _SUCCESS)
    function = getattr(backend, name)
    try:
        result = function(*call_args, **call_kwargs)
    except Exception as exc:  # noqa: BLE001  # the client re-raises it; the server keeps serving
        kind = type(exc).__name__
        if kind not in RAISABLE:
            kind = "RuntimeError"
        return ("raise", kind, str(exc), _last_error(backend))
    error = _last_error(backend)
    try:
        return ("ok", encode(result, buffers), error)
    except WireError as exc:
        if buffers:
            del buffers[:]
        return ("raise", "RuntimeError", f"{name} returned {exc}", error)


def serve_batch(
    backend: Any,
    lock: Any,
    name: Any,
    calls: Any,
    buffers: list[Any],
    too_large: Any = None,
) -> tuple[Any, ...]:
    """Run a batch of calls of ``name`` back to back, under ``lock``, for one reply.

    Args:
        backend: As for ``serve_call``.
        lock: Held for the whole batch (the calls run back to back).
        name: The function, one of ``SERVED_FUNCTIONS``.
        calls: ``[[args, kwargs], ...]``, encoded as for ``serve_call``; 1 to
            ``MAX_BATCH_CALLS`` of them.
        buffers: Where the results' arrays put their data (shared by all the replies).
        too_large: ``too_large(size)`` as for ``serve_frames``: the batch stops before a reply
            whose arrays would make it too large.

    Returns:
        ``("many", [serve_call reply, ...])``, one reply per call, in order. It may answer only
        the first calls (at least one) when their arrays reach ``MAX_REPLY_BUFFERS`` or
        ``too_large``: the client asks again for the rest. A malformed batch gets one
        ``serve_call``-style ``"raise"`` reply instead, which stands for every call.
    """
    if type(calls) not in _SEQUENCES or not 0 < len(calls) <= MAX_BATCH_CALLS:
        message = f"a batch is a list of 1 to {MAX_BATCH_CALLS} [args, kwargs] pairs"
        return ("raise", "ValueError", message, _SUCCESS)
    replies = []
    size = 0
    with lock:
        for call in calls:
            if type(call) not in _SEQUENCES or len(call) != 2:
                replies.append(("raise", "TypeError", "a batched call is [args, kwargs]", _SUCCESS))
                continue
            mark = len(buffers)
            reply = serve_call(backend, name, call[0], call[1], buffers)
            size += sum(buffer.nbytes for buffer in buffers[mark:])
            if replies and (
                len(buffers) > MAX_REPLY_BUFFERS
                or (too_large is not None and too_large(size) is not None)
            ):
                del buffers[mark:]  # a read: it is asked for again in the next request
                break
            replies.append(reply)
    return ("many", replies)


def _decode_arguments(args: Any, kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    call_args = decode(args)
    call_kwargs = decode(kwargs)
    if type(call_args) is not tuple or type(call_kwargs) is not dict:
        raise WireError("arguments must be a tuple and a dict")
    return call_args, call_kwargs


def _last_error(backend: Any) -> tuple[int, str]:
    code, message = backend.last_error()
    return (int(code), str(message))


# --------------------------------------------------------------------------- framing

PROTOCOL = 3
"""Version of the framed protocol below, checked in the ``aiomt5 serve`` handshake."""

MAX_REQUEST_BYTES = 1 << 20
"""A request is a function name and a few values: a bigger one is not a request."""
MAX_REPLY_BYTES = 1 << 30
"""Largest reply (message and buffers together) a client accepts unless told otherwise."""
MAX_REPLY_BUFFERS = 64

BUSY_POLL = 100e-6
"""Seconds a reader checks for data before it sleeps in ``recv``.

A thread woken from ``recv`` costs 20-25 us on an idle virtual machine (its CPU dozed), once
on each side of a round trip: about 60 us of a 70 us loopback ping-pong. Checking for the
reply (or, on a server, the next request) for a moment first costs that much CPU at most and
brings the round trip down to about 10 us when the peer is quick, as in a loop of calls. A
reader checks only while data keeps coming that quickly (see ``FrameReader``), and yields the
CPU between checks: on a machine with fewer free cores than busy threads (a worker, an event
loop and a child process on 2 cores), a poller that kept its core could be keeping the very
peer it waits for off it, and a round trip took 200-300 us instead of 40.
"""

_QUICK = 10  # a wait up to this many busy_polls long: the next one may well be caught

_HEADER = _struct.Struct("!IH")  # message bytes, buffer count; then "!Q" per buffer
_RECV_SIZE = 65536
_MAX_RECV = 1 << 20  # recv(n) allocates n bytes before any arrive: never ask for more at once
_COALESCE = 65536  # buffers up to this size are copied into the message's write


def dump_message(message: Any) -> bytes:
    """``message`` (wire data) as the JSON bytes of a frame.

    Raises:
        WireError: ``message`` holds something JSON cannot carry (bytes...).
    """
    try:
        return _json.dumps(message, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise WireError(f"cannot send this to a remote terminal: {exc}") from None


def pack_frame(message: Any) -> bytes:
    """A frame without buffers as bytes: several requests can then go in one write.

    Raises:
        WireError: ``message`` holds something JSON cannot carry.
    """
    data = dump_message(message)
    return _HEADER.pack(len(data), 0) + data


def send_frame(sock: Any, message: Any, buffers: Any = (), deadline: Any = None) -> None:
    """Send one frame: header, buffer sizes, ``message`` as JSON, then the raw ``buffers``.

    ``message`` is wire data (``encode``'s output, or ``dump_message``'s bytes); tuples travel
    as JSON arrays. Buffers (see ``encode(value, buffers)``) are written from their memory,
    never copied into the message. ``deadline`` (a ``time.monotonic()`` instant) bounds the
    whole frame, however slowly the peer reads.

    Raises:
        WireError: ``message`` holds something JSON cannot carry (bytes...); nothing was sent.
        OSError: The connection failed (``TimeoutError``: the deadline passed).
    """
    data = message if type(message) is bytes else dump_message(message)
    sizes = [buffer.nbytes for buffer in buffers]
    head = _HEADER.pack(len(data), len(sizes)) + _struct.pack(f"!{len(sizes)}Q", *sizes)
    if sum(sizes) <= _COALESCE:  # one write: each one costs a wake-up on the other side
        _sendall(sock, b"".join([head, data, *buffers]), deadline)
        return
    _sendall(sock, head + data, deadline)
    for buffer in buffers:
        _sendall(sock, buffer, deadline)


def _sendall(sock: Any, data: Any, deadline: Any) -> None:
    if deadline is not None:
        sock.settimeout(time_left(deadline))  # sendall's timeout bounds the whole call
    sock.sendall(data)


def time_left(deadline: float) -> float:
    """Seconds until ``deadline`` (``time.monotonic()``); ``TimeoutError`` once it passed."""
    left = deadline - _time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


class FrameReader:
    """Reads ``send_frame``'s frames from one socket, for as long as the connection lasts.

    Small reads are buffered (a reply usually arrives in one ``recv``); a big buffer is
    received straight into its own uint8 array (allocated, not zeroed), which the decoded
    array then uses as is. With ``busy_poll`` (seconds) it checks for data that long before
    sleeping in ``recv`` (see ``BUSY_POLL``), as long as the last wait was not much longer
    than that (a peer that answers in a millisecond or more is not worth the CPU).
    ``first_buffer`` bounds the memory taken for a buffer before its data arrives (it then
    doubles as the data comes): a peer announcing gigabytes and sending nothing gets that
    much at most. A trusted peer (our own child process) gets its announced size at once.
    """

    def __init__(self, sock: Any, busy_poll: float = 0.0, first_buffer: int = 8 << 20) -> None:
        self._sock = sock
        self._first_buffer = first_buffer
        self._pending = bytearray()
        self._busy_poll = busy_poll
        self._readable = _readable_probe(sock) if busy_poll > 0 else None
        self._quick = True  # the last wait for data was within busy_poll: worth checking
        self._deadline: Any = None

    def read(self, max_bytes: int, max_buffers: int, deadline: Any = None) -> tuple[Any, list[Any]]:
        """The next frame's message (JSON arrays as lists) and its buffers.

        ``max_bytes`` bounds the whole frame (message and buffers); memory is taken as the
        data arrives, never on the header's word. ``deadline`` (a ``time.monotonic()``
        instant, or None) bounds the whole frame however slowly it trickles in.

        Raises:
            WireError: The frame is malformed or bigger than ``max_bytes``/``max_buffers``:
                the stream cannot be trusted any more, drop the connection.
            EOFError: The peer closed the connection.
            OSError: The connection failed (``TimeoutError``: not all of it in time).
        """
        self._deadline = deadline
        size, count = _HEADER.unpack(self._read(_HEADER.size))
        if size > max_bytes or count > max_buffers:
            raise WireError(
                f"remote frame too big ({size} bytes, {count} buffers; the limit is "
                f"{max_bytes} bytes, {max_buffers} buffers)"
            )
        lengths = _struct.unpack(f"!{count}Q", self._read(count * 8)) if count else ()
        total = size + sum(lengths)
        if total > max_bytes:
            raise WireError(f"remote frame too big ({total} bytes; the limit is {max_bytes})")
        try:
            message = _json.loads(self._read(size))
        except (ValueError, RecursionError) as exc:
            raise WireError(f"malformed remote message: {exc}") from None
        return message, [self._read_buffer(length) for length in lengths]

    def _recv_timeout(self) -> None:
        if self._deadline is not None:
            self._sock.settimeout(time_left(self._deadline))

    def _read(self, size: int) -> bytes:
        pending = self._pending
        while len(pending) < size:
            want = min(max(size - len(pending), _RECV_SIZE), _MAX_RECV)
            self._recv_timeout()
            if self._readable is None:
                chunk = self._sock.recv(want)
            else:
                chunk = self._wait_and_recv(self._readable, want)
            if not chunk:
                raise EOFError("connection closed by peer")
            pending += chunk
        data = bytes(pending[:size])
        del pending[:size]
        return data

    def _wait_and_recv(self, readable: Callable[[], bool], size: int) -> bytes:
        # Check for data for busy_poll seconds before sleeping in recv, but only while data
        # comes about that quickly: when the peer is slow (a bot between calls, a loaded
        # machine) checking would only burn the CPU the peer may need.
        start = _time.perf_counter()
        if self._quick and not self._tls_pending():
            deadline = start + self._busy_poll
            while not readable() and _time.perf_counter() < deadline:
                _yield_cpu()
        chunk: bytes = self._sock.recv(size)
        self._quick = _time.perf_counter() - start <= _QUICK * self._busy_poll
        return chunk

    def _tls_pending(self) -> bool:
        # TLS may hold decrypted bytes the socket no longer shows: recv returns them at once.
        pending = getattr(self._sock, "pending", None)
        return pending is not None and bool(pending())

    def _read_buffer(self, size: int) -> Any:
        # Received straight into the array's memory, which grows (doubling) as data arrives
        # past first_buffer. np.empty, not bytearray: nothing is zeroed (60 MB of ticks would
        # cost 30 ms of memset), and its pages are only taken as the data lands in them.
        pending = self._pending
        have = min(len(pending), size)
        buffer = _np.empty(min(size, max(have, self._first_buffer)), _np.uint8)
        buffer[:have] = _np.frombuffer(pending, _np.uint8, have)
        del pending[:have]
        while have < size:
            if have == len(buffer):  # full: twice as big, what arrived copied once
                buffer, old = _np.empty(min(size, 2 * len(buffer)), _np.uint8), buffer
                buffer[:have] = old
                del old
            with buffer.data as view:
                while have < len(buffer):
                    self._recv_timeout()
                    received = self._sock.recv_into(view[have:], len(buffer) - have)
                    if not received:
                        raise EOFError("connection closed by peer")
                    have += received
        return buffer


# Polling must not keep the peer off the CPU when both share one: it may be the one we poll for.
_yield_cpu = getattr(_os, "sched_yield", None) or (lambda: _time.sleep(0))


def _readable_probe(sock: Any) -> Callable[[], bool]:
    """A check, without waiting, whether ``sock`` has data (or news: closed, failed)."""
    if hasattr(_select, "poll"):
        poller = _select.poll()
        poller.register(sock, _select.POLLIN)
        return lambda: bool(poller.poll(0))
    return lambda: bool(_select.select([sock], [], [], 0)[0])  # Windows: no poll()


def serve_frames(
    sock: Any,
    backend: Any,
    lock: Any,
    busy_poll: float = BUSY_POLL,
    idle_timeout: Any = None,
    send_timeout: Any = None,
    too_large: Any = None,
) -> None:
    """Answer framed requests ``[name, args, kwargs]`` on ``sock`` until the peer leaves.

    A request ``[BATCH, name, calls]`` is a batch of calls, answered in one reply
    (``serve_batch``).

    The server loop of ``aiomt5 serve``; ``lock`` serializes calls from all connections (the
    terminal has one pipe anyway). Each reply is ``serve_call``'s tuple with arrays out of
    band. Between requests it checks for the next one for ``busy_poll`` seconds before
    sleeping (see ``BUSY_POLL``). Returns when the peer closes the connection.

    Args:
        idle_timeout: Seconds a request (all of it) may take to arrive (None: no limit).
        send_timeout: Seconds a reply may take to be sent: a peer that stops reading is
            dropped (None: no limit).
        too_large: ``too_large(size)`` gives the reply to send instead of one of ``size``
            bytes, or None to send it (None: no limit).

    Raises:
        WireError: The peer sent something that is not a request: drop it.
        OSError: The connection failed (``TimeoutError``: idle, or not reading).
    """
    reader = FrameReader(sock, busy_poll)
    while True:
        idle = None if idle_timeout is None else _time.monotonic() + idle_timeout
        if idle is None:
            sock.settimeout(None)
        try:
            request, _ = reader.read(MAX_REQUEST_BYTES, 0, idle)
        except EOFError:
            return
        if type(request) is not list or len(request) != 3:
            raise WireError("a request is [name, args, kwargs]")
        buffers: list[Any] = []
        if request[0] == BATCH:
            reply = serve_batch(backend, lock, request[1], request[2], buffers, too_large)
        else:
            with lock:
                reply = serve_call(backend, request[0], request[1], request[2], buffers)
        data = dump_message(reply)
        if too_large is not None:
            refusal = too_large(len(data) + sum(buffer.nbytes for buffer in buffers))
            if refusal is not None:
                data, buffers = dump_message(refusal), []
        sent = None if send_timeout is None else _time.monotonic() + send_timeout
        send_frame(sock, data, buffers, sent)
        del data, buffers  # a slow client's next wait must not hold its last reply
