"""The aiomt5 exception tree, and the one place MetaTrader5's ``(code, message)`` becomes one.

```
MT5Error                                 every aiomt5 failure
├── MT5ConfigurationError (ValueError)   bad settings or backend; fix the configuration
├── MT5InvalidArgumentError (ValueError) bad arguments to a connector method; nothing was sent
├── MT5NotAvailableError                 the requested backend cannot be used on this machine
├── MT5ClosedError                       the connector (or its worker) is closed for good
├── MT5ConnectionError                   the link to the terminal is down; reconnecting may help
│   ├── MT5NotConnectedError             no IPC connection (-10004), or not connected yet
│   ├── MT5InitializationError           initialize() could not reach a terminal (-10003, ...)
│   ├── MT5IPCTimeoutError (+ MT5TimeoutError)  the terminal did not connect in time (-10005)
│   ├── MT5LoginError                    the account was rejected (-6, OTP/certificate -7)
│   ├── MT5WorkerBusyError               a call is stuck past its timeout; new calls fail fast
│   ├── MT5ServerBusyError               `aiomt5 serve` is full: retried with backoff (-10100)
│   └── MT5ProtocolError                 a remote peer broke the protocol: garbage, a reply over
│                                        the client's limit, TLS on one side only (-10101)
├── MT5TimeoutError (TimeoutError)       a call did not complete within its timeout
├── MT5OutcomeUnknownError               a write started, its caller gave up: it may have happened
│   └── MT5TradeOutcomeUnknownError      a trade could not be reconciled: look its tag up later
└── MT5CallError                         the terminal or the MetaTrader5 module rejected the call
    ├── MT5CallFailedError               MT5's generic failure (-1): often the trade server is away
    ├── MT5InvalidParamsError            the terminal refused the arguments (-2); nothing was done
    ├── MT5NotFoundError (LookupError)   nothing matched (-4)
    │   └── MT5SymbolNotFoundError       no such symbol (or no unique broker-decorated match)
    ├── MT5OrderNotPlacedError           a trade failed and provably took no effect
    ├── MT5AutoTradingDisabledError      "Auto-Trading using Python API disabled" (-8)
    ├── MT5ReplyTooLargeError            the reply exceeds `aiomt5 serve`'s max_reply_bytes (-10102)
    └── MT5TradeError                    order_send/order_check answered with a failing retcode
        └── MT5MarketClosedError         the symbol's market is closed (10018); says when it opens
```

Every error carries what was called: ``function`` (the MetaTrader5 function name),
``args_summary`` (a short, secret-free rendering of the arguments), ``code`` (MT5's
``last_error()`` code when there is one) and ``message`` (MT5's text or ours).
MT5's ``(code, message)`` becomes one of these in exactly one function,
``error_from_last_error`` in the backend layer (``aiomt5._backends._checked``); everything else
raises the classes directly.

``MT5OutcomeUnknownError`` is deliberately *not* a ``TimeoutError``: code that retries on timeouts
must not resend an order that may already have been placed.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from aiomt5._trading._trader import Reconciliation

__all__ = [
    "REMOTE_BUSY",
    "REMOTE_PROTOCOL",
    "REMOTE_REPLY_TOO_LARGE",
    "MT5AutoTradingDisabledError",
    "MT5CallError",
    "MT5CallFailedError",
    "MT5ClosedError",
    "MT5ConfigurationError",
    "MT5ConnectionError",
    "MT5Error",
    "MT5IPCTimeoutError",
    "MT5InitializationError",
    "MT5InvalidArgumentError",
    "MT5InvalidParamsError",
    "MT5LoginError",
    "MT5MarketClosedError",
    "MT5NotAvailableError",
    "MT5NotConnectedError",
    "MT5NotFoundError",
    "MT5OrderNotPlacedError",
    "MT5OutcomeUnknownError",
    "MT5ProtocolError",
    "MT5ReplyTooLargeError",
    "MT5ServerBusyError",
    "MT5SymbolNotFoundError",
    "MT5TimeoutError",
    "MT5TradeError",
    "MT5TradeOutcomeUnknownError",
    "MT5WorkerBusyError",
    "summarize_call",
    "trade_error",
]


class MT5Error(Exception):
    """Base class of every aiomt5 error.

    Args:
        message: What went wrong (MT5's text, or ours), and what to do about it.
        function: The MetaTrader5 function that was called, if any.
        args_summary: A short rendering of the call, secrets masked (see ``summarize_call``).
        code: MT5's ``last_error()`` code, when the failure came from MT5.

    Attributes:
        last_error: MetaTrader5's own ``(code, message)`` when the failure came from it, else
            None.
    """

    last_error: tuple[int, str] | None = None

    def __init__(
        self,
        message: str,
        *,
        function: str | None = None,
        args_summary: str | None = None,
        code: int | None = None,
    ) -> None:
        self.message = message
        self.function = function
        self.args_summary = args_summary
        self.code = code
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.args_summary or (f"{self.function}()" if self.function else "")
        code = f" [MT5 error {self.code}]" if self.code is not None else ""
        return f"{where}: {self.message}{code}" if where else f"{self.message}{code}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive the default Exception pickling; errors cross
        # process boundaries (remote terminals), so rebuild from the instance dict instead.
        return (_restore, (type(self), self.args, dict(self.__dict__)))


def _restore(cls: type[MT5Error], args: tuple[Any, ...], state: dict[str, Any]) -> MT5Error:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class MT5ConfigurationError(MT5Error, ValueError):
    """Raised for invalid settings or an unusable ``backend=`` object; nothing was called."""


class MT5InvalidArgumentError(MT5Error, ValueError):
    """Raised when a connector method gets bad arguments (naive datetime, unknown timeframe...).

    Nothing was sent to the terminal.
    """


class MT5NotAvailableError(MT5Error):
    """Raised when the chosen backend cannot run here (no MetaTrader5 package, remote not yet)."""


class MT5ClosedError(MT5Error):
    """Raised when using a connector or worker after ``close()``; closed is final."""


class MT5ConnectionError(MT5Error):
    """Raised when the link to the terminal is down or unusable; reconnecting may help.

    Covers MT5's IPC codes -10000 (protocol mismatch), -10001 (send failed) and -10002 (receive
    failed); the subclasses cover the more specific cases.
    """


class MT5NotConnectedError(MT5ConnectionError):
    """Raised when there is no IPC connection (-10004) or the connector is not connected."""


class MT5InitializationError(MT5ConnectionError):
    """Raised when ``initialize()`` cannot find, start or open the terminal (-10003 and others)."""


class MT5LoginError(MT5ConnectionError):
    """Raised when the trade server rejects the account (-6), or needs OTP/a certificate (-7).

    Retrying with the same credentials does not help (and may lock the account), so
    ``connect()`` does not retry it.
    """


class MT5WorkerBusyError(MT5ConnectionError):
    """Raised at once while the worker is wedged: a call is stuck past its caller's timeout.

    The terminal is not answering; calls would only pile up behind the stuck one. The error names
    the stuck call and how long it has been running.
    """


class MT5ServerBusyError(MT5ConnectionError):
    """Raised when ``aiomt5 serve`` accepted the token but has no room for another client.

    Nothing is wrong with the token or the account: the connector's supervisor and ``MT5Pool``
    retry it with their backoff (code ``REMOTE_BUSY``).
    """


class MT5ProtocolError(MT5ConnectionError):
    """Raised when a remote peer breaks the protocol (code ``REMOTE_PROTOCOL``).

    A malformed or truncated reply, one larger than the client's limit, a peer that is not
    ``aiomt5 serve``, or TLS on one side only. The link is dropped; the message says which.
    """


class MT5TimeoutError(MT5Error, TimeoutError):
    """Raised when a call did not complete within its timeout.

    A read that had already started is abandoned (its late result is dropped); a call that was
    still queued never runs.
    """


class MT5IPCTimeoutError(MT5ConnectionError, MT5TimeoutError):
    """Raised when the terminal did not reach the trade server within ``timeout_ms`` (-10005)."""


class MT5OutcomeUnknownError(MT5Error):
    """Raised when a write (``order_send``, ``symbol_select``...) started but its caller gave up.

    The terminal may or may not have carried it out. The late result is reported when it arrives
    (a ``LateResult`` event and an ``aiomt5.worker.late_result`` log line): reconcile before
    retrying.
    """


class MT5TradeOutcomeUnknownError(MT5OutcomeUnknownError):
    """Raised when an ambiguous send could not be reconciled within ``reconcile_timeout``.

    The order may or may not exist. Do not resend blindly: look the tag up later
    (``Trader.lookup(error.tag)``); a late result is logged with the tag.

    Attributes:
        request: The request as sent (with the tagged comment).
        tag: The client tag.
        checked: What reconciliation looked at, in order, and what it saw.
        reconciliation: The last lookup, if one completed.
    """

    def __init__(
        self,
        message: str,
        *,
        request: Mapping[str, Any],
        tag: str,
        checked: Iterable[str] = (),
        reconciliation: Reconciliation | None = None,
    ) -> None:
        self.request = dict(request)
        self.tag = tag
        self.checked = tuple(checked)
        self.reconciliation = reconciliation
        super().__init__(message, function="order_send", args_summary=_order_call(request, tag))


class MT5CallError(MT5Error):
    """Raised when the terminal or the MetaTrader5 module rejects a call (-1, -2, -3, -5, -7...)."""


class MT5CallFailedError(MT5CallError):
    """Raised when the terminal answers its generic failure (-1, "Terminal: Call failed").

    MetaTrader5 says this while it has lost its trade server (market reads and trades fail),
    and for a history request lying entirely outside the server's data. A read may be retried
    once the connector is ``CONNECTED`` again; streams do so by themselves.
    """


class MT5InvalidParamsError(MT5CallError):
    """Raised when the terminal refuses the call's arguments (-2); the call did nothing."""


