"""``MT5Connector``: the blocking facade, for scripts, notebooks and synchronous bots.

It runs an ``AsyncMT5Connector`` — the same core, settings, supervisor, errors and exactly-once
trading — on a private event loop in its own thread, started with anyio's
``start_blocking_portal()``. Each method hands its coroutine to that loop and waits for the
answer, so it is safe from any thread, and inside Jupyter or any other code that already runs an
event loop in the calling thread (that loop is simply blocked for the call's duration, as with
any blocking library).

Each blocking method is made from the async method of the same name by ``_blocking``, so the
two cannot drift: same parameters, same defaults, same docstring, same exceptions.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Self, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._connector import AsyncMT5Connector
from ._core._errors import MT5ClosedError
from ._core._instance import process_instance
from ._core._types import ConnectionState
from ._settings import MT5Settings, settings_with

if TYPE_CHECKING:
    from ._core._events import EventHook
    from ._core._stats import ConnectionStats

__all__ = ["BlockingStream", "MT5Config", "MT5Connector"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")

_LIVE: weakref.WeakSet[MT5Connector] = weakref.WeakSet()


def _blocking(
    method: Callable[Concatenate[Any, _P], Awaitable[_R]],
) -> Callable[Concatenate[MT5Connector, _P], _R]:
    """The blocking twin of ``AsyncMT5Connector.<method>``: same signature, docstring, errors."""
    name = method.__name__

    def run(self: MT5Connector, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        bound: Callable[..., Awaitable[_R]] = getattr(self._connector, name)
        return self._portal().call(functools.partial(bound, *args, **kwargs))

    functools.update_wrapper(run, method)  # signature, docstring: what IDEs and help() show
    run.__qualname__ = f"MT5Connector.{name}"
    return run


def _blocking_stream(
    method: Callable[Concatenate[Any, _P], AsyncIterator[_T]],
) -> Callable[Concatenate[MT5Connector, _P], BlockingStream[_T]]:
    """The connector's stream as a plain iterator: ``for bar in mt5.stream_bars(...)``.

    Same options and the same exactly-once delivery across reconnects as the async stream;
    ``close()`` (or the end of a ``with`` block) stops it.
    """
    name = method.__name__

    def open_stream(
        self: MT5Connector, /, *args: _P.args, **kwargs: _P.kwargs
    ) -> BlockingStream[_T]:
        opener: Callable[..., AsyncIterator[_T]] = getattr(self._connector, name)
        portal = self._portal()
        return BlockingStream(portal, portal.call(functools.partial(opener, *args, **kwargs)))

    functools.update_wrapper(open_stream, method)
    open_stream.__qualname__ = f"MT5Connector.{name}"
    return open_stream


class MT5Connector:
    """A blocking connection to one MetaTrader 5 terminal, with the seed's names.

    Args:
        settings: The configuration (default: ``MT5Settings()`` from ``MT5_*`` and ``.env``);
            ``MT5Config(...)`` builds one with the seed's argument names.
        backend: As for ``AsyncMT5Connector``: a name/URL, the ``MetaTrader5`` module, a
            ``SimTerminal``...
        **overrides: Setting fields to change, e.g. ``backend="sim"``, ``call_timeout=5``.

    Example:
        ```python
        from aiomt5 import MT5Connector

        with MT5Connector(backend="sim") as mt5:
            rates = mt5.get_rates("EURUSD", "H1", count=100)
            mt5.buy("EURUSD", 0.1, sl=1.05)
        ```

    Every method has the parameters, defaults and exceptions of its ``AsyncMT5Connector``
    namesake (``connect()`` also returns True, so ``if connector.connect():`` reads as before).
    The loop thread starts on first use and stops with ``close()`` (or the ``with`` block, or
    at interpreter exit, after a clean disconnect).
    """

    def __init__(
        self,
        settings: MT5Settings | None = None,
        *,
        backend: object | None = None,
        **overrides: Any,
    ) -> None:
        self._connector = AsyncMT5Connector(settings_with(settings, overrides), backend=backend)
        self._lock = threading.Lock()
        self._portal_cm: contextlib.AbstractContextManager[BlockingPortal] | None = None
        self._running: BlockingPortal | None = None
        self._stop = weakref.finalize(self, _shut_down, None, None, self._connector)
        _LIVE.add(self)

    # ------------------------------------------------------------------ singleton

    @classmethod
    def get_instance(cls, settings: MT5Settings | None = None) -> MT5Connector:
        """The process-wide blocking connector (MT5 allows one terminal per process).

        The slot is shared with ``AsyncMT5Connector.get_instance()``: a process has one such
        connector, of either kind.

        Raises:
            MT5ConfigurationError: A live instance exists with different settings, or the
                process-wide connector is a live ``AsyncMT5Connector``.
        """
        return process_instance.get(cls, settings, "connector.close()")

    @classmethod
    def reset_instance(cls) -> None:
        """Close and forget the process-wide connector (tests, recovery)."""
        instance = process_instance.take(cls)
        if instance is not None:
            instance.close()

    # ------------------------------------------------------------------ the loop thread

    def _portal(self) -> BlockingPortal:
        with self._lock:
            if self._running is None:
                if self._connector.state is ConnectionState.CLOSED:
                    raise MT5ClosedError(
                        "this connector is closed; create a new one (or use get_instance())"
                    )
                manager = start_blocking_portal(name="aiomt5-loop")
                self._running = manager.__enter__()
                self._portal_cm = manager
                self._stop.detach()
                self._stop = weakref.finalize(
                    self, _shut_down, manager, self._running, self._connector
                )
            return self._running

    @property
    def async_connector(self) -> AsyncMT5Connector:
        """The ``AsyncMT5Connector`` underneath (its methods run on the facade's loop only)."""
        return self._connector

    @property
    def settings(self) -> MT5Settings:
        """The settings this connector was made with."""
        return self._connector.settings

    @property
    def state(self) -> ConnectionState:
        """The connection state (``CONNECTED``, ``DEGRADED``, ``RECONNECTING``...)."""
        return self._connector.state

    def is_connected(self) -> bool:
        """True while calls can be made (CONNECTED or DEGRADED)."""
        return self._connector.is_connected()

    def get_connection_stats(self) -> ConnectionStats:
        """A snapshot of counters, latencies and state (cheap)."""
        return self._connector.get_connection_stats()

    def clear_symbol_cache(self) -> None:
        """Forget ``find_symbol`` answers (done on every connect)."""
        self._connector.clear_symbol_cache()

    def add_event_hook(self, hook: EventHook) -> None:
        """Call ``hook(event)`` for every event; it runs on the facade's loop thread."""
        self._portal().call(self._connector.add_event_hook, hook)

    def remove_event_hook(self, hook: EventHook) -> None:
        """Stop calling ``hook``."""
        self._portal().call(self._connector.remove_event_hook, hook)

    def __repr__(self) -> str:
        return repr(self._connector).replace("AsyncMT5Connector", "MT5Connector", 1)

    # ------------------------------------------------------------------ lifecycle

    def connect(self) -> bool:
        """Connect (start the supervisor, initialize the terminal, log in); True when connected.

        Raises:
            MT5Error: As ``AsyncMT5Connector.connect`` (``MT5LoginError``,
                ``MT5InitializationError``...): a failure says why instead of returning False.
        """
        self._portal().call(self._connector.connect)
        return True

    def close(self) -> None:
        """Disconnect for good and stop the loop thread; the connector cannot reopen."""
        with self._lock:
            manager, self._portal_cm = self._portal_cm, None
            portal, self._running = self._running, None
            self._stop.detach()
        _LIVE.discard(self)
        if manager is None or portal is None:
            # Never started: a short-lived loop marks the connector closed all the same.
            with start_blocking_portal(name="aiomt5-close") as once:
                once.call(self._connector.close)
            return
        try:
            portal.call(self._connector.close)
        finally:
            manager.__exit__(None, None, None)

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    disconnect = _blocking(AsyncMT5Connector.disconnect)
    reconnect = _blocking(AsyncMT5Connector.reconnect)
    health_check = _blocking(AsyncMT5Connector.health_check)

    # ------------------------------------------------------------------ reads

    call = _blocking(AsyncMT5Connector.call)
    call_many = _blocking(AsyncMT5Connector.call_many)
    find_symbol = _blocking(AsyncMT5Connector.find_symbol)
    get_available_symbols = _blocking(AsyncMT5Connector.get_available_symbols)
    get_symbol_info = _blocking(AsyncMT5Connector.get_symbol_info)
    get_account_info = _blocking(AsyncMT5Connector.get_account_info)
    get_terminal_info = _blocking(AsyncMT5Connector.get_terminal_info)
    get_rates = _blocking(AsyncMT5Connector.get_rates)
    get_ticks = _blocking(AsyncMT5Connector.get_ticks)
    get_rates_frame = _blocking(AsyncMT5Connector.get_rates_frame)
    get_ticks_frame = _blocking(AsyncMT5Connector.get_ticks_frame)

    # ------------------------------------------------------------------ trading

    order_send = _blocking(AsyncMT5Connector.order_send)
    order_check = _blocking(AsyncMT5Connector.order_check)
    buy = _blocking(AsyncMT5Connector.buy)
    sell = _blocking(AsyncMT5Connector.sell)
    close_position = _blocking(AsyncMT5Connector.close_position)
    modify_position = _blocking(AsyncMT5Connector.modify_position)
    place_pending = _blocking(AsyncMT5Connector.place_pending)
    cancel_order = _blocking(AsyncMT5Connector.cancel_order)
    positions = _blocking(AsyncMT5Connector.positions)
    orders = _blocking(AsyncMT5Connector.orders)
    history_orders = _blocking(AsyncMT5Connector.history_orders)
    history_deals = _blocking(AsyncMT5Connector.history_deals)
    normalize_volume = _blocking(AsyncMT5Connector.normalize_volume)
    normalize_price = _blocking(AsyncMT5Connector.normalize_price)
    volume_for_risk = _blocking(AsyncMT5Connector.volume_for_risk)
    positions_frame = _blocking(AsyncMT5Connector.positions_frame)
    orders_frame = _blocking(AsyncMT5Connector.orders_frame)
    history_orders_frame = _blocking(AsyncMT5Connector.history_orders_frame)
    history_deals_frame = _blocking(AsyncMT5Connector.history_deals_frame)

    # ------------------------------------------------------------------ streams

    stream_ticks = _blocking_stream(AsyncMT5Connector.stream_ticks)
    stream_bars = _blocking_stream(AsyncMT5Connector.stream_bars)


class BlockingStream(Generic[_T]):
    """A connector stream read from blocking code: iterate it, then ``close()`` it."""

    def __init__(self, portal: BlockingPortal, stream: AsyncIterator[_T]) -> None:
        self._portal = portal
        self._stream = stream

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> _T:
        try:
            item = self._portal.call(self._stream.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None
        return item

    def close(self) -> None:
        """Stop the stream (no further polling)."""
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            self._portal.call(aclose)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _shut_down(
    manager: contextlib.AbstractContextManager[BlockingPortal] | None,
    portal: BlockingPortal | None,
    connector: AsyncMT5Connector,
) -> None:
    """Close the connector and stop the loop thread of a facade collected without ``close()``."""
    if manager is None or portal is None:
        return
    with contextlib.suppress(Exception):
        portal.call(connector.close)
    with contextlib.suppress(Exception):
        manager.__exit__(None, None, None)


@atexit.register
def _close_live_facades() -> None:
    # The loop thread is a daemon: without this, exit would kill it mid-session instead of
    # shutting the terminal session down cleanly.
    for facade in list(_LIVE):
        with contextlib.suppress(Exception):
            facade.close()


def MT5Config(  # noqa: N802 (the seed's name for its config class)
    *,
    timeout: int | None = None,
    enable_health_check: bool | None = None,
    **fields: Any,
) -> MT5Settings:
    """``MT5Settings`` from the seed's argument names.

    ``MT5Config(login=..., password=..., server=..., path=..., timeout=30000, max_retries=5,
    enable_health_check=True)``: ``timeout`` is ``timeout_ms`` (milliseconds, as MT5's own),
    ``enable_health_check`` is ``health_check``; every other ``MT5Settings`` field may be given
    by its own name.

    Raises:
        pydantic.ValidationError: An unknown name or an invalid value (as ``MT5Settings``).
    """
    if timeout is not None:
        fields["timeout_ms"] = timeout
    if enable_health_check is not None:
        fields["health_check"] = enable_health_check
    return MT5Settings(**fields)
