"""What the trading engine may ask the terminal: a narrow, read-only view of the market."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ._spec import SymbolSpec

__all__ = ["MarketView"]


class MarketView(Protocol):
    """The market as the trading engine sees it (implemented by ``SimTerminal``)."""

    def spec(self, symbol: str) -> SymbolSpec | None:
        """The instrument called ``symbol`` (broker name, suffix included), or None."""
        ...

    def quote(self, symbol: str) -> tuple[float, float] | None:
        """Current ``(bid, ask)`` of ``symbol`` at the clock's now, or None (unknown/no data)."""
        ...

    def last_tick(self, symbol: str, now_msc: int) -> tuple[int, float, float, float] | None:
        """``(time_msc, bid, ask, last)`` of the latest tick at or before ``now_msc``."""
        ...

    def ticks(self, symbol: str, from_msc: int, to_msc: int) -> npt.NDArray[np.void]:
        """Every tick (TICKS_DTYPE) with ``from_msc <= time_msc <= to_msc``, oldest first."""
        ...

    def is_open(self, symbol: str, epoch_s: int) -> bool:
        """True when ``symbol`` trades at that moment (sessions, weekends)."""
        ...

    def is_selected(self, symbol: str) -> bool:
        """True when ``symbol`` is in the Market Watch."""
        ...

    @property
    def trade_allowed(self) -> bool:
        """The terminal's AutoTrading toggle (off: requests get ``10027``)."""
        ...

    @property
    def trade_server_connected(self) -> bool:
        """False while the terminal is cut off from the trade server."""
        ...
