"""Trading values: the typed request, immutable results, MT5's trade constants and client tags.

Everything here is plain data with no I/O: ``TradeRequest`` checks and normalises what a user
asks for (ints become floats where MetaTrader5 only takes floats), the result classes are frozen
snapshots built from MetaTrader5's structs (times as aware UTC datetimes), and the tag functions
make and recognise the exactly-once client tags that ride in an order's ``comment``.

**Client tags.** A tag is ``~`` followed by 12 characters of lowercase Crockford base32: 60 random
bits, 13 characters. It is put *first* in the comment, so a broker that truncates comments cuts
the user's text, not the tag; a user comment gets the rest, after one space: at most
``MAX_USER_COMMENT`` (15) characters. A longer user comment is refused with
``MT5InvalidArgumentError`` rather than silently cut, because comments are often used as keys by
the user's own bookkeeping.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Final, Self

from aiomt5._core._errors import MT5InvalidArgumentError
from aiomt5._mt5.constants import (  # re-exported for the trader (see __all__)
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    ORDER_STATE_CANCELED,
    ORDER_STATE_EXPIRED,
    ORDER_STATE_FILLED,
    ORDER_STATE_PARTIAL,
    ORDER_STATE_REJECTED,
    ORDER_TIME_GTC,
    ORDER_TIME_SPECIFIED,
    ORDER_TYPE_BUY,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_SELL,
    ORDER_TYPE_SELL_STOP_LIMIT,
    SYMBOL_TRADE_EXECUTION_INSTANT,
    SYMBOL_TRADE_EXECUTION_REQUEST,
    TRADE_ACTION_CLOSE_BY,
    TRADE_ACTION_DEAL,
    TRADE_ACTION_MODIFY,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_REMOVE,
    TRADE_ACTION_SLTP,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_DONE_PARTIAL,
    TRADE_RETCODE_INVALID_ORDER,
    TRADE_RETCODE_MARKET_CLOSED,
    TRADE_RETCODE_PLACED,
    TRADE_RETCODE_POSITION_CLOSED,
    TRADE_RETCODE_REJECT,
    TRADE_RETCODE_REQUOTE,
)
from aiomt5._mt5.enums import (
    DealEntry,
    DealReason,
    DealType,
    OrderFilling,
    OrderReason,
    OrderState,
    OrderTime,
    OrderType,
    PositionReason,
    PositionType,
    TradeAction,
    TradeRetcode,
    enum_or_int,
)

__all__ = [
    "ACTIONS",
    "COMMENT_MAX",
    "MAX_USER_COMMENT",
    "ORDER_FILLING_FOK",
    "ORDER_FILLING_IOC",
    "ORDER_FILLING_RETURN",
    "ORDER_STATE_CANCELED",
    "ORDER_STATE_EXPIRED",
    "ORDER_STATE_FILLED",
    "ORDER_STATE_PARTIAL",
    "ORDER_STATE_REJECTED",
    "ORDER_TIME_GTC",
    "ORDER_TIME_SPECIFIED",
    "ORDER_TYPE_BUY",
    "ORDER_TYPE_BUY_LIMIT",
    "ORDER_TYPE_SELL",
    "ORDER_TYPE_SELL_STOP_LIMIT",
    "PENDING_TYPES",
    "SUCCESS_RETCODES",
    "SYMBOL_EXECUTION_INSTANT",
    "SYMBOL_EXECUTION_REQUEST",
    "TRADE_ACTION_CLOSE_BY",
    "TRADE_ACTION_DEAL",
    "TRADE_ACTION_MODIFY",
    "TRADE_ACTION_PENDING",
    "TRADE_ACTION_REMOVE",
    "TRADE_ACTION_SLTP",
    "TRADE_RETCODE_DONE",
    "TRADE_RETCODE_DONE_PARTIAL",
    "TRADE_RETCODE_INVALID_ORDER",
    "TRADE_RETCODE_MARKET_CLOSED",
    "TRADE_RETCODE_PLACED",
    "TRADE_RETCODE_POSITION_CLOSED",
    "TRADE_RETCODE_REJECT",
    "TRADE_RETCODE_REQUOTE",
    "Deal",
    "Order",
    "OrderCheck",
    "OrderResult",
    "Position",
    "TradeRequest",
    "find_tag",
    "new_tag",
    "retcode_name",
    "tag_from_key",
    "tagged_comment",
]

# --------------------------------------------------------------------------- MT5 constants
SYMBOL_EXECUTION_INSTANT: Final = SYMBOL_TRADE_EXECUTION_INSTANT
SYMBOL_EXECUTION_REQUEST: Final = SYMBOL_TRADE_EXECUTION_REQUEST
ACTIONS: Final = frozenset(TradeAction)
PENDING_TYPES: Final = frozenset(range(ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_STOP_LIMIT + 1))
SUCCESS_RETCODES: Final = frozenset(
    {TRADE_RETCODE_PLACED, TRADE_RETCODE_DONE, TRADE_RETCODE_DONE_PARTIAL}
)
"""``order_send`` retcodes that mean the request was carried out (or placed)."""


def retcode_name(retcode: int) -> str:
    """``"TRADE_RETCODE_NO_MONEY"`` for 10019; ``""`` for a code MetaTrader5 does not name."""
    known = enum_or_int(TradeRetcode, retcode)
    return f"TRADE_RETCODE_{known.name}" if isinstance(known, TradeRetcode) else ""


# --------------------------------------------------------------------------- client tags

COMMENT_MAX: Final = 29
"""MetaTrader5's limit for ``comment`` (UTF-16 units)."""
TAG_PREFIX: Final = "~"
_TAG_ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
_TAG_DIGITS: Final = 12
TAG_LENGTH: Final = len(TAG_PREFIX) + _TAG_DIGITS
MAX_USER_COMMENT: Final = COMMENT_MAX - TAG_LENGTH - 1
"""The longest user comment that fits beside a tag (one space separates them)."""
TAG_RE: Final = re.compile(rf"{re.escape(TAG_PREFIX)}[{_TAG_ALPHABET}]{{{_TAG_DIGITS}}}")


