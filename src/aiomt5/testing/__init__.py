"""Test helpers for code built on aiomt5: a simulated terminal and a connected connector.

The pytest plugin (loaded automatically through the ``pytest11`` entry point; disable it with
``-p no:aiomt5``) provides the fixtures ``aiomt5_sim`` and ``aiomt5_connector`` and the marker
``aiomt5_sim``. Outside pytest, ``sim_terminal()`` and ``sim_settings()`` build the same objects.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["DEFAULT_START", "sim_settings", "sim_terminal"]

DEFAULT_START: Final = "2026-03-04T12:00:00Z"
"""Where the fixtures' frozen clock starts: a Wednesday noon (UTC), with every market open."""


def sim_terminal(
    seed: int = 0,
    *,
    start: Any = DEFAULT_START,
    symbol_suffix: str = "",
    margin_mode: int | None = None,
    maxbars: int = 100_000,
) -> Any:
    """A fresh ``SimTerminal`` whose clock is frozen at ``start`` (move it with ``clock.advance``).

    Returns:
        ``aiomt5.sim.SimTerminal`` (typed as ``Any`` so importing this module stays light).
    """
    from aiomt5.sim import SimClock, SimTerminal  # keeps the plugin import light

    return SimTerminal(
        seed,
        clock=SimClock.fixed(start),
        symbol_suffix=symbol_suffix,
        margin_mode=margin_mode,
        maxbars=maxbars,
    )


def sim_settings(**overrides: Any) -> Any:
    """``MT5Settings`` for tests on the simulator: testing mode (no backoff), short timeouts.

    Returns:
        ``aiomt5.MT5Settings``.
    """
    from aiomt5._settings import MT5Settings

    values: dict[str, Any] = {
        "backend": "sim",
        "testing": True,
        "call_timeout": 10.0,
        "health_check": False,
        **overrides,
    }
    return MT5Settings(**values)
