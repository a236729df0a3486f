"""Run unmodified ``MetaTrader5`` code on any aiomt5 backend, with timeouts and reconnection.

```python
import aiomt5.compat

aiomt5.compat.install(backend="aiomt5://trading-box:18812")  # or "sim", "mt5linux://...", ...

import MetaTrader5 as mt5  # the module install() registered

mt5.initialize()
print(mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_H1, 0, 10))
```

``install(settings=None, **overrides)`` registers a module named ``MetaTrader5`` in
``sys.modules``. It has every function, constant and struct type of the real package
(5.0.6231), and every call goes through a blocking ``MT5Connector``: one worker thread, the
call timeout (``call_timeout``), the supervisor's health checks and reconnects. Results are the
real module's: the same structs and arrays on success, and on failure its failure value
(``None``; ``False`` for ``initialize``, ``login``, ``symbol_select``, ``market_book_add`` and
``market_book_release``; ``(0, 0, "")`` for ``version``) with ``last_error()`` set to the MT5 code
and text — a timeout reads ``(-10005, "IPC timeout")``, a lost connection ``-10004``.

``initialize(path, login=, password=, server=, timeout=, portable=)`` connects (its arguments
override the settings); ``shutdown()`` closes the connector. Sends are passed through as they
are (the script's own comments and checks stay untouched); use ``MT5Connector`` or
``AsyncMT5Connector`` for exactly-once trading.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from ._core._errors import MT5Error
from ._mt5 import constants as _constants
from ._mt5.codes import error_text
from ._mt5.functions import API_FUNCTIONS, CONNECTION_FUNCTIONS, HELPER_FUNCTIONS
from ._mt5.helpers import MetaTrader5Helpers
from ._settings import MT5Settings, settings_with

__all__ = ["install", "uninstall"]

_MODULE_NAME: Final = "MetaTrader5"
_SUCCESS: Final = (1, "Success")
_FALSE_ON_FAILURE: Final = frozenset(
    {"initialize", "login", "symbol_select", "market_book_add", "market_book_release"}
)
_PASSED_THROUGH: Final = tuple(
    f for f in API_FUNCTIONS if f not in CONNECTION_FUNCTIONS | HELPER_FUNCTIONS
)
"""The functions that go to the terminal as they are (not the connection's own or the helpers)."""

_INITIALIZE_FIELDS: Final = {
    "login": "login",
    "password": "password",
    "server": "server",
    "timeout": "timeout_ms",
    "portable": "portable",
}


def _failure_code(error: MT5Error) -> tuple[int, str]:
    """The ``last_error()`` the real package would show for ``error``."""
    from ._core._errors import MT5ClosedError, MT5NotConnectedError, MT5TimeoutError

    if error.last_error is not None:
        return error.last_error  # the terminal's own words
    code = error.code
    if code is None:
        if isinstance(error, MT5TimeoutError):
            code = _constants.RES_E_INTERNAL_FAIL_TIMEOUT
        elif isinstance(error, MT5NotConnectedError | MT5ClosedError):
            code = _constants.RES_E_INTERNAL_FAIL_CONNECT
        else:
            code = _constants.RES_E_FAIL
    return code, error_text(code)


def _failure_value(function: str) -> Any:
    """What the real package returns when ``function`` fails."""
    if function == "version":
        return (0, 0, "")
    return False if function in _FALSE_ON_FAILURE else None


class _ModuleFunction:
    """A function of the installed module that, like the C extension's, never binds as a method.

    Real code keeps MetaTrader5's functions as class attributes and calls them through ``self``
    (aiomql: ``_login = MetaTrader5.login``, then ``self._login(login, ...)``). The extension's
    functions are builtins, which do not bind; a plain Python function there would receive the
    instance as its first argument (``login(self, 5001234)``: ``Invalid "login" argument``).
    """

    __slots__ = ("__name__", "__qualname__", "_call")

    def __init__(self, name: str, call: Callable[..., Any]) -> None:
        self.__name__ = self.__qualname__ = name
        self._call = call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<built-in function {self.__name__}>"


class _Bridge:
    """The state behind one installed module: settings, the connector, ``last_error()``."""

    def __init__(self, settings: MT5Settings, backend: object | None) -> None:
        from ._blocking import MT5Connector

        self._connector_type = MT5Connector
        self.settings = settings
        self.backend = backend
        self.connector: MT5Connector | None = None
        self._lock = threading.Lock()
        self._last_error: tuple[int, str] = _SUCCESS

    def last_error(self) -> tuple[int, str]:
        return self._last_error

    def _fail(self, function: str, error: MT5Error) -> Any:
        self._last_error = _failure_code(error)
        return _failure_value(function)

    def initialize(self, path: str | None = None, /, **kwargs: Any) -> bool:
        unknown = sorted(set(kwargs) - set(_INITIALIZE_FIELDS))
        if unknown:
            self._last_error = (_constants.RES_E_INVALID_PARAMS, "Invalid arguments")
            return False
        overrides = {_INITIALIZE_FIELDS[k]: v for k, v in kwargs.items()}
        if path is not None:
            overrides["path"] = path
        with self._lock:
            old, self.connector = self.connector, None
        if old is not None:
            old.close()
        try:
            connector = self._connector_type(
                settings_with(self.settings, overrides), backend=self.backend
            )
            with self._lock:
                self.connector = connector
            connector.connect()
        except MT5Error as exc:
            self._last_error = _failure_code(exc)
            return False
        except ValueError:  # pydantic: an invalid initialize() argument
            self._last_error = (_constants.RES_E_INVALID_PARAMS, "Invalid arguments")
            return False
        self._last_error = _SUCCESS
        return True

    def shutdown(self) -> None:
        with self._lock:
            connector, self.connector = self.connector, None
        if connector is not None:
            connector.close()
        self._last_error = _SUCCESS

    def function(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            connector = self.connector
            if connector is None:
                code = _constants.RES_E_INTERNAL_FAIL_CONNECT
                self._last_error = (code, error_text(code))
                return _failure_value(name)
            try:
                result = connector.call(name, *args, **kwargs)
            except MT5Error as exc:
                return self._fail(name, exc)
            self._last_error = _SUCCESS
            return result

        return _ModuleFunction(name, call)


class _ModuleHelpers(MetaTrader5Helpers):
    """``Buy``/``Sell``/``Close``/``_RawOrder`` over the installed module's own functions."""

    def __init__(self, module: types.ModuleType) -> None:
        self._module = module

    def order_send(self, *args: Any, **kwargs: Any) -> Any:
        return self._module.order_send(*args, **kwargs)

    def symbol_info_tick(self, *args: Any) -> Any:
        return self._module.symbol_info_tick(*args)

    def positions_get(self, *args: Any, **kwargs: Any) -> Any:
        return self._module.positions_get(*args, **kwargs)


def _make_module(bridge: _Bridge) -> types.ModuleType:
    from ._mt5.structs import STRUCT_TYPES

    module = types.ModuleType(_MODULE_NAME, "MetaTrader5 over an aiomt5 connector")
    module.__dict__.update(_constants.CONSTANTS)
    module.__dict__.update(STRUCT_TYPES)
    for name in _PASSED_THROUGH:
        setattr(module, name, bridge.function(name))
    helpers = _ModuleHelpers(module)
    for name in HELPER_FUNCTIONS:
        setattr(module, name, getattr(helpers, name))
    for name in ("initialize", "shutdown", "last_error"):
        setattr(module, name, _ModuleFunction(name, getattr(bridge, name)))
    module.__version__ = "5.0.6231"  # type: ignore[attr-defined]
    module.__author__ = "MetaQuotes Ltd."  # type: ignore[attr-defined]
    module.aiomt5_bridge = bridge  # type: ignore[attr-defined]
    return module


def install(settings: MT5Settings | None = None, **overrides: Any) -> types.ModuleType:
    """Register a ``MetaTrader5`` module backed by an aiomt5 connector, and return it.

    Args:
        settings: Base settings (default: ``MT5_*`` variables and ``.env``).
        **overrides: Setting fields, e.g. ``backend="sim"`` or ``call_timeout=5``.
            ``backend`` may also be an object (a ``SimTerminal``, the real module...).
            With ``backend="sim"`` and no ``sim_start``, the simulator's market is open as
            with ``aiomt5.sim.install()`` (a weekend starts at the latest open session, and a
            warning says so).

    Returns:
        The module; ``import MetaTrader5`` returns it too until ``uninstall()``.
    """
    backend = overrides.pop("backend", None)
    if backend is not None and isinstance(backend, str):
        overrides["backend"] = backend
        backend = None
    chosen = settings_with(settings, overrides)
    if backend is None and chosen.backend == "sim":
        chosen = _open_market(chosen)
    bridge = _Bridge(chosen, backend)
    module = _make_module(bridge)
    sys.modules[_MODULE_NAME] = module
    return module


def _open_market(settings: MT5Settings) -> MT5Settings:
    """The simulator's clock as ``aiomt5.sim.install()`` sets it: an open market by default.

    Without ``sim_start``, a wall clock in a closed FX session (a weekend) starts at the same
    hour of the latest open one, with one warning on ``aiomt5.sim``: a legacy script run through
    ``install(backend="sim")`` on a Saturday trades Friday's market, not ``Market closed``.
    """
    from .sim._setup import sim_clock  # the simulator is imported only when it is used

    choice = sim_clock(settings, open_market=True)
    if choice.moved_to is None:
        return settings
    logging.getLogger("aiomt5.sim").warning("aiomt5.sim: %s", choice.note)
    return settings.model_copy(update={"sim_start": datetime.fromtimestamp(choice.moved_to, UTC)})


def uninstall() -> None:
    """Shut down and remove a module registered by ``install()`` (any other one stays)."""
    module = sys.modules.get(_MODULE_NAME)
    bridge = getattr(module, "aiomt5_bridge", None)
    if isinstance(bridge, _Bridge):
        bridge.shutdown()
        del sys.modules[_MODULE_NAME]
