"""The wire format of remote terminals: MetaTrader5 values as plain, tagged tuples.

rpyc passes only a few types by value (None, bool, int, float, str, bytes, tuples of those);
anything else would travel as a *netref*, a proxy whose every attribute read is a network round
trip. So every argument and every result is turned into those types, and back:

==================  ===============================================================
value               on the wire
==================  ===============================================================
None/bool/int/...   itself (numpy scalars and int/float/str subclasses such as
                    ``IntEnum`` become the plain type first)
tuple / list        ``("t", items)`` / ``("l", items)``
dict                ``("d", ((key, value), ...))``
datetime            ``("dt", (y, m, d, H, M, S, us), utcoffset seconds or None)``
struct              ``("s", type name, fields)``: ``Tick``, ``SymbolInfo``, ...
numpy array         ``("a", dtype descr, shape, raw bytes)``
==================  ===============================================================

so a call and its result cross in one round trip and are rebuilt locally, struct types and
dtypes included. The decoder accepts only these shapes (a netref or an unknown tag is a
protocol error), never builds object arrays, and limits nesting.

This module is deliberately self-contained (standard library and numpy only, Python 3.7
syntax): the ``mt5linux://`` client sends its source, a constant, to the classic rpyc server
once per connection so the server side of a call speaks the same format (see ``_mt5linux``).
``serve_call`` is the server half shared by that helper and ``aiomt5 serve``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from typing import Any

import numpy as _np

SERVED_FUNCTIONS = frozenset(
    (
        "initialize", "login", "shutdown", "version", "last_error", "terminal_info",
        "account_info", "symbols_total", "symbols_get", "symbol_info", "symbol_info_tick",
        "symbol_select", "market_book_add", "market_book_get", "market_book_release",
        "copy_rates_from", "copy_rates_from_pos", "copy_rates_range", "copy_ticks_from",
        "copy_ticks_range", "orders_total", "orders_get", "positions_total", "positions_get",
        "history_orders_total", "history_orders_get", "history_deals_total",
        "history_deals_get", "order_calc_margin", "order_calc_profit", "order_check",
        "order_send",
    )
)  # fmt: skip
"""The MetaTrader5 functions a remote terminal answers: the C API, without the pure-Python
``Buy``/``Sell``/``Close``/``_RawOrder`` helpers (they are built on ``order_send``)."""

RAISABLE = ("TypeError", "ValueError", "OverflowError", "AttributeError", "RuntimeError")
"""Exception types a remote call may report; anything else arrives as ``RuntimeError``."""

_MAX_DEPTH = 8
_SUCCESS = (1, "Success")
_PLAIN = (type(None), bool, int, float, str, bytes)


class WireError(ValueError):
    """A value cannot be put on the wire, or what arrived is not valid wire data."""


# --------------------------------------------------------------------------- encoding


def encode(value: Any) -> Any:
    """Turn a MetaTrader5 argument or result into plain, tagged tuples (see the module doc).

    Raises:
        WireError: The value has a type remote terminals cannot carry.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, _np.ndarray):
        return _encode_array(value)
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
            return ("s", kind.__name__, tuple([encode(item) for item in value]))
        return ("t", tuple([encode(item) for item in value]))
    if isinstance(value, list):
        return ("l", tuple([encode(item) for item in value]))
    if isinstance(value, Mapping):
        return ("d", tuple([(str(key), encode(item)) for key, item in value.items()]))
    raise WireError(
        f"cannot send a {kind.__name__} to a remote terminal: use int, float, str, bool, "
        "datetime, dict, list or tuple"
    )


def _encode_datetime(value: _dt.datetime) -> Any:
    offset = value.utcoffset()
    seconds = None if offset is None else int(offset.total_seconds())
    fields = (
        value.year, value.month, value.day, value.hour, value.minute, value.second,
        value.microsecond,
    )  # fmt: skip
    return ("dt", fields, seconds)


def _encode_array(array: Any) -> Any:
    dtype = array.dtype
    if dtype.hasobject:
        raise WireError("cannot send an object array to a remote terminal")
    descr = dtype.str if dtype.names is None else _freeze(dtype.descr)
    data = _np.ascontiguousarray(array).tobytes()
    return ("a", descr, tuple(int(n) for n in array.shape), data)


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(descr: Any) -> list[Any]:
    entries = []
    for entry in _seq(descr):
        if type(entry) is not tuple or len(entry) < 2:
            raise WireError("malformed remote array dtype")
        fmt = _thaw(entry[1]) if type(entry[1]) is tuple else entry[1]  # nested fields
        entries.append((entry[0], fmt, *entry[2:]))
    return entries


# --------------------------------------------------------------------------- decoding


