"""A simulated terminal built from ``MT5Settings``: the one place the ``sim_*`` settings are read.

The connector (``backend="sim"``), ``aiomt5.sim.install()``, ``aiomt5 serve --backend sim`` and
every CLI command build their simulator here, so the same settings mean the same market:

* ``sim_start`` given: the clock starts there and runs at ``sim_speed``.
* not given: the clock follows wall time (sped up by ``sim_speed``, if set). With
  ``open_market=True`` (the CLI, ``install()``), a wall clock that falls in a closed FX session (a
  weekend, say) starts instead at the same hour of the latest open session, and a one-line note
  says so: a user who runs the demo on a Saturday sees Friday's market, not an empty one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from ._clock import SimClock
from ._symbols import find_spec
from ._terminal import SimTerminal

if TYPE_CHECKING:
    from aiomt5._settings import MT5Settings

__all__ = ["SimChoice", "sim_clock", "sim_terminal_from_settings"]

#: The market whose sessions decide "open" for ``open_market``: FX, the one most code trades.
_REFERENCE_SYMBOL: Final = "EURUSD"
#: How long the market must stay open from the chosen start (a demo or a short session fits).
_OPEN_FOR: Final = 3600.0


@dataclass(frozen=True, slots=True)
class SimChoice:
    """A clock for the simulator, and the one line to tell the user when it was moved."""

    clock: SimClock
    note: str | None = None
    #: Where the clock was moved to (epoch seconds), when ``note`` says it was.
    moved_to: float | None = None


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%a %Y-%m-%d %H:%M UTC")


def sim_clock(settings: MT5Settings, *, open_market: bool = False) -> SimChoice:
    """The simulator's clock for ``settings`` (see the module docstring for the rule)."""
    speed = settings.sim_speed
    if settings.sim_start is not None:
        return SimChoice(SimClock.running(settings.sim_start, speed=speed))
    now = time.time()
    if open_market:
        spec = find_spec(_REFERENCE_SYMBOL)
        hours = spec.hours if spec is not None else None
        if hours is not None and not hours.is_open_at(now):
            start = hours.same_time_when_open(now, lasting=_OPEN_FOR)
            if start is not None:
                note = (
                    f"the FX market is closed now ({_stamp(now)}): the simulated clock starts at "
                    f"{_stamp(start)}, the same hour of the latest open session, and runs at "
                    f"x{speed:g} (set MT5_SIM_START to choose)"
                )
                return SimChoice(SimClock.running(start, speed=speed), note, start)
    if speed != 1.0:
        return SimChoice(SimClock.running(now, speed=speed))
    return SimChoice(SimClock.wall())


def sim_terminal_from_settings(
    settings: MT5Settings, *, open_market: bool = False
) -> tuple[SimTerminal, str | None]:
    """A ``SimTerminal`` with the seed, suffix and clock ``settings`` ask for, and the clock's note.

    Args:
        settings: ``sim_seed``, ``sim_start``, ``sim_speed``, ``sim_symbol_suffix``,
            ``sim_hold_gil`` are read.
        open_market: Start a wall clock that falls in a closed session at the latest open one.
    """
    choice = sim_clock(settings, open_market=open_market)
    terminal = SimTerminal(
        seed=settings.sim_seed,
        clock=choice.clock,
        symbol_suffix=settings.sim_symbol_suffix,
        hold_gil=settings.sim_hold_gil,
    )
    return terminal, choice.note
