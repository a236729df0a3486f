"""Trading on the connector itself: the methods are its exactly-once Trader's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import aiomt5
from aiomt5 import AsyncMT5Connector, MT5Settings, MT5TradeError, Trader
from aiomt5.sim import SimClock, SimTerminal

NOW = "2026-03-04T12:00:00Z"


@pytest.fixture
def term() -> SimTerminal:
    return SimTerminal(seed=21, clock=SimClock.fixed(NOW))


@pytest.fixture
async def mt5(term: SimTerminal) -> AsyncIterator[AsyncMT5Connector]:
    settings = MT5Settings(backend="sim", testing=True, health_check=False, call_timeout=5.0)
    async with AsyncMT5Connector(settings, backend=term) as connector:
        yield connector


async def test_connector_has_one_trader(mt5: AsyncMT5Connector) -> None:
    assert isinstance(mt5.trader, Trader)
    assert mt5.trader is mt5.trader
    assert mt5.trader.settle == 0.0  # testing mode: absence is decided at once


async def test_buy_then_close_through_the_connector(mt5: AsyncMT5Connector) -> None:
    opened = await mt5.buy("EURUSD", 0.1, comment="api")
    assert opened.retcode == 10009
    positions = await mt5.positions("EURUSD")
    assert len(positions) == 1
    assert positions[0].volume == pytest.approx(0.1)
    closed = await mt5.close_position(positions[0])
    assert closed.retcode == 10009
    assert await mt5.positions("EURUSD") == ()
    deals = await mt5.history_deals(position=positions[0].ticket)
    assert [d.entry for d in deals] == [0, 1]


async def test_a_lost_reply_still_gives_exactly_one_position(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    term.faults.lose_reply("order_send")
    result = await mt5.sell("GBPUSD", 0.2)
    assert result.retcode == 10009
    assert len(await mt5.positions("GBPUSD")) == 1
    assert term.calls["order_send"] == 1


async def test_refusals_raise_trade_errors_with_the_retcode(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5TradeError) as caught:
        await mt5.buy("EURUSD", 1000.0)
    assert caught.value.retcode_name.startswith("TRADE_RETCODE_")


async def test_pending_order_placed_listed_and_cancelled(mt5: AsyncMT5Connector) -> None:
    tick = await mt5.call("symbol_info_tick", "EURUSD")
    placed = await mt5.place_pending("EURUSD", 2, 0.1, round(tick.bid - 0.005, 5))
    assert placed.retcode == 10008
    orders = await mt5.orders("EURUSD")
    assert len(orders) == 1
    await mt5.cancel_order(orders[0])
    assert await mt5.orders("EURUSD") == ()


def test_trading_names_are_public() -> None:
    for name in ("Trader", "TradeRequest", "OrderResult", "Position", "MT5OrderNotPlacedError"):
        assert name in aiomt5.__all__