def decode(
    wire: Any,
    structs: Mapping[str, Callable[[Any], Any]] | None = None,
    *,
    arrays: bool = False,
    depth: int = 0,
) -> Any:
    """Rebuild a value encoded by ``encode``.

    Args:
        wire: What arrived.
        structs: Struct type name -> constructor; None refuses structs (arguments never have
            them).
        arrays: Whether numpy arrays may appear (results only).
        depth: Current nesting (callers leave it at 0).

    Raises:
        WireError: ``wire`` is not valid wire data.
    """
    kind = type(wire)
    if kind in _PLAIN:
        return wire
    if kind is not tuple or not wire or depth > _MAX_DEPTH:
        raise WireError(f"unexpected {kind.__name__} in remote data")
    tag = wire[0]
    if tag == "t" and len(wire) == 2:
        return tuple(
            [decode(item, structs, arrays=arrays, depth=depth + 1) for item in _seq(wire[1])]
        )
    if tag == "l" and len(wire) == 2:
        return [decode(item, structs, arrays=arrays, depth=depth + 1) for item in _seq(wire[1])]
    if tag == "d" and len(wire) == 2:
        return _decode_dict(wire[1], structs, arrays, depth)
    if tag == "dt" and len(wire) == 3:
        return _decode_datetime(wire[1], wire[2])
    if tag == "s" and len(wire) == 3 and structs is not None:
        return _decode_struct(wire[1], wire[2], structs, arrays, depth)
    if tag == "a" and len(wire) == 4 and arrays:
        return _decode_array(wire[1], wire[2], wire[3])
    raise WireError(f"unknown or misplaced remote value tag {tag!r}")


def _seq(items: Any) -> tuple[Any, ...]:
    if type(items) is not tuple:
        raise WireError("malformed remote sequence")
    return items


def _decode_dict(
    items: Any, structs: Mapping[str, Callable[[Any], Any]] | None, arrays: bool, depth: int
) -> dict[str, Any]:
    result = {}
    for pair in _seq(items):
        if type(pair) is not tuple or len(pair) != 2 or type(pair[0]) is not str:
            raise WireError("malformed remote dict")
        result[pair[0]] = decode(pair[1], structs, arrays=arrays, depth=depth + 1)
    return result


def _decode_datetime(fields: Any, offset: Any) -> _dt.datetime:
    if type(fields) is not tuple or len(fields) != 7 or any(type(f) is not int for f in fields):
        raise WireError("malformed remote datetime")
    if offset is not None and type(offset) is not int:
        raise WireError("malformed remote datetime offset")
    tz = None if offset is None else _dt.timezone(_dt.timedelta(seconds=offset))
    try:
        return _dt.datetime(*fields, tzinfo=tz)
    except (ValueError, OverflowError) as exc:
        raise WireError(f"invalid remote datetime: {exc}") from None


def _decode_struct(
    name: Any,
    fields: Any,
    structs: Mapping[str, Callable[[Any], Any]],
    arrays: bool,
    depth: int,
) -> Any:
    make = structs.get(name) if type(name) is str else None
    if make is None:
        raise WireError(f"unknown remote struct type {name!r}")
    values = [decode(item, structs, arrays=arrays, depth=depth + 1) for item in _seq(fields)]
    try:
        return make(tuple(values))
    except TypeError as exc:
        raise WireError(f"malformed remote {name}: {exc}") from None


def _decode_array(descr: Any, shape: Any, data: Any) -> Any:
    if type(data) is not bytes or type(shape) is not tuple:
        raise WireError("malformed remote array")
    if any(type(n) is not int or n < 0 for n in shape):
        raise WireError("malformed remote array shape")
    try:
        dtype = _np.dtype(descr if type(descr) is str else _thaw(descr))
    except (TypeError, ValueError) as exc:
        raise WireError(f"invalid remote array dtype: {exc}") from None
    if dtype.hasobject:
        # Object arrays from raw bytes would be pointers chosen by the peer.
        raise WireError("remote array with an object dtype refused")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(data):
        raise WireError("remote array size does not match its shape")
    # A copy: MetaTrader5's arrays are writable, frombuffer over bytes is not.
    return _np.frombuffer(data, dtype=dtype, count=count).reshape(shape).copy()


# --------------------------------------------------------------------------- serving


def serve_call(backend: Any, name: Any, args: Any, kwargs: Any) -> tuple[Any, ...]:
    """Run one MetaTrader5 call for a remote client; the server half of every remote backend.

    Args:
        backend: The MetaTrader5 module (or anything shaped like it).
        name: The function, one of ``SERVED_FUNCTIONS``.
        args: The encoded positional arguments (``("t", ...)``).
        kwargs: The encoded keyword arguments (``("d", ...)``).

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
    except WireError as exc:
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
        return ("ok", encode(result), error)
    except WireError as exc:
        return ("raise", "RuntimeError", f"{name} returned {exc}", error)


def _decode_arguments(args: Any, kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    call_args = decode(args)
    call_kwargs = decode(kwargs)
    if type(call_args) is not tuple or type(call_kwargs) is not dict:
        raise WireError("arguments must be a tuple and a dict")
    return call_args, call_kwargs


def _last_error(backend: Any) -> tuple[int, str]:
    code, message = backend.last_error()
    return (int(code), str(message))