class MT5NotFoundError(MT5CallError, LookupError):
    """Raised when the terminal finds nothing for the request (-4)."""


class MT5SymbolNotFoundError(MT5NotFoundError):
    """Raised when a symbol does not exist, or a name matches several broker symbols.

    Attributes:
        candidates: The broker symbols the name could mean (empty when none matched).
    """

    def __init__(
        self,
        message: str,
        *,
        function: str | None = None,
        args_summary: str | None = None,
        code: int | None = None,
        candidates: Sequence[str] = (),
    ) -> None:
        self.candidates = tuple(candidates)
        super().__init__(message, function=function, args_summary=args_summary, code=code)


class MT5OrderNotPlacedError(MT5CallError):
    """Raised when a send failed and reconciliation proved the request took no effect.

    Sending it again is safe (``resend_if_absent=True`` does it for you). ``__cause__`` is the
    original failure.

    Attributes:
        request: The request as sent.
        tag: The client tag.
        checked: What reconciliation looked at.
    """

    def __init__(
        self, message: str, *, request: Mapping[str, Any], tag: str, checked: Iterable[str] = ()
    ) -> None:
        self.request = dict(request)
        self.tag = tag
        self.checked = tuple(checked)
        super().__init__(message, function="order_send", args_summary=_order_call(request, tag))