def _encode(number: int) -> str:
    digits = []
    for _ in range(_TAG_DIGITS):
        number, digit = divmod(number, 32)
        digits.append(_TAG_ALPHABET[digit])
    return TAG_PREFIX + "".join(reversed(digits))


# Where tags' bits come from; a replay swaps in a seeded generator, so that two runs with the
# same seed send the same comments (``aiomt5.replay``).
random_bits: Callable[[int], int] = secrets.randbits


def new_tag() -> str:
    """A fresh random client tag (60 bits from ``secrets``), e.g. ``"~k3m9q2x7d1ab"``."""
    return _encode(random_bits(5 * _TAG_DIGITS))


def tag_from_key(key: object) -> str:
    """A tag derived from your own idempotency key (a signal id...): same key, same tag.

    Send with ``tag=tag_from_key(key)`` and look it up with ``Trader.lookup`` after a restart to
    know whether that signal was already traded.
    """
    if not isinstance(key, str) or not key:
        raise MT5InvalidArgumentError(f"key must be a non-empty str, got {key!r}")
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return _encode(int.from_bytes(digest) >> (64 - 5 * _TAG_DIGITS))


def check_tag(tag: object) -> str:
    """``tag`` if it is a well-formed client tag, else a clear error."""
    if not isinstance(tag, str) or TAG_RE.fullmatch(tag) is None:
        raise MT5InvalidArgumentError(
            f"tag={tag!r} is not a client tag: use new_tag() or tag_from_key(your_key)"
        )
    return tag


def find_tag(comment: str) -> str | None:
    """The client tag inside an order/deal/position comment, or None."""
    found = TAG_RE.search(comment)
    return found.group() if found else None


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def tagged_comment(tag: str, comment: str) -> str:
    """The comment sent to MT5: the tag, then the user's comment after a space.

    Raises:
        MT5InvalidArgumentError: The user's comment is longer than ``MAX_USER_COMMENT``.
    """
    if not comment:
        return tag
    if _utf16_len(comment) > MAX_USER_COMMENT:
        raise MT5InvalidArgumentError(
            f"comment={comment!r} is {_utf16_len(comment)} characters; beside the exactly-once "
            f"tag only {MAX_USER_COMMENT} fit in MetaTrader5's {COMMENT_MAX}. Shorten it, or "
            "send with exactly_once=False (then a lost reply cannot be reconciled)"
        )
    return f"{tag} {comment}"


