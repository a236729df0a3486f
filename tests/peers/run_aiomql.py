"""aiomql's MetaTrader, Account, Symbol, Order, Positions, History on aiomt5.

``python run_aiomql.py sim|compat`` (aiomql needs Python >= 3.12 and pandas-ta).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

from _mode import Checks, install

mode = install()

import MetaTrader5 as mt5  # noqa: E402  (the module install() registered)
from aiomql import (  # noqa: E402
    Account,
    Config,
    ForexSymbol,
    History,
    MetaTrader,
    Order,
    OrderType,
    Positions,
    TimeFrame,
)

from aiomt5.sim import DEFAULT_LOGIN, DEFAULT_PASSWORD, DEFAULT_SERVER  # noqa: E402

checks = Checks(f"aiomql/{mode}")


async def check(name: str, step: Awaitable[Any], ok: Any = bool) -> Any:
    try:
        result = await step
    except Exception as exc:  # any failure of the third-party code is the finding
        checks.record(name, False, f"{type(exc).__name__}: {exc}")
        return None
    checks.record(name, bool(ok(result)), type(result).__name__)
    return result


async def main() -> None:
    Config(login=DEFAULT_LOGIN, password=DEFAULT_PASSWORD, server=DEFAULT_SERVER)
    await check("initialize", MetaTrader().initialize())
    async with Account() as account:
        checks.record("account", account.login == DEFAULT_LOGIN, account.balance)
        symbol = ForexSymbol(name="EURUSD")
        await check("symbol.initialize", symbol.initialize())
        tick = await check("info_tick", symbol.info_tick())
        now = datetime.fromtimestamp(tick.time, UTC)
        await check(
            "rates_from_pos",
            symbol.copy_rates_from_pos(timeframe=TimeFrame.H1, count=100),
            lambda c: len(c) == 100,
        )
        await check(
            "rates_range",
            symbol.copy_rates_range(
                timeframe=TimeFrame.M5, date_from=now - timedelta(days=1), date_to=now
            ),
            lambda c: len(c) > 100,
        )
        await check(
            "ticks_from",
            symbol.copy_ticks_from(date_from=now - timedelta(minutes=5), count=100),
            lambda t: len(t) > 0,
        )
        await check(
            "convert_currency",
            symbol.convert_currency(amount=100, from_currency="EUR", to_currency="USD"),
            lambda v: v is not None and v > 100,
        )
        order = Order(
            symbol=symbol,
            type=OrderType.BUY,
            volume=0.1,
            price=tick.ask,
            sl=round(tick.ask - 0.002, 5),
            tp=round(tick.ask + 0.002, 5),
            deviation=20,
            type_filling=mt5.ORDER_FILLING_IOC,
        )
        await check("order.check", order.check(), lambda r: r.retcode == 0)
        await check("order.calc_margin", order.calc_margin(), lambda m: m > 0)
        await check("order.send", order.send(), lambda r: r.retcode == mt5.TRADE_RETCODE_DONE)
        positions = Positions()
        await check("positions", positions.get_positions(), lambda p: len(p) == 1)
        await check("close_all", positions.close_all(), lambda n: n == 1)
        history = History(date_from=now - timedelta(days=1), date_to=now + timedelta(days=1))
        await check("history", history.initialize(), lambda _: True)
        checks.record("history.deals", len(history.deals) == 2, len(history.deals))
    checks.finish()


asyncio.run(main())