def _order_call(request: Mapping[str, Any], tag: str) -> str:
    """``order_send(EURUSD, tag=~...)``: how trade errors show the request they are about."""
    symbol = request.get("symbol")
    return f"order_send({symbol}, tag={tag})" if symbol else f"order_send(tag={tag})"


class MT5AutoTradingDisabledError(MT5CallError):
    """Raised when Python trading is disabled in the terminal options (-8)."""


class MT5ReplyTooLargeError(MT5CallError):
    """Raised when ``aiomt5 serve`` refuses a request whose reply would exceed its limit.

    The server's ``max_reply_bytes`` bounds one reply; ask for less at a time: a shorter date
    range, a smaller ``count``, or the connector's paged history (``get_ticks``/``get_rates``
    with ``page_size``). Code ``REMOTE_REPLY_TOO_LARGE``.
    """


class MT5TradeError(MT5CallError):
    """Raised when ``order_send``/``order_check`` answers with a retcode that is not success.

    Attributes:
        retcode: The ``TRADE_RETCODE_*`` value.
        retcode_name: Its constant name (``"TRADE_RETCODE_NO_MONEY"``), or ``""`` if unknown.
        comment: The broker's comment from the result.
        request: The request as sent (a dict), for reconciliation.
        result: The whole result structure, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        retcode: int,
        retcode_name: str = "",
        comment: str = "",
        request: Mapping[str, Any] | None = None,
        result: Any = None,
        function: str | None = "order_send",
        args_summary: str | None = None,
    ) -> None:
        self.retcode = retcode
        self.retcode_name = retcode_name
        self.comment = comment
        self.request = dict(request) if request is not None else {}
        self.result = result
        super().__init__(message, function=function, args_summary=args_summary, code=retcode)

    def _render(self) -> str:
        name = f" {self.retcode_name}" if self.retcode_name else ""
        comment = f" ({self.comment})" if self.comment else ""
        where = self.args_summary or f"{self.function}()"
        symbol = self.request.get("symbol")
        if symbol and symbol not in f"{where} {self.message}":
            where = f"{where} on {symbol}"  # every trade error names its symbol
        return f"{where}: {self.message}: retcode {self.retcode}{name}{comment}"


class MT5MarketClosedError(MT5TradeError):
    """Raised when a trade is refused because the symbol's market is closed (retcode 10018).

    Attributes:
        symbol: The symbol whose market is closed.
        opens_at: When its next session opens (aware UTC) where the backend knows it (the
            simulator does; the MetaTrader5 module exposes no sessions), else None.
    """

    def __init__(
        self, message: str, *, symbol: str = "", opens_at: datetime | None = None, **kwargs: Any
    ) -> None:
        self.symbol = symbol
        self.opens_at = opens_at
        super().__init__(message, **kwargs)

    def _render(self) -> str:
        opens = f"; it opens at {self.opens_at.isoformat()}" if self.opens_at else ""
        return f"{super()._render()}{opens}"


# --------------------------------------------------------------------------- mapping

REMOTE_BUSY: Final = -10100
"""``last_error()`` code of a remote backend whose ``aiomt5 serve`` is full (not MT5's)."""
REMOTE_PROTOCOL: Final = -10101
"""``last_error()`` code of a remote backend whose peer broke the protocol (not MT5's)."""
REMOTE_REPLY_TOO_LARGE: Final = -10102
"""``last_error()`` code of a request refused by ``aiomt5 serve``'s reply limit (not MT5's)."""

_BY_RETCODE: Final[dict[int, type[MT5TradeError]]] = {
    10018: MT5MarketClosedError,  # TRADE_RETCODE_MARKET_CLOSED
}


def trade_error(
    message: str,
    *,
    retcode: int,
    symbol: str = "",
    opens_at: datetime | None = None,
    **details: Any,
) -> MT5TradeError:
    """The ``MT5TradeError`` (or subclass) for a failing ``retcode``, not raised.

    Args:
        message: What happened, in our words.
        retcode: The ``TRADE_RETCODE_*`` value; 10018 (market closed) gives
            ``MT5MarketClosedError`` with ``symbol`` and ``opens_at``.
        symbol: The request's symbol.
        opens_at: When the market opens next, where known.
        **details: ``MT5TradeError``'s other keyword arguments.
    """
    cls = _BY_RETCODE.get(retcode, MT5TradeError)
    if cls is MT5MarketClosedError:
        where = f"{symbol}: " if symbol else ""
        return MT5MarketClosedError(
            f"{where}the market is closed", retcode=retcode, symbol=symbol, opens_at=opens_at,
            **details,
        )  # fmt: skip
    return cls(message, retcode=retcode, **details)


# --------------------------------------------------------------------------- argument summaries

_SECRET_NAMES: Final = frozenset({"password", "passwd", "token", "secret", "api_key"})
# Positional parameter names where a secret can be passed by position.
_POSITIONAL_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "login": ("login", "password", "server"),
}
_MASK: Final = "'***'"

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = 6
_repr.maxtuple = 6
_repr.maxdict = 8
_repr.maxlevel = 2


def _render_value(name: str | None, value: Any) -> str:
    if (name is not None and name.lower() in _SECRET_NAMES) or type(value).__name__ in {
        "SecretStr",
        "SecretBytes",
    }:
        return _MASK
    if isinstance(value, Mapping):
        items = ", ".join(
            f"{k!r}: {_render_value(str(k), v)}" for k, v in list(value.items())[: _repr.maxdict]
        )
        more = ", ..." if len(value) > _repr.maxdict else ""
        return f"{{{items}{more}}}"
    return _repr.repr(value)


def summarize_call(function: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """Render a call as ``name(arg, key=value)``, short and with secrets masked.

    Passwords (by parameter name, by position for ``login``, or as a ``SecretStr``) become
    ``'***'``; long values are shortened.
    """
    names = _POSITIONAL_NAMES.get(function, ())
    parts = [
        _render_value(names[i] if i < len(names) else None, value) for i, value in enumerate(args)
    ]
    parts.extend(f"{key}={_render_value(key, value)}" for key, value in kwargs.items())
    return f"{function}({', '.join(parts)})"
