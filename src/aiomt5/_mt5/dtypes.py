"""MetaTrader5's packed array row types, shared by the simulator and the market-data code."""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = ["RATES_DTYPE", "TICKS_DTYPE"]


def _packed(fields: list[tuple[str, str]]) -> np.dtype[np.void]:
    offsets, offset = [], 0
    for _, fmt in fields:
        offsets.append(offset)
        offset += np.dtype(fmt).itemsize
    return np.dtype(
        {
            "names": [n for n, _ in fields],
            "formats": [f for _, f in fields],
            "offsets": offsets,
            "itemsize": offset,
        }
    )


RATES_DTYPE: Final = _packed(
    [
        ("time", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("tick_volume", "<u8"),
        ("spread", "<i4"),
        ("real_volume", "<u8"),
    ]
)
"""``copy_rates_*`` rows: packed, 60 bytes."""

TICKS_DTYPE: Final = _packed(
    [
        ("time", "<i8"),
        ("bid", "<f8"),
        ("ask", "<f8"),
        ("last", "<f8"),
        ("volume", "<u8"),
        ("time_msc", "<i8"),
        ("flags", "<u4"),
        ("volume_real", "<f8"),
    ]
)
"""``copy_ticks_*`` rows: packed, 60 bytes."""
