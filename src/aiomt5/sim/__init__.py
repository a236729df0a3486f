"""The built-in simulated MetaTrader 5 terminal.

``SimTerminal`` is a faithful, deterministic, fault-injectable stand-in for the ``MetaTrader5``
package (5.0.6231): the same functions with the same calling conventions, return types, failure
values and ``last_error()`` texts, over a simulated terminal, trade server and market. On Linux and
in CI it *is* the terminal::

    import aiomt5.sim

    mt5 = aiomt5.sim.install()  # now `import MetaTrader5` gives the simulator
    mt5.initialize()
    print(mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_H1, 0, 10))
"""

from __future__ import annotations

import logging
import sys
import types
from typing import TYPE_CHECKING, Final

from aiomt5._mt5.constants import CONSTANTS
from aiomt5._mt5.functions import API_FUNCTIONS
from aiomt5._mt5.structs import RATES_DTYPE, STRUCT_TYPES, TICKS_DTYPE

from ._account import DEFAULT_LOGIN, DEFAULT_PASSWORD, DEFAULT_SERVER, SimAccount
from ._clock import SimClock
from ._faults import FaultRecord, Faults, Hang
from ._recorded import RecordedSeries, Recording, RecordingError, save_symbol_info
from ._setup import sim_terminal_from_settings
from ._spec import SymbolSpec, TradingHours
from ._symbols import CATALOGUE
from ._terminal import SimTerminal

if TYPE_CHECKING:
    from aiomt5._settings import MT5Settings

__all__ = [
    "API_FUNCTIONS",
    "CATALOGUE",
    "DEFAULT_LOGIN",
    "DEFAULT_PASSWORD",
    "DEFAULT_SERVER",
    "RATES_DTYPE",
    "TICKS_DTYPE",
    "FaultRecord",
    "Faults",
    "Hang",
    "RecordedSeries",
    "Recording",
    "RecordingError",
    "SimAccount",
    "SimClock",
    "SimTerminal",
    "SymbolSpec",
    "TradingHours",
    "install",
    "make_module",
    "save_symbol_info",
    "sim_terminal_from_settings",
    "uninstall",
]


_MODULE_NAME: Final = "MetaTrader5"


def make_module(terminal: SimTerminal | None = None) -> types.ModuleType:
    """A module object that looks like ``MetaTrader5``, backed by ``terminal`` (or a new one)."""
    terminal = terminal if terminal is not None else SimTerminal()
    module = types.ModuleType(_MODULE_NAME, "MetaTrader5 simulated by aiomt5.sim")
    module.__dict__.update(CONSTANTS)
    module.__dict__.update(STRUCT_TYPES)
    for name in API_FUNCTIONS:
        setattr(module, name, getattr(terminal, name))
    module.__version__ = "5.0.6231"  # type: ignore[attr-defined]
    module.__author__ = "MetaQuotes Ltd."  # type: ignore[attr-defined]
    module.terminal = terminal  # type: ignore[attr-defined]
    return module


def install(
    terminal: SimTerminal | None = None, *, settings: MT5Settings | None = None
) -> types.ModuleType:
    """Register a simulated ``MetaTrader5`` module in ``sys.modules`` and return it.

    Unmodified code doing ``import MetaTrader5 as mt5`` then runs on ``terminal``, or on a new
    ``SimTerminal`` built from ``settings`` (default: ``MT5Settings()``, so ``MT5_SIM_SEED``,
    ``MT5_SIM_START``, ``MT5_SIM_SPEED`` apply). Without ``sim_start``, a wall clock that falls
    in a closed FX session starts at the same hour of the latest open one, and one warning line
    (logger ``aiomt5.sim``) says so. ``uninstall()`` undoes it.
    """
    if terminal is None:
        from aiomt5._settings import MT5Settings  # keep `import aiomt5.sim` light

        terminal, note = sim_terminal_from_settings(
            settings if settings is not None else MT5Settings(), open_market=True
        )
        if note is not None:
            logging.getLogger("aiomt5.sim").warning("aiomt5.sim: %s", note)
    module = make_module(terminal)
    sys.modules[_MODULE_NAME] = module
    return module


def uninstall() -> None:
    """Remove a simulated ``MetaTrader5`` module installed by ``install()`` (a real one stays)."""
    module = sys.modules.get(_MODULE_NAME)
    if module is not None and hasattr(module, "terminal"):
        del sys.modules[_MODULE_NAME]
