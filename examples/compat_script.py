"""Unmodified MetaTrader5 code on any aiomt5 backend, with timeouts and reconnection.

Only the two ``aiomt5.compat`` lines are new: below them is ordinary MetaTrader5 usage. Run it
with::

    python examples/compat_script.py                                # the built-in simulator
    python examples/compat_script.py --backend aiomt5://host:18812  # a remote terminal (+ token)

On the simulator the market clock is pinned to a Wednesday so the example trades on any day.
"""

from __future__ import annotations

import argparse

import aiomt5.compat
from aiomt5.sim import SimClock, SimTerminal

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--backend", default="sim", help="sim, aiomt5://host:port, ...")
args = parser.parse_args()
backend = (
    SimTerminal(seed=1, clock=SimClock.fixed("2026-03-04T12:00:00Z"))
    if args.backend == "sim"
    else args.backend
)
aiomt5.compat.install(backend=backend, call_timeout=10.0)

import MetaTrader5 as mt5  # the module aiomt5.compat registered

if not mt5.initialize():
    print("initialize() failed, error code =", mt5.last_error())
    raise SystemExit(1)

rates = mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M15, 0, 8)
print(f"{len(rates)} M15 bars, last close {rates['close'][-1]}")
tick = mt5.symbol_info_tick("EURUSD")
request = {
    "action": mt5.TRADE_ACTION_DEAL,
    "symbol": "EURUSD",
    "volume": 0.1,
    "type": mt5.ORDER_TYPE_BUY,
    "price": tick.ask,
    "deviation": 20,
    "type_filling": mt5.ORDER_FILLING_IOC,
}
result = mt5.order_send(request)
print("order_send:", result.retcode, result.comment)
position = mt5.positions_get(symbol="EURUSD")[0]
close = {
    **request,
    "type": mt5.ORDER_TYPE_SELL,
    "position": position.ticket,
    "price": mt5.symbol_info_tick("EURUSD").bid,
}
print("close:", mt5.order_send(close).retcode == mt5.TRADE_RETCODE_DONE)
print("positions now:", mt5.positions_total())
print("missing symbol:", mt5.symbol_info("NOSUCH"), mt5.last_error())
mt5.shutdown()
