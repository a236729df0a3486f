"""pdmt5's Mt5DataClient on aiomt5: ``python run_pdmt5.py sim|compat``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from _mode import Checks, install

mode = install()

import MetaTrader5 as mt5  # noqa: E402  (the module install() registered)
from pdmt5 import Mt5Config, Mt5DataClient  # noqa: E402

checks = Checks(f"pdmt5/{mode}")
client = Mt5DataClient(config=Mt5Config(timeout=60000))
client.initialize_and_login_mt5()
tick = mt5.symbol_info_tick("EURUSD")
now = datetime.fromtimestamp(tick.time, UTC)


def frame(name: str, call: Any, min_rows: int = 1) -> None:
    try:
        df = call()
    except Exception as exc:  # any failure of the third-party code is the finding
        checks.record(name, False, f"{type(exc).__name__}: {exc}")
        return
    checks.record(name, len(df) >= min_rows, df.shape)


frame("version", client.version_as_df)
frame("account", client.account_info_as_df)
frame("terminal", client.terminal_info_as_df)
frame("symbols", lambda: client.symbols_get_as_df(group="*USD*"), 5)
frame("symbol_info", lambda: client.symbol_info_as_df("EURUSD"))
frame("tick", lambda: client.symbol_info_tick_as_df("EURUSD"))
mt5.market_book_add("EURUSD")
frame("book", lambda: client.market_book_get_as_df("EURUSD"))
frame("rates_from", lambda: client.copy_rates_from_as_df("EURUSD", mt5.TIMEFRAME_M1, now, 100), 100)
frame("rates_pos", lambda: client.copy_rates_from_pos_as_df("EURUSD", mt5.TIMEFRAME_H1, 0, 50), 50)
frame(
    "rates_range",
    lambda: client.copy_rates_range_as_df("EURUSD", mt5.TIMEFRAME_M5, now - timedelta(days=1), now),
    200,
)
back = now - timedelta(minutes=10)
frame("ticks_from", lambda: client.copy_ticks_from_as_df("EURUSD", back, 500, mt5.COPY_TICKS_ALL))
frame(
    "ticks_range",
    lambda: client.copy_ticks_range_as_df("EURUSD", back, now, mt5.COPY_TICKS_ALL),
)
request = {
    "action": mt5.TRADE_ACTION_DEAL,
    "symbol": "EURUSD",
    "volume": 0.1,
    "type": mt5.ORDER_TYPE_BUY,
    "price": tick.ask,
    "deviation": 20,
    "magic": 7,
    "comment": "pdmt5",
    "type_time": mt5.ORDER_TIME_GTC,
    "type_filling": mt5.ORDER_FILLING_IOC,
}
frame("order_check", lambda: client.order_check_as_df(request))
sent = client.order_send_as_dict(request)
checks.record("order_send", sent["retcode"] == mt5.TRADE_RETCODE_DONE, sent["comment"])
frame("positions", client.positions_get_as_df)
frame("positions_symbol", lambda: client.positions_get_as_df(symbol="EURUSD"))
window = {"date_from": now - timedelta(days=1), "date_to": now + timedelta(days=1)}
frame("history_orders", lambda: client.history_orders_get_as_df(**window))
frame("history_deals", lambda: client.history_deals_get_as_df(**window))
margin = client.order_calc_margin(mt5.ORDER_TYPE_BUY, "EURUSD", 1.0, tick.ask)
checks.record("calc_margin", margin > 0, margin)
profit = client.order_calc_profit(mt5.ORDER_TYPE_BUY, "EURUSD", 1.0, tick.ask, tick.ask + 0.001)
checks.record("calc_profit", abs(profit - 100.0) < 1e-6, profit)
client.shutdown()
checks.finish()