# --------------------------------------------------------------------------- request

_INT_FIELDS: Final = (
    "action",
    "type",
    "deviation",
    "type_time",
    "magic",
    "position",
    "position_by",
    "order",
)
_FLOAT_FIELDS: Final = ("volume", "price", "stoplimit", "sl", "tp")


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeRequest:
    """A trade request, checked before anything is sent.

    Field names and meanings are MetaTrader5's ``order_send`` keys. Volumes and prices may be
    given as ints (``volume=1``): they are stored as floats, because MetaTrader5 refuses ints
    there. ``type_filling=None`` lets the trader pick a filling mode the symbol allows;
    ``expiration`` is an aware datetime (or None).

    Raises:
        MT5InvalidArgumentError: A field has the wrong type or an impossible value.
    """

    action: int = TRADE_ACTION_DEAL
    symbol: str = ""
    volume: float = 0.0
    type: int = ORDER_TYPE_BUY
    price: float = 0.0
    stoplimit: float = 0.0
    sl: float = 0.0
    tp: float = 0.0
    deviation: int = 0
    type_filling: int | None = None
    type_time: int = ORDER_TIME_GTC
    expiration: datetime | None = None
    magic: int = 0
    comment: str = ""
    position: int = 0
    position_by: int = 0
    order: int = 0

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise MT5InvalidArgumentError(f"{name} must be an int, got {value!r}")
            if value < 0:
                raise MT5InvalidArgumentError(f"{name} must not be negative, got {value}")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise MT5InvalidArgumentError(f"{name} must be a number, got {value!r}")
            number = float(value)
            if not math.isfinite(number) or number < 0:
                raise MT5InvalidArgumentError(f"{name} must be finite and >= 0, got {value!r}")
            object.__setattr__(self, name, number)  # MT5 takes only floats here
        if self.action not in ACTIONS:
            raise MT5InvalidArgumentError(
                f"action={self.action} is not a TRADE_ACTION_* value ({sorted(ACTIONS)})"
            )
        symbol: object = self.symbol
        if not isinstance(symbol, str) or _utf16_len(symbol) > COMMENT_MAX:
            raise MT5InvalidArgumentError(
                f"symbol must be a str of at most {COMMENT_MAX} characters, got {self.symbol!r}"
            )
        comment: object = self.comment
        if not isinstance(comment, str):
            raise MT5InvalidArgumentError(f"comment must be a str, got {self.comment!r}")
        filling: object = self.type_filling
        if filling is not None and (isinstance(filling, bool) or not isinstance(filling, int)):
            raise MT5InvalidArgumentError(f"type_filling must be an int or None, got {filling!r}")
        expiration: object = self.expiration
        if expiration is not None and (
            not isinstance(expiration, datetime) or expiration.utcoffset() is None
        ):
            raise MT5InvalidArgumentError(
                f"expiration must be an aware datetime or None, got {expiration!r} (MT5 would "
                "read a naive one in this machine's time zone)"
            )

    @classmethod
    def from_mapping(cls, request: Mapping[str, Any]) -> Self:
        """A request from an ``order_send`` dict; unknown keys are refused (typos would be lost).

        ``expiration`` may be epoch seconds, as MetaTrader5 takes it.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(request) - known)
        if unknown:
            raise MT5InvalidArgumentError(
                f"unknown trade request key(s) {unknown}; known: {sorted(known)}"
            )
        values = dict(request)
        expiration = values.get("expiration")
        if isinstance(expiration, int) and not isinstance(expiration, bool):
            values["expiration"] = (
                datetime.fromtimestamp(expiration, UTC) if expiration > 0 else None
            )
        return cls(**values)

    def payload(self, comment: str, type_filling: int) -> dict[str, Any]:
        """The dict ``order_send`` takes, with the final comment and filling mode.

        The comment comes early so a shortened rendering of the call (logs, ``LateResult``)
        still shows the tag.
        """
        expiration = self.expiration
        return {
            "action": self.action,
            "symbol": self.symbol,
            "volume": self.volume,
            "type": self.type,
            "price": self.price,
            "comment": comment,
            "position": self.position,
            "order": self.order,
            "sl": self.sl,
            "tp": self.tp,
            "stoplimit": self.stoplimit,
            "deviation": self.deviation,
            "type_filling": type_filling,
            "type_time": self.type_time,
            "expiration": int(expiration.timestamp()) if expiration is not None else 0,
            "magic": self.magic,
            "position_by": self.position_by,
        }


# --------------------------------------------------------------------------- results


def _time(msc: int) -> datetime:
    return datetime.fromtimestamp(msc / 1000, UTC)


def _optional_time(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderResult:
    """What ``order_send`` answered (or what reconciliation established).

    Attributes:
        retcode: The ``TRADE_RETCODE_*`` value (10009 done, 10008 placed, 10010 partial).
        retcode_name: Its name.
        deal: The deal ticket (0 for pending orders and modifications).
        order: The order ticket (0 for modifications).
        volume: The volume dealt or placed.
        price: The deal price (or the pending order's price).
        bid: The bid when the server answered (0 when reconciled).
        ask: The ask.
        comment: The broker's comment on the result.
        request_id: The terminal's request id (0 when reconciled).
        retcode_external: The external trading system's code.
        request: The request as sent, with the tagged comment.
        tag: The client tag (``""`` when sent with ``exactly_once=False``).
        reconciled: True when the outcome was found by looking the tag up after a lost reply.
        attempts: How many times the request was sent (more than 1 only after a proven absence
            with ``resend_if_absent=True``).
    """

    retcode: TradeRetcode | int
    retcode_name: str
    deal: int
    order: int
    volume: float
    price: float
    bid: float
    ask: float
    comment: str
    request_id: int
    retcode_external: int
    request: Mapping[str, Any]
    tag: str
    reconciled: bool = False
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """True for done, partially done and placed."""
        return self.retcode in SUCCESS_RETCODES

    @classmethod
    def from_struct(
        cls, result: Any, request: Mapping[str, Any], tag: str, *, attempts: int = 1
    ) -> Self:
        """Build from MetaTrader5's ``OrderSendResult``."""
        return cls(
            retcode=enum_or_int(TradeRetcode, result.retcode),
            retcode_name=retcode_name(result.retcode),
            deal=result.deal,
            order=result.order,
            volume=result.volume,
            price=result.price,
            bid=result.bid,
            ask=result.ask,
            comment=result.comment,
            request_id=result.request_id,
            retcode_external=result.retcode_external,
            request=_frozen(request),
            tag=tag,
            attempts=attempts,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCheck:
    """What ``order_check`` answered: retcode 0 means the request would pass.

    The money figures are the account's after the request (or the current ones on refusal).
    """

    retcode: TradeRetcode | int
    retcode_name: str
    balance: float
    equity: float
    profit: float
    margin: float
    margin_free: float
    margin_level: float
    comment: str
    request: Mapping[str, Any]

    @property
    def ok(self) -> bool:
        """True when the request would be accepted."""
        return self.retcode == 0

    @classmethod
    def from_struct(cls, result: Any, request: Mapping[str, Any]) -> Self:
        """Build from MetaTrader5's ``OrderCheckResult``."""
        return cls(
            retcode=enum_or_int(TradeRetcode, result.retcode),
            retcode_name=retcode_name(result.retcode) if result.retcode else "",
            balance=result.balance,
            equity=result.equity,
            profit=result.profit,
            margin=result.margin,
            margin_free=result.margin_free,
            margin_level=result.margin_level,
            comment=result.comment,
            request=_frozen(request),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """An open position (MetaTrader5's ``TradePosition``), times as aware UTC datetimes.

    ``type`` and ``reason`` are ``PositionType``/``PositionReason`` members (equal to MT5's ints;
    a value this version does not name stays an int).
    """

    ticket: int
    time: datetime
    time_update: datetime
    type: PositionType | int
    magic: int
    identifier: int
    reason: PositionReason | int
    volume: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    swap: float
    profit: float
    symbol: str
    comment: str
    external_id: str

    @property
    def tag(self) -> str | None:
        """The client tag of the order that opened it, if any."""
        return find_tag(self.comment)

    @property
    def is_buy(self) -> bool:
        """True for a long position."""
        return self.type == PositionType.BUY

    @classmethod
    def from_struct(cls, p: Any) -> Self:
        """Build from MetaTrader5's ``TradePosition``."""
        return cls(
            ticket=p.ticket,
            time=_time(p.time_msc),
            time_update=_time(p.time_update_msc),
            type=enum_or_int(PositionType, p.type),
            magic=p.magic,
            identifier=p.identifier,
            reason=enum_or_int(PositionReason, p.reason),
            volume=p.volume,
            price_open=p.price_open,
            sl=p.sl,
            tp=p.tp,
            price_current=p.price_current,
            swap=p.swap,
            profit=p.profit,
            symbol=p.symbol,
            comment=p.comment,
            external_id=p.external_id,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """An active or historical order (MetaTrader5's ``TradeOrder``).

    ``time_done`` and ``time_expiration`` are None when MetaTrader5 says 0 (not done, no
    expiration). ``type``, ``type_time``, ``type_filling``, ``state`` and ``reason`` are enum
    members (``OrderType``...), equal to MT5's ints; a value this version does not name stays
    an int.
    """

    ticket: int
    time_setup: datetime
    time_done: datetime | None
    time_expiration: datetime | None
    type: OrderType | int
    type_time: OrderTime | int
    type_filling: OrderFilling | int
    state: OrderState | int
    magic: int
    position_id: int
    position_by_id: int
    reason: OrderReason | int
    volume_initial: float
    volume_current: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    price_stoplimit: float
    symbol: str
    comment: str
    external_id: str

    @property
    def tag(self) -> str | None:
        """The client tag in the comment, if any."""
        return find_tag(self.comment)

    @property
    def state_name(self) -> str:
        """``"filled"``, ``"placed"``, ``"canceled"``..."""
        state = self.state
        return state.name.lower() if isinstance(state, OrderState) else str(state)

    @classmethod
    def from_struct(cls, o: Any) -> Self:
        """Build from MetaTrader5's ``TradeOrder``."""
        return cls(
            ticket=o.ticket,
            time_setup=_time(o.time_setup_msc),
            time_done=_time(o.time_done_msc) if o.time_done_msc > 0 else None,
            time_expiration=_optional_time(o.time_expiration),
            type=enum_or_int(OrderType, o.type),
            type_time=enum_or_int(OrderTime, o.type_time),
            type_filling=enum_or_int(OrderFilling, o.type_filling),
            state=enum_or_int(OrderState, o.state),
            magic=o.magic,
            position_id=o.position_id,
            position_by_id=o.position_by_id,
            reason=enum_or_int(OrderReason, o.reason),
            volume_initial=o.volume_initial,
            volume_current=o.volume_current,
            price_open=o.price_open,
            sl=o.sl,
            tp=o.tp,
            price_current=o.price_current,
            price_stoplimit=o.price_stoplimit,
            symbol=o.symbol,
            comment=o.comment,
            external_id=o.external_id,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Deal:
    """A deal in the account history (MetaTrader5's ``TradeDeal``).

    ``type``, ``entry`` and ``reason`` are ``DealType``/``DealEntry``/``DealReason`` members
    (equal to MT5's ints; a value this version does not name stays an int).
    """

    ticket: int
    order: int
    time: datetime
    type: DealType | int
    entry: DealEntry | int
    magic: int
    position_id: int
    reason: DealReason | int
    volume: float
    price: float
    commission: float
    swap: float
    profit: float
    fee: float
    symbol: str
    comment: str
    external_id: str

    @property
    def tag(self) -> str | None:
        """The client tag in the comment, if any."""
        return find_tag(self.comment)

    @classmethod
    def from_struct(cls, d: Any) -> Self:
        """Build from MetaTrader5's ``TradeDeal``."""
        return cls(
            ticket=d.ticket,
            order=d.order,
            time=_time(d.time_msc),
            type=enum_or_int(DealType, d.type),
            entry=enum_or_int(DealEntry, d.entry),
            magic=d.magic,
            position_id=d.position_id,
            reason=enum_or_int(DealReason, d.reason),
            volume=d.volume,
            price=d.price,
            commission=d.commission,
            swap=d.swap,
            profit=d.profit,
            fee=d.fee,
            symbol=d.symbol,
            comment=d.comment,
            external_id=d.external_id,
        )
