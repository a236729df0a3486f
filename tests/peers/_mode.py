"""Install the MetaTrader5 module the way the run asks: ``sim`` or ``compat`` (argv[1])."""

from __future__ import annotations

import os
import sys

# A fixed start: the same market on any day the script runs (the clock runs from there).
os.environ.setdefault("MT5_SIM_START", "2026-03-04T10:00:00Z")
os.environ.setdefault("MT5_SIM_SEED", "7")


def install() -> str:
    mode = sys.argv[1] if len(sys.argv) > 1 else "sim"
    if mode == "sim":
        import aiomt5.sim

        aiomt5.sim.install()
    elif mode == "compat":
        import aiomt5.compat

        aiomt5.compat.install(backend="sim")
    else:
        raise SystemExit(f"usage: {sys.argv[0]} sim|compat")
    return mode


class Checks:
    """Runs named checks, prints one line each, exits 1 at the end if any failed."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.failed: list[str] = []

    def record(self, name: str, ok: bool, detail: object) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {self.label} {name}: {detail}")
        if not ok:
            self.failed.append(name)

    def finish(self) -> None:
        if self.failed:
            raise SystemExit(f"{self.label}: {len(self.failed)} failed: {', '.join(self.failed)}")
        print(f"{self.label}: all passed")
