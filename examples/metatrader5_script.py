"""Plain MetaTrader5 code, unmodified, running on Linux on aiomt5's simulated terminal.

Everything below the two aiomt5 lines is ordinary MetaTrader5 usage as in its documentation:
initialize, inspect the terminal and account, select a symbol, read bars and ticks, send and close
an order. Run it with ``python examples/metatrader5_script.py``.
"""

from datetime import UTC, datetime, timedelta

import aiomt5.sim

aiomt5.sim.install()  # on Windows with a terminal, delete these two lines

import MetaTrader5 as mt5

if not mt5.initialize():
    print("initialize() failed, error code =", mt5.last_error())
    raise SystemExit(1)

print("MetaTrader5 package", mt5.__version__, "terminal", mt5.version())
terminal = mt5.terminal_info()
print("connected:", terminal.connected, "max bars:", terminal.maxbars)
account = mt5.account_info()
print(f"account {account.login} {account.currency} balance={account.balance}")

symbol = "GBPUSD"
if not mt5.symbol_select(symbol, True):
    print("symbol_select failed:", mt5.last_error())
    raise SystemExit(1)

# The trade server's clock (its latest quote), not this machine's: on the simulator at a weekend
# the market shown is the latest open session's.
utc_to = datetime.fromtimestamp(mt5.symbol_info_tick(symbol).time, UTC)
rates = mt5.copy_rates_from(symbol, mt5.TIMEFRAME_H4, utc_to, 6)
print(f"last {len(rates)} H4 bars of {symbol}:")
for bar in rates:
    opened = datetime.fromtimestamp(int(bar["time"]), UTC)
    ohlc = " ".join(f"{k}={bar[k]}" for k in ("open", "high", "low", "close"))
    print(f"  {opened:%Y-%m-%d %H:%M}  {ohlc}")

ticks = mt5.copy_ticks_range(symbol, utc_to - timedelta(minutes=5), utc_to, mt5.COPY_TICKS_ALL)
print(f"{len(ticks)} ticks in the last 5 minutes")

info = mt5.symbol_info(symbol)
tick = mt5.symbol_info_tick(symbol)
request = {
    "action": mt5.TRADE_ACTION_DEAL,
    "symbol": symbol,
    "volume": info.volume_min,
    "type": mt5.ORDER_TYPE_BUY,
    "price": tick.ask,
    "sl": round(tick.ask - 100 * info.point, info.digits),
    "tp": round(tick.ask + 100 * info.point, info.digits),
    "deviation": 20,
    "magic": 234000,
    "comment": "python script open",
    "type_time": mt5.ORDER_TIME_GTC,
    "type_filling": mt5.ORDER_FILLING_IOC,
}
result = mt5.order_send(request)
print("order_send:", result.retcode, result.comment, "deal", result.deal)
if result.retcode != mt5.TRADE_RETCODE_DONE:
    raise SystemExit(1)

print("close:", mt5.Close(symbol, ticket=result.order))
print("positions now:", mt5.positions_total())
mt5.shutdown()
