"""The simulator's trading engine: requests, execution, and the life of orders and positions.

Most tests drive ``TradingEngine`` over ``FakeMarket``, a MarketView whose ticks the test writes,
so every price and trigger is exact. The last ones go through ``SimTerminal`` end to end.
"""

from __future__ import annotations

import bisect
import dataclasses
import random
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from aiomt5._mt5 import constants as c
from aiomt5._mt5.structs import TICKS_DTYPE, TradeRequest
from aiomt5.sim import DEFAULT_LOGIN, DEFAULT_PASSWORD, DEFAULT_SERVER, SimClock, SimTerminal, _calc
from aiomt5.sim._account import AccountBook, SimAccount
from aiomt5.sim._spec import SymbolSpec
from aiomt5.sim._trading import RETCODE_COMMENTS, AccountFigures, TradingEngine

T0 = int(datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp() * 1000)  # a Monday, 10:00 UTC
MIN = 60_000

EURUSD = SymbolSpec(
    name="EURUSD",
    description="Euro vs US Dollar",
    path="Forex\\EURUSD",
    currency_base="EUR",
    currency_profit="USD",
    currency_margin="EUR",
    digits=5,
    contract_size=100_000.0,
    volume_max=50.0,
)
USDJPY = dataclasses.replace(
    EURUSD,
    name="USDJPY",
    path="Forex\\USDJPY",
    currency_base="USD",
    currency_profit="JPY",
    currency_margin="USD",
    digits=3,
)
# Instant execution, FOK only, a stops level: requotes and stop distances.
EURCHF = dataclasses.replace(
    EURUSD,
    name="EURCHF",
    currency_profit="CHF",
    exemode=c.SYMBOL_TRADE_EXECUTION_INSTANT,
    filling_mode=1,
    stops_level=10,
)
USDCHF = dataclasses.replace(
    EURUSD, name="USDCHF", currency_base="USD", currency_profit="CHF", currency_margin="USD"
)
# Exchange-style stock: IOC only, request execution, a freeze level.
STOCK = dataclasses.replace(
    EURUSD,
    name="STOCK",
    calc_mode=c.SYMBOL_CALC_MODE_CFD,
    currency_base="USD",
    currency_margin="USD",
    digits=2,
    contract_size=1.0,
    volume_min=1.0,
    volume_step=1.0,
    volume_max=10_000.0,
    exemode=c.SYMBOL_TRADE_EXECUTION_REQUEST,
    filling_mode=2,
    freeze_level=50,
)
SPECS = (EURUSD, USDJPY, EURCHF, USDCHF, STOCK)
START_PRICES = {
    "EURUSD": (1.10000, 1.10010),
    "USDJPY": (150.000, 150.010),
    "EURCHF": (0.95000, 0.95020),
    "USDCHF": (0.86000, 0.86010),
    "STOCK": (100.00, 100.05),
}


class FakeMarket:
    """A MarketView whose ticks, sessions and switches the test sets."""

    def __init__(self, specs: Iterable[SymbolSpec] = SPECS) -> None:
        self.specs = {s.name: s for s in specs}
        self.series: dict[str, list[tuple[int, float, float]]] = {}
        self.selected = set(self.specs)
        self.closed: set[str] = set()
        self.trade_allowed = True
        self.trade_server_connected = True
        self.now = T0
        self.tick_reads = 0
        for name, (bid, ask) in START_PRICES.items():
            if name in self.specs:
                self.tick(name, bid, ask, at=T0 - 1000)

    def tick(self, symbol: str, bid: float, ask: float | None = None, *, at: int) -> None:
        """Add a tick (``ask`` keeps the last spread when omitted)."""
        series = self.series.setdefault(symbol, [])
        if ask is None:
            spread = series[-1][2] - series[-1][1]
            ask = round(bid + spread, self.specs[symbol].digits)
        assert not series or series[-1][0] < at, "ticks must be added in time order"
        series.append((at, bid, ask))

    # MarketView -----------------------------------------------------------------
    def spec(self, symbol: str) -> SymbolSpec | None:
        return self.specs.get(symbol)

    def quote(self, symbol: str) -> tuple[float, float] | None:
        tick = self.last_tick(symbol, self.now)
        return None if tick is None else (tick[1], tick[2])

    def last_tick(self, symbol: str, now_msc: int) -> tuple[int, float, float, float] | None:
        series = self.series.get(symbol)
        if not series:
            return None
        index = bisect.bisect_right(series, (now_msc, float("inf"), float("inf"))) - 1
        if index < 0:
            return None
        at, bid, ask = series[index]
        return (at, bid, ask, 0.0)

    def ticks(self, symbol: str, from_msc: int, to_msc: int) -> npt.NDArray[np.void]:
        self.tick_reads += 1
        rows = [t for t in self.series.get(symbol, []) if from_msc <= t[0] <= to_msc]
        out = np.zeros(len(rows), dtype=TICKS_DTYPE)
        for i, (at, bid, ask) in enumerate(rows):
            out[i] = (at // 1000, bid, ask, 0.0, 0, at, c.TICK_FLAG_BID | c.TICK_FLAG_ASK, 0.0)
        return out

    def is_open(self, symbol: str, epoch_s: int) -> bool:
        return symbol not in self.closed

    def is_selected(self, symbol: str) -> bool:
        return symbol in self.selected


def request(**fields: Any) -> Any:
    """A ``TradeRequest`` with MT5's defaults for the fields not given."""
    values: dict[str, Any] = dict.fromkeys(TradeRequest._field_names, 0)
    values.update(dict.fromkeys(("volume", "price", "stoplimit", "sl", "tp"), 0.0))
    values.update(symbol="", comment="")
    values.update(fields)
    return TradeRequest(tuple(values[f] for f in TradeRequest._field_names))


def account(**overrides: Any) -> SimAccount:
    return SimAccount(login=5_000_001, password="x", **overrides)


NETTING = {"margin_mode": c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING}


class Desk:
    """An engine, a book and a fake market, with shorthands for the common requests."""

    def __init__(self, **account_overrides: Any) -> None:
        self.market = FakeMarket()
        self.engine = TradingEngine(self.market)
        self.book = AccountBook(account(**account_overrides))
        self.now = T0

    def send(self, **fields: Any) -> Any:
        return self.engine.send(self.book, request(**fields), self.now)

    def check(self, **fields: Any) -> Any:
        return self.engine.check(self.book, request(**fields), self.now)

    def buy(self, volume: float = 1.0, symbol: str = "EURUSD", **fields: Any) -> Any:
        return self.send(
            action=c.TRADE_ACTION_DEAL, symbol=symbol, volume=volume, type=c.ORDER_TYPE_BUY,
            **fields,
        )  # fmt: skip

    def sell(self, volume: float = 1.0, symbol: str = "EURUSD", **fields: Any) -> Any:
        return self.send(
            action=c.TRADE_ACTION_DEAL, symbol=symbol, volume=volume, type=c.ORDER_TYPE_SELL,
            **fields,
        )  # fmt: skip

    def pending(self, order_type: int, price: float, volume: float = 1.0, **fields: Any) -> Any:
        fields.setdefault("symbol", "EURUSD")
        fields.setdefault("type_filling", c.ORDER_FILLING_RETURN)
        return self.send(
            action=c.TRADE_ACTION_PENDING, type=order_type, price=price, volume=volume, **fields
        )

    def tick(self, symbol: str, bid: float, ask: float | None = None, *, after: int = 1000) -> None:
        """A tick ``after`` ms past the current time, which then becomes "now"."""
        self.now += after
        self.market.now = self.now
        self.market.tick(symbol, bid, ask, at=self.now)

    def sync(self, advance: int = 0) -> None:
        self.now += advance
        self.market.now = self.now
        self.engine.sync(self.book, self.now)

    def quote(self) -> Any:
        return self.market.quote


@pytest.fixture
def desk() -> Desk:
    return Desk()


@pytest.fixture
def netting() -> Desk:
    return Desk(**NETTING)


def calc_profit(
    desk: Desk, symbol: str, order_type: int, volume: float, po: float, pc: float
) -> float:
    value = _calc.profit(
        desk.market.specs[symbol], order_type, volume, po, pc,
        account_currency="USD", quote=desk.market.quote,
    )  # fmt: skip
    assert value is not None
    return round(value, 2)


# ====================================================================== market deals
def test_market_buy_fills_at_the_ask(desk: Desk) -> None:
    result = desk.buy(1.0)
    assert result.retcode == c.TRADE_RETCODE_DONE
    assert result.price == 1.10010
    assert desk.book.positions[result.order].price_open == 1.10010


def test_market_sell_fills_at_the_bid(desk: Desk) -> None:
    assert desk.sell(1.0).price == 1.10000


def test_deal_result_reports_tickets_prices_comment_and_echoes_the_request(desk: Desk) -> None:
    first = desk.buy(0.5, magic=7, comment="tag")
    second = desk.buy(0.5)
    assert first.retcode == c.TRADE_RETCODE_DONE
    assert first.comment == "Request executed"
    assert (first.volume, first.bid, first.ask) == (0.5, 1.10000, 1.10010)
    assert first.deal == desk.book.deals[0].ticket
    assert first.order == desk.book.history_orders[0].ticket
    assert first.retcode_external == 0
    assert first.request.comment == "tag"
    assert first.request.magic == 7
    assert second.request_id == first.request_id + 1


def test_market_order_leaves_a_filled_history_order_and_an_in_deal(desk: Desk) -> None:
    result = desk.buy(1.0, magic=42, comment="mine")
    (order,) = desk.book.history_orders
    (deal,) = desk.book.deals
    assert order.ticket == result.order
    assert order.state == c.ORDER_STATE_FILLED
    assert order.time_done_msc == desk.now
    assert order.volume_current == 0.0
    assert order.position_id == result.order
    assert (deal.order, deal.entry, deal.type) == (result.order, c.DEAL_ENTRY_IN, c.DEAL_TYPE_BUY)
    assert (deal.magic, deal.comment, deal.reason) == (42, "mine", c.DEAL_REASON_EXPERT)
    assert deal.position_id == result.order


def test_position_identifier_is_the_opening_order_ticket(desk: Desk) -> None:
    result = desk.sell(1.0, magic=3, comment="c")
    position = desk.book.positions[result.order]
    assert position.identifier == position.ticket == result.order
    assert (position.magic, position.comment) == (3, "c")
    assert position.reason == c.POSITION_REASON_EXPERT


def test_tickets_come_from_one_sequence_and_are_never_reused(desk: Desk) -> None:
    tickets = [desk.buy(0.1) for _ in range(3)]
    seen = [t.order for t in tickets] + [t.deal for t in tickets]
    assert len(set(seen)) == 6


def test_hedging_close_with_position_realises_the_profit_into_the_balance(desk: Desk) -> None:
    opened = desk.buy(1.0)
    desk.tick("EURUSD", 1.10110, 1.10120)
    closed = desk.sell(1.0, position=opened.order)
    assert closed.retcode == c.TRADE_RETCODE_DONE
    assert opened.order not in desk.book.positions
    deal = desk.book.deals[-1]
    assert (deal.entry, deal.type, deal.position_id) == (
        c.DEAL_ENTRY_OUT,
        c.DEAL_TYPE_SELL,
        opened.order,
    )
    assert deal.profit == calc_profit(desk, "EURUSD", c.ORDER_TYPE_BUY, 1.0, 1.10010, 1.10110)
    assert deal.profit == pytest.approx(100.0)
    assert desk.book.balance == pytest.approx(10_100.0)


def test_hedging_partial_close_keeps_the_rest_of_the_position(desk: Desk) -> None:
    opened = desk.buy(1.0)
    desk.sell(0.4, position=opened.order)
    assert desk.book.positions[opened.order].volume == pytest.approx(0.6)


def test_hedging_opens_a_second_position_per_symbol(desk: Desk) -> None:
    desk.buy(1.0)
    desk.sell(1.0)
    assert sorted(p.type for p in desk.book.positions.values()) == [0, 1]


def test_closing_more_than_the_position_is_10038(desk: Desk) -> None:
    opened = desk.buy(0.5)
    assert desk.sell(1.0, position=opened.order).retcode == c.TRADE_RETCODE_INVALID_CLOSE_VOLUME


def test_closing_an_unknown_position_is_10036(desk: Desk) -> None:
    assert desk.sell(1.0, position=999).retcode == c.TRADE_RETCODE_POSITION_CLOSED


def test_closing_with_a_deal_in_the_same_direction_is_invalid(desk: Desk) -> None:
    opened = desk.buy(1.0)
    assert desk.buy(1.0, position=opened.order).retcode == c.TRADE_RETCODE_INVALID


def test_market_execution_ignores_the_request_price(desk: Desk) -> None:
    result = desk.buy(1.0, price=1.5, deviation=0)
    assert (result.retcode, result.price) == (c.TRADE_RETCODE_DONE, 1.10010)


# ====================================================================== netting
def test_netting_deal_in_the_same_direction_averages_the_position(netting: Desk) -> None:
    first = netting.buy(1.0)
    netting.tick("EURUSD", 1.10100, 1.10110)
    second = netting.buy(3.0)
    (position,) = netting.book.positions.values()
    assert position.ticket == position.identifier == first.order
    assert position.volume == 4.0
    assert position.price_open == pytest.approx((1.10010 + 3 * 1.10110) / 4)
    assert netting.book.deals[-1].position_id == first.order
    assert netting.book.history_orders[-1].position_id == first.order
    assert second.order != first.order


def test_netting_smaller_opposite_deal_reduces_with_an_out_deal(netting: Desk) -> None:
    first = netting.buy(1.0)
    netting.sell(0.3)
    (position,) = netting.book.positions.values()
    assert position.volume == pytest.approx(0.7)
    assert netting.book.deals[-1].entry == c.DEAL_ENTRY_OUT
    assert netting.book.deals[-1].position_id == first.order


def test_netting_equal_opposite_deal_closes_the_position(netting: Desk) -> None:
    netting.buy(1.0)
    netting.sell(1.0)
    assert not netting.book.positions
    assert netting.book.deals[-1].entry == c.DEAL_ENTRY_OUT


def test_netting_larger_opposite_deal_reverses_with_an_inout_deal(netting: Desk) -> None:
    first = netting.buy(1.0)
    netting.tick("EURUSD", 1.10200, 1.10210)
    netting.sell(3.0, sl=1.11000)
    (position,) = netting.book.positions.values()
    assert position.type == c.POSITION_TYPE_SELL
    assert position.volume == pytest.approx(2.0)
    assert position.price_open == 1.10200
    assert position.identifier == first.order
    assert position.sl == 1.11000
    deal = netting.book.deals[-1]
    assert (deal.entry, deal.volume, deal.position_id) == (c.DEAL_ENTRY_INOUT, 3.0, first.order)
    # Only the closed lot realises profit: 1 lot from 1.10010 to 1.10200.
    assert deal.profit == calc_profit(netting, "EURUSD", c.ORDER_TYPE_BUY, 1.0, 1.10010, 1.10200)


def test_netting_deal_volumes_balance_per_position_after_reversal_and_close(netting: Desk) -> None:
    netting.buy(1.0)
    netting.sell(3.0)
    netting.buy(2.0)
    assert not netting.book.positions
    signed = sum(d.volume * (1 if d.type == c.DEAL_TYPE_BUY else -1) for d in netting.book.deals)
    assert signed == pytest.approx(0.0)


def test_netting_close_by_is_invalid(netting: Desk) -> None:
    first = netting.buy(1.0)
    result = netting.send(action=c.TRADE_ACTION_CLOSE_BY, position=first.order, position_by=1)
    assert result.retcode == c.TRADE_RETCODE_INVALID


# ====================================================================== close by
def test_close_by_closes_the_overlap_with_two_out_by_deals(desk: Desk) -> None:
    buy = desk.buy(1.0)  # at 1.10010
    desk.tick("EURUSD", 1.10300, 1.10310)
    sell = desk.sell(0.4)  # at 1.10300
    result = desk.send(
        action=c.TRADE_ACTION_CLOSE_BY, position=buy.order, position_by=sell.order, magic=5
    )
    assert result.retcode == c.TRADE_RETCODE_DONE
    assert sell.order not in desk.book.positions
    assert desk.book.positions[buy.order].volume == pytest.approx(0.6)
    order = desk.book.history_orders[-1]
    assert (order.type, order.state) == (c.ORDER_TYPE_CLOSE_BY, c.ORDER_STATE_FILLED)
    assert (order.position_id, order.position_by_id) == (buy.order, sell.order)
    first, second = desk.book.deals[-2:]
    assert {first.entry, second.entry} == {c.DEAL_ENTRY_OUT_BY}
    assert (first.position_id, second.position_id) == (buy.order, sell.order)
    assert (first.type, second.type) == (c.DEAL_TYPE_SELL, c.DEAL_TYPE_BUY)
    # The pair realises the locked-in difference of 0.4 lot between 1.10010 and 1.10300.
    assert first.profit + second.profit == pytest.approx(0.4 * 100_000 * (1.10300 - 1.10010))
    assert result.deal == first.ticket


def test_close_by_of_two_positions_in_the_same_direction_is_invalid(desk: Desk) -> None:
    a, b = desk.buy(1.0), desk.buy(1.0)
    result = desk.send(action=c.TRADE_ACTION_CLOSE_BY, position=a.order, position_by=b.order)
    assert result.retcode == c.TRADE_RETCODE_INVALID


def test_close_by_with_an_unknown_position_is_10036(desk: Desk) -> None:
    a = desk.buy(1.0)
    result = desk.send(action=c.TRADE_ACTION_CLOSE_BY, position=a.order, position_by=12345)
    assert result.retcode == c.TRADE_RETCODE_POSITION_CLOSED


# ====================================================================== pending orders
PENDING_OK = [
    (c.ORDER_TYPE_BUY_LIMIT, 1.09000, 0.0),
    (c.ORDER_TYPE_SELL_LIMIT, 1.11000, 0.0),
    (c.ORDER_TYPE_BUY_STOP, 1.11000, 0.0),
    (c.ORDER_TYPE_SELL_STOP, 1.09000, 0.0),
    (c.ORDER_TYPE_BUY_STOP_LIMIT, 1.11000, 1.10500),
    (c.ORDER_TYPE_SELL_STOP_LIMIT, 1.09000, 1.09500),
]


@pytest.mark.parametrize(("order_type", "price", "stoplimit"), PENDING_OK)
def test_pending_order_is_placed_with_10008(
    desk: Desk, order_type: int, price: float, stoplimit: float
) -> None:
    result = desk.pending(order_type, price, stoplimit=stoplimit, magic=9, comment="p")
    assert result.retcode == c.TRADE_RETCODE_PLACED
    order = desk.book.orders[result.order]
    assert (order.type, order.state, order.price_open) == (order_type, c.ORDER_STATE_PLACED, price)
    assert (order.magic, order.comment, order.volume_current) == (9, "p", 1.0)
    assert order.price_stoplimit == stoplimit
    assert not desk.book.deals


@pytest.mark.parametrize(
    ("order_type", "price", "stoplimit"),
    [
        (c.ORDER_TYPE_BUY_LIMIT, 1.11000, 0.0),
        (c.ORDER_TYPE_SELL_LIMIT, 1.09000, 0.0),
        (c.ORDER_TYPE_BUY_STOP, 1.09000, 0.0),
        (c.ORDER_TYPE_SELL_STOP, 1.11000, 0.0),
        (c.ORDER_TYPE_BUY_STOP_LIMIT, 1.09000, 1.08500),
        (c.ORDER_TYPE_BUY_STOP_LIMIT, 1.11000, 1.11500),  # limit above its stop
        (c.ORDER_TYPE_SELL_STOP_LIMIT, 1.09000, 0.0),  # no limit price
        (c.ORDER_TYPE_BUY_LIMIT, 0.0, 0.0),
        (c.ORDER_TYPE_BUY_LIMIT, 1.090005, 0.0),  # finer than the point
    ],
)
def test_pending_order_price_on_the_wrong_side_or_zero_is_10015(
    desk: Desk, order_type: int, price: float, stoplimit: float
) -> None:
    result = desk.pending(order_type, price, stoplimit=stoplimit)
    assert result.retcode == c.TRADE_RETCODE_INVALID_PRICE
    assert not desk.book.orders


def test_pending_action_with_a_market_type_is_10035(desk: Desk) -> None:
    assert desk.pending(c.ORDER_TYPE_BUY, 1.09).retcode == c.TRADE_RETCODE_INVALID_ORDER


def test_deal_action_with_a_pending_type_is_10035(desk: Desk) -> None:
    result = desk.send(
        action=c.TRADE_ACTION_DEAL, symbol="EURUSD", volume=1.0, type=c.ORDER_TYPE_BUY_LIMIT
    )
    assert result.retcode == c.TRADE_RETCODE_INVALID_ORDER


def test_order_type_the_symbol_does_not_allow_is_10035(desk: Desk) -> None:
    desk.market.specs["EURUSD"] = dataclasses.replace(EURUSD, order_mode=1 | 2 | 4)
    result = desk.pending(c.ORDER_TYPE_BUY_STOP_LIMIT, 1.11, stoplimit=1.105)
    assert result.retcode == c.TRADE_RETCODE_INVALID_ORDER


def test_buy_limit_fills_when_the_ask_falls_to_its_price(desk: Desk) -> None:
    placed = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09900, sl=1.09000, magic=4, comment="bl")
    desk.tick("EURUSD", 1.09950, 1.09960)
    desk.sync()
    assert placed.order in desk.book.orders
    desk.tick("EURUSD", 1.09880, 1.09890)
    at = desk.now
    desk.tick("EURUSD", 1.09700, 1.09710)
    desk.sync()
    assert not desk.book.orders
    position = desk.book.positions[placed.order]
    assert position.identifier == placed.order
    assert (position.price_open, position.time_msc, position.sl) == (1.09890, at, 1.09000)
    order = desk.book.history_orders[-1]
    assert (order.ticket, order.state, order.time_done_msc) == (
        placed.order,
        c.ORDER_STATE_FILLED,
        at,
    )
    deal = desk.book.deals[-1]
    assert (deal.order, deal.entry, deal.time_msc, deal.magic, deal.comment) == (
        placed.order,
        c.DEAL_ENTRY_IN,
        at,
        4,
        "bl",
    )


@pytest.mark.parametrize(
    ("order_type", "price", "path", "fill"),
    [
        (c.ORDER_TYPE_SELL_LIMIT, 1.10100, [1.10050, 1.10105], 1.10105),
        (c.ORDER_TYPE_BUY_STOP, 1.10100, [1.10050, 1.10095], 1.10105),
        (c.ORDER_TYPE_SELL_STOP, 1.09900, [1.09950, 1.09890], 1.09890),
    ],
)
def test_pending_order_fills_at_the_triggering_tick(
    desk: Desk, order_type: int, price: float, path: list[float], fill: float
) -> None:
    placed = desk.pending(order_type, price)
    for bid in path:
        desk.tick("EURUSD", bid)
    desk.sync()
    assert desk.book.positions[placed.order].price_open == fill


def test_stop_limit_becomes_a_limit_order_then_fills_at_its_limit_price(desk: Desk) -> None:
    placed = desk.pending(c.ORDER_TYPE_BUY_STOP_LIMIT, 1.10100, stoplimit=1.10050)
    desk.tick("EURUSD", 1.10095, 1.10105)  # ask above the stop: becomes a buy limit at 1.10050
    desk.sync()
    order = desk.book.orders[placed.order]
    assert (order.type, order.price_open) == (c.ORDER_TYPE_BUY_LIMIT, 1.10050)
    desk.tick("EURUSD", 1.10040, 1.10050)
    desk.sync()
    assert desk.book.positions[placed.order].price_open == 1.10050


def test_pending_order_in_one_sync_window_triggers_then_hits_its_tp(desk: Desk) -> None:
    placed = desk.pending(c.ORDER_TYPE_BUY_STOP, 1.10100, tp=1.10300)
    desk.tick("EURUSD", 1.10100, 1.10110)
    desk.tick("EURUSD", 1.10310, 1.10320)
    desk.sync()
    assert not desk.book.positions
    assert [d.entry for d in desk.book.deals] == [c.DEAL_ENTRY_IN, c.DEAL_ENTRY_OUT]
    assert desk.book.deals[-1].reason == c.DEAL_REASON_TP
    assert desk.book.deals[-1].position_id == placed.order


def test_remove_cancels_a_pending_order_into_the_history(desk: Desk) -> None:
    placed = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09)
    result = desk.send(action=c.TRADE_ACTION_REMOVE, order=placed.order)
    assert (result.retcode, result.order) == (c.TRADE_RETCODE_DONE, placed.order)
    assert not desk.book.orders
    order = desk.book.history_orders[-1]
    assert (order.ticket, order.state, order.time_done_msc) == (
        placed.order,
        c.ORDER_STATE_CANCELED,
        desk.now,
    )


def test_remove_or_modify_of_an_unknown_order_is_10035(desk: Desk) -> None:
    assert desk.send(action=c.TRADE_ACTION_REMOVE, order=4).retcode == c.TRADE_RETCODE_INVALID_ORDER
    result = desk.send(action=c.TRADE_ACTION_MODIFY, order=4, price=1.0)
    assert result.retcode == c.TRADE_RETCODE_INVALID_ORDER


def test_modify_moves_a_pending_order(desk: Desk) -> None:
    placed = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09)
    result = desk.send(action=c.TRADE_ACTION_MODIFY, order=placed.order, price=1.08, sl=1.07)
    assert result.retcode == c.TRADE_RETCODE_DONE
    order = desk.book.orders[placed.order]
    assert (order.price_open, order.sl, order.state) == (1.08, 1.07, c.ORDER_STATE_PLACED)


def test_modify_with_the_same_values_is_10025(desk: Desk) -> None:
    placed = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09, sl=1.08)
    result = desk.send(action=c.TRADE_ACTION_MODIFY, order=placed.order, price=1.09, sl=1.08)
    assert result.retcode == c.TRADE_RETCODE_NO_CHANGES


def test_modify_to_the_wrong_side_is_10015(desk: Desk) -> None:
    placed = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09)
    result = desk.send(action=c.TRADE_ACTION_MODIFY, order=placed.order, price=1.2)
    assert result.retcode == c.TRADE_RETCODE_INVALID_PRICE


# ====================================================================== expiration
def test_specified_expiration_expires_the_order_at_that_time(desk: Desk) -> None:
    expiry_s = (T0 + 5 * MIN) // 1000
    placed = desk.pending(
        c.ORDER_TYPE_BUY_LIMIT, 1.09, type_time=c.ORDER_TIME_SPECIFIED, expiration=expiry_s
    )
    assert desk.book.orders[placed.order].time_expiration == expiry_s
    desk.sync(4 * MIN)
    assert placed.order in desk.book.orders
    desk.sync(2 * MIN)
    order = desk.book.history_orders[-1]
    assert (order.ticket, order.state, order.time_done_msc) == (
        placed.order,
        c.ORDER_STATE_EXPIRED,
        expiry_s * 1000,
    )


def test_day_order_expires_at_the_end_of_the_server_day(desk: Desk) -> None:
    placed = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09, type_time=c.ORDER_TIME_DAY)
    midnight = (T0 // 86_400_000 + 1) * 86_400_000
    desk.sync(midnight - T0 - 1)
    assert placed.order in desk.book.orders
    desk.sync(1)
    assert desk.book.history_orders[-1].state == c.ORDER_STATE_EXPIRED


def test_specified_day_order_lives_to_the_end_of_that_day(desk: Desk) -> None:
    placed = desk.pending(
        c.ORDER_TYPE_BUY_LIMIT, 1.09, type_time=c.ORDER_TIME_SPECIFIED_DAY,
        expiration=T0 // 1000 + 86_400,
    )  # fmt: skip
    end = (T0 // 86_400_000 + 2) * 86_400_000
    desk.sync(end - T0 - 1)
    assert placed.order in desk.book.orders
    desk.sync(1)
    assert not desk.book.orders


def test_expiration_in_the_past_is_10022(desk: Desk) -> None:
    result = desk.pending(
        c.ORDER_TYPE_BUY_LIMIT, 1.09, type_time=c.ORDER_TIME_SPECIFIED, expiration=T0 // 1000
    )
    assert result.retcode == c.TRADE_RETCODE_INVALID_EXPIRATION


def test_expiration_kind_the_symbol_does_not_allow_is_10022(desk: Desk) -> None:
    desk.market.specs["EURUSD"] = dataclasses.replace(EURUSD, expiration_mode=1)
    result = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09, type_time=c.ORDER_TIME_DAY)
    assert result.retcode == c.TRADE_RETCODE_INVALID_EXPIRATION


def test_order_that_fills_before_its_expiry_does_not_expire(desk: Desk) -> None:
    placed = desk.pending(
        c.ORDER_TYPE_BUY_LIMIT, 1.09990, type_time=c.ORDER_TIME_SPECIFIED,
        expiration=(T0 + MIN) // 1000,
    )  # fmt: skip
    desk.tick("EURUSD", 1.09980, 1.09990, after=30_000)
    desk.sync(MIN)
    assert placed.order in desk.book.positions
    assert desk.book.history_orders[-1].state == c.ORDER_STATE_FILLED


# ====================================================================== SL / TP
def test_sl_of_a_buy_triggers_on_the_bid_and_closes_with_reason_sl(desk: Desk) -> None:
    opened = desk.buy(1.0, sl=1.09500, tp=1.10500, magic=8)
    desk.tick("EURUSD", 1.09600)
    desk.tick("EURUSD", 1.09490)
    at = desk.now
    desk.sync(MIN)
    assert not desk.book.positions
    deal = desk.book.deals[-1]
    assert (deal.reason, deal.entry, deal.price, deal.time_msc) == (
        c.DEAL_REASON_SL,
        c.DEAL_ENTRY_OUT,
        1.09490,
        at,
    )
    assert (deal.position_id, deal.magic) == (opened.order, 8)
    assert deal.comment == "[sl 1.09500]"
    order = desk.book.history_orders[-1]
    assert (order.reason, order.type, order.position_id) == (
        c.ORDER_REASON_SL,
        c.ORDER_TYPE_SELL,
        opened.order,
    )
    assert desk.book.balance == pytest.approx(10_000 + deal.profit)
    assert deal.profit == calc_profit(desk, "EURUSD", c.ORDER_TYPE_BUY, 1.0, 1.10010, 1.09490)


def test_tp_of_a_sell_triggers_on_the_ask(desk: Desk) -> None:
    desk.sell(1.0, tp=1.09500)
    desk.tick("EURUSD", 1.09495, 1.09505)  # bid below the TP, ask not yet
    desk.sync()
    assert desk.book.positions
    desk.tick("EURUSD", 1.09490, 1.09500)
    desk.sync()
    assert not desk.book.positions
    assert desk.book.deals[-1].reason == c.DEAL_REASON_TP
    assert desk.book.deals[-1].type == c.DEAL_TYPE_BUY


def test_sl_that_a_gap_jumps_fills_at_the_gap_price(desk: Desk) -> None:
    desk.buy(1.0, sl=1.09500)
    desk.tick("EURUSD", 1.09000)
    desk.sync()
    assert desk.book.deals[-1].price == 1.09000


def test_events_are_handled_in_time_order_across_symbols(desk: Desk) -> None:
    eur = desk.buy(1.0, sl=1.09500)
    jpy = desk.buy(1.0, symbol="USDJPY", tp=150.500)
    desk.tick("USDJPY", 150.600, 150.610)
    desk.tick("EURUSD", 1.09400)
    desk.sync()
    closed = [d.position_id for d in desk.book.deals if d.entry == c.DEAL_ENTRY_OUT]
    assert closed == [jpy.order, eur.order]


def test_sltp_sets_the_stops_of_a_position(desk: Desk) -> None:
    opened = desk.buy(1.0)
    result = desk.send(
        action=c.TRADE_ACTION_SLTP, position=opened.order, symbol="EURUSD", sl=1.09, tp=1.2
    )
    assert result.retcode == c.TRADE_RETCODE_DONE
    position = desk.book.positions[opened.order]
    assert (position.sl, position.tp) == (1.09, 1.2)
    assert len(desk.book.deals) == 1


def test_sltp_on_netting_finds_the_position_by_symbol(netting: Desk) -> None:
    netting.sell(1.0)
    result = netting.send(action=c.TRADE_ACTION_SLTP, symbol="EURUSD", sl=1.2)
    assert result.retcode == c.TRADE_RETCODE_DONE
    assert next(iter(netting.book.positions.values())).sl == 1.2


def test_sltp_with_unchanged_values_is_10025(desk: Desk) -> None:
    opened = desk.buy(1.0, sl=1.09)
    result = desk.send(action=c.TRADE_ACTION_SLTP, position=opened.order, sl=1.09)
    assert result.retcode == c.TRADE_RETCODE_NO_CHANGES


def test_sltp_of_an_unknown_position_is_10036(desk: Desk) -> None:
    result = desk.send(action=c.TRADE_ACTION_SLTP, position=77, sl=1.09)
    assert result.retcode == c.TRADE_RETCODE_POSITION_CLOSED


@pytest.mark.parametrize(
    ("sl", "tp"),
    [
        (1.10100, 0.0),  # buy SL above the bid
        (0.0, 1.09900),  # buy TP below the bid
        (1.10000, 0.0),  # SL at the bid itself
        (-1.0, 0.0),
    ],
)
def test_stops_on_the_wrong_side_are_10016(desk: Desk, sl: float, tp: float) -> None:
    assert desk.buy(1.0, sl=sl, tp=tp).retcode == c.TRADE_RETCODE_INVALID_STOPS
    opened = desk.buy(1.0)
    result = desk.send(action=c.TRADE_ACTION_SLTP, position=opened.order, sl=sl, tp=tp)
    assert result.retcode == c.TRADE_RETCODE_INVALID_STOPS


def test_stops_inside_the_stops_level_are_10016() -> None:
    desk = Desk()
    # EURCHF: stops level 10 points; a buy closes at the bid 0.95000.
    common: dict[str, Any] = {
        "symbol": "EURCHF",
        "price": 0.95020,
        "type_filling": c.ORDER_FILLING_FOK,
    }
    assert desk.buy(1.0, sl=0.94995, **common).retcode == c.TRADE_RETCODE_INVALID_STOPS
    assert desk.buy(1.0, sl=0.94990, **common).retcode == c.TRADE_RETCODE_DONE


def test_pending_order_price_inside_the_stops_level_is_10015(desk: Desk) -> None:
    # EURCHF: stops level 10 points from the ask 0.95020.
    near = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 0.95015, symbol="EURCHF")
    assert near.retcode == c.TRADE_RETCODE_INVALID_PRICE
    far = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 0.95010, symbol="EURCHF")
    assert far.retcode == c.TRADE_RETCODE_PLACED


def test_good_till_cancelled_order_shows_no_expiration(desk: Desk) -> None:
    placed = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09, expiration=T0 // 1000 + 60)
    assert desk.book.orders[placed.order].time_expiration == 0
    desk.sync(10 * MIN)
    assert placed.order in desk.book.orders


def test_pending_order_stops_are_checked_against_its_own_price(desk: Desk) -> None:
    result = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09, sl=1.095)
    assert result.retcode == c.TRADE_RETCODE_INVALID_STOPS
    assert desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09, sl=1.085).retcode == c.TRADE_RETCODE_PLACED


# ====================================================================== validation
@pytest.mark.parametrize("volume", [0.0, -1.0, 0.001, 0.015, 51.0])
def test_volume_outside_min_max_or_step_is_10014(desk: Desk, volume: float) -> None:
    assert desk.buy(volume).retcode == c.TRADE_RETCODE_INVALID_VOLUME
    result = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09, volume=volume)
    assert result.retcode == c.TRADE_RETCODE_INVALID_VOLUME


def test_closed_market_is_10018(desk: Desk) -> None:
    placed = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09)
    desk.market.closed.add("EURUSD")
    assert desk.buy(1.0).retcode == c.TRADE_RETCODE_MARKET_CLOSED
    removal = desk.send(action=c.TRADE_ACTION_REMOVE, order=placed.order)
    assert removal.retcode == c.TRADE_RETCODE_MARKET_CLOSED


def test_symbol_without_quotes_is_10021() -> None:
    desk = Desk()
    desk.market.series.pop("EURUSD")
    assert desk.buy(1.0).retcode == c.TRADE_RETCODE_PRICE_OFF


def test_volume_beyond_the_free_margin_is_10019(desk: Desk) -> None:
    # 1:100 leverage, 10 000 USD: 1 lot EURUSD takes 1100 USD, 10 lots 11 000.
    result = desk.buy(10.0)
    assert result.retcode == c.TRADE_RETCODE_NO_MONEY
    assert result.comment == "No money"
    assert not desk.book.positions
    assert not desk.book.deals
    assert desk.buy(9.0).retcode == c.TRADE_RETCODE_DONE


def test_hedge_that_lowers_the_margin_is_allowed_without_free_margin(desk: Desk) -> None:
    desk.buy(9.0)
    assert desk.sell(9.0).retcode == c.TRADE_RETCODE_DONE


def test_disabled_symbol_is_10017(desk: Desk) -> None:
    desk.market.specs["EURUSD"] = dataclasses.replace(
        EURUSD, trade_mode=c.SYMBOL_TRADE_MODE_DISABLED
    )
    assert desk.buy(1.0).retcode == c.TRADE_RETCODE_TRADE_DISABLED


@pytest.mark.parametrize(
    ("mode", "refused", "retcode"),
    [
        (c.SYMBOL_TRADE_MODE_LONGONLY, c.ORDER_TYPE_SELL, c.TRADE_RETCODE_LONG_ONLY),
        (c.SYMBOL_TRADE_MODE_SHORTONLY, c.ORDER_TYPE_BUY, c.TRADE_RETCODE_SHORT_ONLY),
        (c.SYMBOL_TRADE_MODE_CLOSEONLY, c.ORDER_TYPE_BUY, c.TRADE_RETCODE_CLOSE_ONLY),
    ],
)
def test_restricted_symbol_refuses_opening_but_allows_closing(
    desk: Desk, mode: int, refused: int, retcode: int
) -> None:
    allowed = c.ORDER_TYPE_SELL if refused == c.ORDER_TYPE_BUY else c.ORDER_TYPE_BUY
    opened = desk.send(action=c.TRADE_ACTION_DEAL, symbol="EURUSD", volume=1.0, type=allowed)
    desk.market.specs["EURUSD"] = dataclasses.replace(EURUSD, trade_mode=mode)
    deal = {"action": c.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 1.0}
    assert desk.send(**deal, type=refused).retcode == retcode
    closing = desk.send(**deal, type=refused, position=opened.order)
    assert closing.retcode == c.TRADE_RETCODE_DONE


def test_autotrading_off_in_the_terminal_is_10027(desk: Desk) -> None:
    desk.market.trade_allowed = False
    assert desk.buy(1.0).retcode == c.TRADE_RETCODE_CLIENT_DISABLES_AT
    assert desk.check(action=c.TRADE_ACTION_DEAL).retcode == c.TRADE_RETCODE_CLIENT_DISABLES_AT


def test_autotrading_off_on_the_server_is_10026() -> None:
    desk = Desk(trade_expert=False)
    assert desk.buy(1.0).retcode == c.TRADE_RETCODE_SERVER_DISABLES_AT


def test_account_without_trading_rights_is_10017() -> None:
    desk = Desk(trade_allowed=False)
    assert desk.buy(1.0).retcode == c.TRADE_RETCODE_TRADE_DISABLED


def test_request_while_the_trade_server_is_down_is_10031(desk: Desk) -> None:
    desk.market.trade_server_connected = False
    assert desk.buy(1.0).retcode == c.TRADE_RETCODE_CONNECTION


@pytest.mark.parametrize("action", [0, 2, 99])
def test_unknown_action_is_10013(desk: Desk, action: int) -> None:
    assert desk.send(action=action, symbol="EURUSD", volume=1.0).retcode == c.TRADE_RETCODE_INVALID


def test_unknown_or_unselected_symbol_is_10013(desk: Desk) -> None:
    assert desk.buy(1.0, symbol="NOPE").retcode == c.TRADE_RETCODE_INVALID
    desk.market.selected.discard("USDJPY")
    assert desk.buy(1.0, symbol="USDJPY").retcode == c.TRADE_RETCODE_INVALID


@pytest.mark.parametrize(
    ("symbol", "filling", "retcode"),
    [
        ("EURUSD", c.ORDER_FILLING_FOK, c.TRADE_RETCODE_DONE),
        ("EURUSD", c.ORDER_FILLING_IOC, c.TRADE_RETCODE_DONE),
        ("EURUSD", c.ORDER_FILLING_RETURN, c.TRADE_RETCODE_INVALID_FILL),  # market execution
        ("EURUSD", c.ORDER_FILLING_BOC, c.TRADE_RETCODE_INVALID_FILL),
        ("EURUSD", 7, c.TRADE_RETCODE_INVALID_FILL),
        ("STOCK", c.ORDER_FILLING_FOK, c.TRADE_RETCODE_INVALID_FILL),  # IOC only
        ("STOCK", c.ORDER_FILLING_IOC, c.TRADE_RETCODE_DONE),
        ("STOCK", c.ORDER_FILLING_RETURN, c.TRADE_RETCODE_DONE),  # request execution
        ("EURCHF", c.ORDER_FILLING_IOC, c.TRADE_RETCODE_INVALID_FILL),  # FOK only
    ],
)
def test_market_order_filling_is_checked_against_the_symbol_bitmask(
    desk: Desk, symbol: str, filling: int, retcode: int
) -> None:
    _, ask = START_PRICES[symbol]
    result = desk.buy(1.0, symbol=symbol, type_filling=filling, price=ask)
    assert result.retcode == retcode


@pytest.mark.parametrize(
    ("filling", "retcode"),
    [
        (c.ORDER_FILLING_RETURN, c.TRADE_RETCODE_PLACED),
        (c.ORDER_FILLING_FOK, c.TRADE_RETCODE_INVALID_FILL),
        (c.ORDER_FILLING_IOC, c.TRADE_RETCODE_PLACED),
    ],
)
def test_pending_order_filling_allows_return(desk: Desk, filling: int, retcode: int) -> None:
    result = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 99.0, symbol="STOCK", type_filling=filling)
    assert result.retcode == retcode


def test_boc_is_allowed_for_limit_orders_when_the_symbol_has_bit_4(desk: Desk) -> None:
    desk.market.specs["EURUSD"] = dataclasses.replace(EURUSD, filling_mode=1 | 2 | 4)
    placed = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09, type_filling=c.ORDER_FILLING_BOC)
    assert placed.retcode == c.TRADE_RETCODE_PLACED
    stop = desk.pending(c.ORDER_TYPE_BUY_STOP, 1.11, type_filling=c.ORDER_FILLING_BOC)
    assert stop.retcode == c.TRADE_RETCODE_INVALID_FILL


# ====================================================================== instant / request
def test_instant_execution_requotes_beyond_the_deviation_with_current_prices(desk: Desk) -> None:
    result = desk.buy(1.0, symbol="EURCHF", price=0.95000, deviation=10)
    assert result.retcode == c.TRADE_RETCODE_REQUOTE
    assert (result.bid, result.ask) == (0.95000, 0.95020)
    assert result.comment == "Requote"
    assert not desk.book.positions


def test_instant_execution_fills_within_the_deviation_at_the_market(desk: Desk) -> None:
    result = desk.buy(1.0, symbol="EURCHF", price=0.95000, deviation=20)
    assert (result.retcode, result.price) == (c.TRADE_RETCODE_DONE, 0.95020)


def test_instant_execution_without_a_price_is_10015(desk: Desk) -> None:
    result = desk.buy(1.0, symbol="EURCHF", deviation=1000)
    assert result.retcode == c.TRADE_RETCODE_INVALID_PRICE


def test_request_execution_answers_price_changed_beyond_the_deviation(desk: Desk) -> None:
    common: dict[str, Any] = {"symbol": "STOCK", "type_filling": c.ORDER_FILLING_IOC}
    assert desk.buy(1.0, price=100.00, **common).retcode == c.TRADE_RETCODE_PRICE_CHANGED
    assert desk.buy(1.0, price=100.05, **common).retcode == c.TRADE_RETCODE_DONE


# ====================================================================== limits and freeze
def test_freeze_level_refuses_changes_near_the_market(desk: Desk) -> None:
    # STOCK: freeze level 50 points = 0.50 from the market.
    near = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 99.70, symbol="STOCK", volume=1.0)
    far = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 99.00, symbol="STOCK", volume=1.0)
    assert desk.send(action=c.TRADE_ACTION_REMOVE, order=near.order).retcode == (
        c.TRADE_RETCODE_FROZEN
    )
    assert desk.send(action=c.TRADE_ACTION_REMOVE, order=far.order).retcode == (
        c.TRADE_RETCODE_DONE
    )


def test_pending_order_count_limit_is_10033() -> None:
    desk = Desk(limit_orders=2)
    desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09)
    desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.08)
    assert desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.07).retcode == c.TRADE_RETCODE_LIMIT_ORDERS


def test_volume_limit_per_direction_is_10034(desk: Desk) -> None:
    desk.market.specs["EURUSD"] = dataclasses.replace(EURUSD, volume_limit=2.0)
    desk.buy(1.0)
    desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09)
    assert desk.buy(0.5).retcode == c.TRADE_RETCODE_LIMIT_VOLUME
    assert desk.sell(1.0).retcode == c.TRADE_RETCODE_DONE


def test_fifo_account_must_close_the_oldest_position_first() -> None:
    desk = Desk(fifo_close=True)
    first, second = desk.buy(1.0), desk.buy(1.0)
    assert desk.sell(1.0, position=second.order).retcode == c.TRADE_RETCODE_FIFO_CLOSE
    assert desk.sell(1.0, position=first.order).retcode == c.TRADE_RETCODE_DONE


# ====================================================================== order_check
def test_check_passes_with_done_and_the_figures_after_the_trade(desk: Desk) -> None:
    result = desk.check(action=c.TRADE_ACTION_DEAL, symbol="EURUSD", volume=1.0, type=0)
    assert (result.retcode, result.comment) == (0, "Done")
    margin = round(1.0 * 100_000 / 100 * 1.10010, 2)  # EUR margin converted at the fill price
    assert result.margin == pytest.approx(margin)
    assert result.profit == pytest.approx(-10.0)  # the spread, marked at the bid
    assert result.equity == pytest.approx(9_990.0)
    assert result.margin_free == pytest.approx(9_990.0 - margin)
    assert result.margin_level == pytest.approx(round(9_990.0 / margin * 100, 2))
    assert result.balance == 10_000.0
    assert result.request.volume == 1.0


def test_check_changes_nothing(desk: Desk) -> None:
    opened = desk.buy(1.0)
    before = (
        dict(desk.book.positions), list(desk.book.deals), list(desk.book.history_orders),
        desk.book.balance,
    )  # fmt: skip
    desk.check(action=c.TRADE_ACTION_DEAL, symbol="EURUSD", volume=2.0, type=0)
    desk.check(
        action=c.TRADE_ACTION_DEAL, symbol="EURUSD", volume=1.0, type=1, position=opened.order
    )
    after = (
        dict(desk.book.positions), list(desk.book.deals), list(desk.book.history_orders),
        desk.book.balance,
    )  # fmt: skip
    assert after == before
    assert desk.book.positions[opened.order].volume == 1.0
    assert desk.buy(0.1).order == desk.book.deals[-1].order == opened.deal + 1


def test_check_of_a_close_reports_the_balance_after(desk: Desk) -> None:
    opened = desk.buy(1.0)
    desk.tick("EURUSD", 1.10110)
    result = desk.check(
        action=c.TRADE_ACTION_DEAL, symbol="EURUSD", volume=1.0, type=1, position=opened.order
    )
    assert result.retcode == 0
    assert result.balance == pytest.approx(10_100.0)
    assert (result.margin, result.profit) == (0.0, 0.0)


def test_check_failure_gives_the_retcode_and_its_comment(desk: Desk) -> None:
    result = desk.check(action=c.TRADE_ACTION_DEAL, symbol="EURUSD", volume=0.001, type=0)
    assert (result.retcode, result.comment) == (c.TRADE_RETCODE_INVALID_VOLUME, "Invalid volume")
    assert result.equity == 10_000.0


def test_check_without_money_shows_the_negative_free_margin(desk: Desk) -> None:
    result = desk.check(action=c.TRADE_ACTION_DEAL, symbol="EURUSD", volume=20.0, type=0)
    assert result.retcode == c.TRADE_RETCODE_NO_MONEY
    assert result.margin_free < 0


def test_every_retcode_the_engine_gives_has_a_comment() -> None:
    retcodes = {v for k, v in vars(c).items() if k.startswith("TRADE_RETCODE_")}
    assert retcodes <= set(RETCODE_COMMENTS)


# ====================================================================== money
def test_position_margin_is_the_calc_margin_of_it(desk: Desk) -> None:
    desk.buy(2.0, symbol="USDJPY")
    expected = desk.engine.margin_for(desk.book, "USDJPY", c.ORDER_TYPE_BUY, 2.0, 150.010)
    assert expected == pytest.approx(2_000.0)
    assert desk.engine.figures(desk.book, desk.now).margin == expected


def test_position_profit_is_the_calc_profit_at_the_closing_price(desk: Desk) -> None:
    opened = desk.sell(1.0, symbol="USDJPY")
    desk.tick("USDJPY", 149.000, 149.010)
    desk.sync()
    position = desk.book.positions[opened.order]
    assert position.price_current == 149.010
    expected = calc_profit(desk, "USDJPY", c.ORDER_TYPE_SELL, 1.0, 150.000, 149.010)
    assert position.profit == expected
    assert position.profit == pytest.approx(0.990 * 100_000 / 149.010, abs=0.01)


def test_equity_is_balance_plus_floating_profit(desk: Desk) -> None:
    desk.buy(1.0)
    desk.sell(0.5, symbol="USDJPY")
    desk.tick("EURUSD", 1.10500)
    figures = desk.engine.figures(desk.book, desk.now)
    floating = sum(p.profit for p in desk.book.positions.values())
    assert figures.profit == pytest.approx(floating)
    assert figures.equity == pytest.approx(desk.book.balance + floating)
    assert figures.margin_free == pytest.approx(figures.equity - figures.margin)


def test_hedged_volume_is_charged_margin_once(desk: Desk) -> None:
    desk.buy(1.0)
    one = desk.engine.figures(desk.book, desk.now).margin
    desk.sell(1.0)
    both = desk.engine.figures(desk.book, desk.now).margin
    assert both == pytest.approx(one, rel=1e-3)


def test_hedged_margin_rate_scales_the_overlap(desk: Desk) -> None:
    desk.market.specs["EURUSD"] = dataclasses.replace(EURUSD, margin_hedged=50_000.0)
    desk.buy(1.0)
    one = desk.engine.figures(desk.book, desk.now).margin
    desk.sell(1.0)
    assert desk.engine.figures(desk.book, desk.now).margin == pytest.approx(one / 2, rel=1e-3)


def test_figures_of_an_empty_account(desk: Desk) -> None:
    assert desk.engine.figures(desk.book, desk.now) == AccountFigures(
        0.0, 10_000.0, 0.0, 10_000.0, 0.0
    )


def test_margin_for_an_unknown_symbol_is_none(desk: Desk) -> None:
    assert desk.engine.margin_for(desk.book, "NOPE", c.ORDER_TYPE_BUY, 1.0, 1.0) is None


def test_pending_fill_the_account_cannot_afford_is_rejected(desk: Desk) -> None:
    placed = desk.pending(c.ORDER_TYPE_BUY_LIMIT, 1.09000, volume=20.0)
    assert placed.retcode == c.TRADE_RETCODE_PLACED
    desk.tick("EURUSD", 1.08990, 1.09000)
    desk.sync()
    assert not desk.book.positions
    order = desk.book.history_orders[-1]
    assert (order.ticket, order.state) == (placed.order, c.ORDER_STATE_REJECTED)


# ====================================================================== stop-out
def test_stop_out_closes_the_worst_position_first_with_reason_so() -> None:
    desk = Desk(balance=1_500.0)
    worst = desk.buy(1.0)  # margin 1100.10
    other = desk.buy(0.1, symbol="USDJPY")  # margin 100
    # Equity falls with EURUSD: level = equity / 1200.10; stop-out at 30 % = 360 equity.
    desk.tick("EURUSD", 1.09500)
    desk.sync()
    assert len(desk.book.positions) == 2
    desk.tick("EURUSD", 1.08900)  # about -1110 on the EURUSD lot: equity ~390
    desk.sync()
    assert len(desk.book.positions) == 2
    desk.tick("EURUSD", 1.08850)
    at = desk.now
    desk.sync()
    assert list(desk.book.positions) == [other.order]
    deal = desk.book.deals[-1]
    assert (deal.position_id, deal.reason, deal.time_msc) == (worst.order, c.DEAL_REASON_SO, at)
    assert deal.comment.startswith("[so ")
    assert desk.book.history_orders[-1].reason == c.ORDER_REASON_SO


def test_stop_out_in_money_mode_uses_the_equity() -> None:
    desk = Desk(margin_so_mode=c.ACCOUNT_STOPOUT_MODE_MONEY, margin_so_so=9_500.0)
    desk.buy(1.0)
    desk.tick("EURUSD", 1.09600)  # -410 USD: equity 9 590
    desk.sync()
    assert desk.book.positions
    desk.tick("EURUSD", 1.09400)  # -610: equity 9 390
    desk.sync()
    assert not desk.book.positions
    assert desk.book.deals[-1].reason == c.DEAL_REASON_SO


def test_stop_out_ignores_prices_from_before_a_position_opened() -> None:
    desk = Desk(balance=1_500.0)
    desk.buy(1.0)  # margin 1100.10
    stop = desk.pending(c.ORDER_TYPE_BUY_STOP, 150.500, volume=0.2, symbol="USDJPY")
    # USDJPY plunges, then rallies through the stop: had the 0.2 lot been open during the plunge
    # the level would have hit 30 %, but it opened only after it.
    desk.tick("USDJPY", 142.000, 142.010)
    desk.tick("USDJPY", 150.500, 150.510)
    desk.sync()
    assert stop.order in desk.book.positions
    assert len(desk.book.positions) == 2
    assert all(d.reason != c.DEAL_REASON_SO for d in desk.book.deals)


# ====================================================================== sync
def test_sync_of_an_empty_book_reads_no_ticks(desk: Desk) -> None:
    for _ in range(100):
        desk.sync(MIN)
    assert desk.market.tick_reads == 0


def test_sync_marks_positions_and_orders_to_the_market(desk: Desk) -> None:
    opened = desk.buy(1.0)
    placed = desk.pending(c.ORDER_TYPE_SELL_LIMIT, 1.2)
    desk.tick("EURUSD", 1.10200, 1.10210)
    desk.sync()
    assert desk.book.positions[opened.order].price_current == 1.10200
    assert desk.book.positions[opened.order].profit == pytest.approx(190.0)
    assert desk.book.orders[placed.order].price_current == 1.10200


# ====================================================================== invariants
PENDING_TYPES = [t for t, _, _ in PENDING_OK]


def _random_request(rng: random.Random, desk: Desk) -> dict[str, Any]:
    symbol = rng.choice(["EURUSD", "USDJPY"])
    tick = desk.market.last_tick(symbol, desk.now)
    assert tick is not None
    bid, ask = tick[1], tick[2]
    point = desk.market.specs[symbol].point
    volume = rng.choice([0.01, 0.1, 0.5, 1.0, 2.0])
    kind = rng.random()
    positions = [p for p in desk.book.positions.values() if p.symbol == symbol]
    orders = list(desk.book.orders.values())
    if kind < 0.35:
        order_type = rng.choice([c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL])
        distance = rng.randint(20, 200) * point
        sl = tp = 0.0
        if rng.random() < 0.5:
            buy = order_type == c.ORDER_TYPE_BUY
            sl = round(bid - distance if buy else ask + distance, 8)
            tp = round(bid + distance if buy else ask - distance, 8)
        return {
            "action": c.TRADE_ACTION_DEAL, "symbol": symbol, "volume": volume,
            "type": order_type, "sl": sl, "tp": tp,
        }  # fmt: skip
    if kind < 0.5 and positions:
        target = rng.choice(positions)
        close = c.ORDER_TYPE_SELL if target.type == c.POSITION_TYPE_BUY else c.ORDER_TYPE_BUY
        return {
            "action": c.TRADE_ACTION_DEAL, "symbol": symbol, "type": close,
            "volume": rng.choice([target.volume, 0.01]), "position": target.ticket,
        }  # fmt: skip
    if kind < 0.75:
        order_type = rng.choice(PENDING_TYPES)
        offset = rng.randint(5, 100) * point
        buy = order_type % 2 == 0
        waits_below = (order_type == c.ORDER_TYPE_BUY_LIMIT) or (
            order_type in (c.ORDER_TYPE_SELL_STOP, c.ORDER_TYPE_SELL_STOP_LIMIT)
        )
        price = round((ask if buy else bid) - offset if waits_below else (ask if buy else bid)
                      + offset, 8)  # fmt: skip
        stoplimit = round(price - 5 * point if buy else price + 5 * point, 8)
        return {
            "action": c.TRADE_ACTION_PENDING, "symbol": symbol, "volume": volume,
            "type": order_type, "price": price, "stoplimit": stoplimit,
            "type_filling": c.ORDER_FILLING_RETURN,
            "type_time": rng.choice([c.ORDER_TIME_GTC, c.ORDER_TIME_DAY]),
        }  # fmt: skip
    if kind < 0.85 and orders:
        return {"action": c.TRADE_ACTION_REMOVE, "order": rng.choice(orders).ticket}
    if kind < 0.95 and len(desk.book.positions) >= 2:
        a, b = rng.sample(list(desk.book.positions.values()), 2)
        return {"action": c.TRADE_ACTION_CLOSE_BY, "position": a.ticket, "position_by": b.ticket}
    position = rng.choice(positions).ticket if positions else 0
    return {"action": c.TRADE_ACTION_SLTP, "position": position, "sl": 0.0, "tp": 0.0}


def _walk(rng: random.Random, desk: Desk, symbol: str) -> None:
    tick = desk.market.last_tick(symbol, desk.now)
    assert tick is not None
    spec = desk.market.specs[symbol]
    # Mostly small steps, now and then a gap that jumps stops and strains the margin.
    reach = 1_500 if rng.random() < 0.01 else 30
    bid = round(tick[1] + rng.randint(-reach, reach) * spec.point, spec.digits)
    desk.tick(symbol, bid, round(bid + rng.randint(5, 20) * spec.point, spec.digits),
              after=rng.randint(1, 5000))  # fmt: skip


def _assert_invariants(desk: Desk, mode: str) -> None:
    book = desk.book
    figures = desk.engine.figures(book, desk.now)
    floating = sum(p.profit for p in book.positions.values())
    assert figures.equity == pytest.approx(book.balance + book.credit + floating, abs=0.011)
    realised = sum(d.profit for d in book.deals)
    assert book.balance == pytest.approx(book.account.balance + realised, abs=0.011)
    assert all(p.volume > 0 for p in book.positions.values())
    assert all(o.volume_current >= 0 for o in [*book.orders.values(), *book.history_orders])
    tickets = (
        [o.ticket for o in book.orders.values()]
        + [o.ticket for o in book.history_orders]
        + [d.ticket for d in book.deals]
    )
    assert len(tickets) == len(set(tickets)), "a ticket was used twice"
    net: dict[int, float] = {}
    for deal in book.deals:
        net[deal.position_id] = net.get(deal.position_id, 0.0) + round(
            deal.volume * (1 if deal.type == c.DEAL_TYPE_BUY else -1), 8
        )
    for position_id, volume in net.items():
        open_ = [p for p in book.positions.values() if p.identifier == position_id]
        signed = sum(p.volume * (1 if p.type == c.POSITION_TYPE_BUY else -1) for p in open_)
        assert volume == pytest.approx(signed, abs=1e-6), f"{mode}: position {position_id}"
    if mode == "netting":
        symbols = [p.symbol for p in book.positions.values()]
        assert len(symbols) == len(set(symbols))
    assert not book.orders.keys() & {o.ticket for o in book.history_orders}
    times = [d.time_msc for d in book.deals]
    assert times == sorted(times), "deals out of time order"


def _random_flow(mode: str, seed: int, steps: int, balance: float) -> tuple[Desk, Counter[int]]:
    """A seeded stream of random requests and price moves, with the invariants after each."""
    rng = random.Random(seed)
    desk = Desk(**(NETTING if mode == "netting" else {}), balance=balance)
    outcomes: Counter[int] = Counter()
    for _ in range(steps):
        _walk(rng, desk, rng.choice(["EURUSD", "USDJPY"]))
        if rng.random() < 0.6:
            outcomes[desk.send(**_random_request(rng, desk)).retcode] += 1
        desk.sync()
        _assert_invariants(desk, mode)
    return desk, outcomes


@pytest.mark.parametrize("mode", ["hedging", "netting"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_order_flow_keeps_the_books_consistent(mode: str, seed: int) -> None:
    desk, outcomes = _random_flow(mode, seed, steps=400, balance=100_000.0)
    assert outcomes[c.TRADE_RETCODE_DONE] > 50
    assert outcomes[c.TRADE_RETCODE_PLACED] > 20
    assert any(d.reason in (c.DEAL_REASON_SL, c.DEAL_REASON_TP) for d in desk.book.deals)
    assert any(
        o.state == c.ORDER_STATE_FILLED and o.type in PENDING_TYPES
        for o in desk.book.history_orders
    )


@pytest.mark.soak
@pytest.mark.parametrize("mode", ["hedging", "netting"])
@pytest.mark.parametrize("seed", range(10, 20))
def test_long_random_order_flow_on_a_small_account_keeps_the_books_consistent(
    mode: str, seed: int
) -> None:
    # A small balance brings refusals for money and stop-outs into the mix.
    _, outcomes = _random_flow(mode, seed, steps=2_000, balance=3_000.0)
    assert outcomes[c.TRADE_RETCODE_DONE] > 300
    assert outcomes[c.TRADE_RETCODE_NO_MONEY] > 0


def test_symbol_suffix_lets_conversion_find_its_pairs() -> None:
    suffixed = [dataclasses.replace(s, name=s.name + ".m") for s in SPECS]
    market = FakeMarket(suffixed)
    for name, (bid, ask) in START_PRICES.items():
        market.tick(name + ".m", bid, ask, at=T0 - 1000)
    book = AccountBook(account())
    deal = request(action=c.TRADE_ACTION_DEAL, symbol="EURUSD.m", volume=1.0, type=0)
    plain = TradingEngine(market)
    assert plain.send(book, deal, T0).retcode == c.TRADE_RETCODE_PRICE_OFF
    engine = TradingEngine(market, symbol_suffix=".m")
    assert engine.send(book, deal, T0).retcode == c.TRADE_RETCODE_DONE
    assert engine.figures(book, T0).margin == pytest.approx(1_100.10)


# ====================================================================== through SimTerminal
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def term() -> SimTerminal:
    terminal = SimTerminal(seed=5, clock=SimClock.fixed(MONDAY))
    assert terminal.initialize()
    return terminal


def _advance_until(term: SimTerminal, done: Any, *, step: float = 60.0, limit: int = 2_000) -> None:
    for _ in range(limit):
        if done():
            return
        term.clock.advance(step)
    pytest.fail("the market never reached the expected state")


def test_terminal_sl_or_tp_closes_the_position_as_the_clock_advances(term: SimTerminal) -> None:
    tick = term.symbol_info_tick("EURUSD")
    sl, tp = round(tick.bid - 0.0008, 5), round(tick.bid + 0.0008, 5)
    opened = term.order_send(
        action=c.TRADE_ACTION_DEAL, symbol="EURUSD", volume=1.0, type=c.ORDER_TYPE_BUY,
        price=tick.ask, sl=sl, tp=tp, magic=11, comment="e2e",
    )  # fmt: skip
    assert opened.retcode == c.TRADE_RETCODE_DONE
    _advance_until(term, lambda: not term.positions_get())
    entry, exit_ = term.history_deals_get(position=opened.order)
    assert (entry.entry, exit_.entry) == (c.DEAL_ENTRY_IN, c.DEAL_ENTRY_OUT)
    assert exit_.magic == 11
    if exit_.reason == c.DEAL_REASON_TP:
        assert exit_.price >= tp
    else:
        assert (exit_.reason, exit_.price <= sl) == (c.DEAL_REASON_SL, True)
    assert term.account_info().balance == pytest.approx(10_000.0 + exit_.profit)
    assert exit_.profit == term.order_calc_profit(
        c.ORDER_TYPE_BUY, "EURUSD", 1.0, entry.price, exit_.price
    )
    orders = term.history_orders_get(position=opened.order)
    assert [o.state for o in orders] == [c.ORDER_STATE_FILLED] * 2


def test_terminal_pending_order_fills_as_the_clock_advances(term: SimTerminal) -> None:
    tick = term.symbol_info_tick("EURUSD")
    common: dict[str, Any] = {
        "action": c.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.5,
        "type_filling": c.ORDER_FILLING_RETURN,
    }  # fmt: skip
    up = term.order_send({**common, "type": c.ORDER_TYPE_BUY_STOP,
                          "price": round(tick.ask + 0.0005, 5)})  # fmt: skip
    down = term.order_send({**common, "type": c.ORDER_TYPE_SELL_STOP,
                            "price": round(tick.bid - 0.0005, 5)})  # fmt: skip
    assert (up.retcode, down.retcode) == (c.TRADE_RETCODE_PLACED,) * 2
    assert term.orders_total() == 2
    _advance_until(term, lambda: term.positions_total() > 0, step=10.0)
    (position,) = term.positions_get()
    assert position.identifier in (up.order, down.order)
    (filled,) = term.history_orders_get(ticket=position.identifier)
    assert filled.state == c.ORDER_STATE_FILLED
    assert term.orders_total() == 1


def test_terminal_margin_and_profit_equal_order_calc(term: SimTerminal) -> None:
    for symbol, order_type, volume in (
        ("EURUSD", c.ORDER_TYPE_BUY, 1.0),
        ("USDJPY", c.ORDER_TYPE_SELL, 0.5),
    ):
        tick = term.symbol_info_tick(symbol)
        price = tick.ask if order_type == c.ORDER_TYPE_BUY else tick.bid  # instant execution
        result = term.order_send(
            action=c.TRADE_ACTION_DEAL, symbol=symbol, volume=volume, type=order_type, price=price
        )
        assert result.retcode == c.TRADE_RETCODE_DONE
    term.clock.advance(600)
    positions = term.positions_get()
    margins = [term.order_calc_margin(p.type, p.symbol, p.volume, p.price_open) for p in positions]
    assert term.account_info().margin == pytest.approx(sum(margins), abs=0.011)
    for p in positions:
        assert p.profit == term.order_calc_profit(
            p.type, p.symbol, p.volume, p.price_open, p.price_current
        )
    info = term.account_info()
    assert info.equity == pytest.approx(info.balance + sum(p.profit for p in positions))


def test_terminal_order_check_predicts_the_send(term: SimTerminal) -> None:
    fields: dict[str, Any] = {
        "action": c.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 2.0,
        "type": c.ORDER_TYPE_SELL, "price": term.symbol_info_tick("EURUSD").bid,
    }  # fmt: skip
    checked = term.order_check(fields)
    assert (checked.retcode, checked.comment) == (0, "Done")
    assert term.positions_total() == 0
    sent = term.order_send(fields)
    assert sent.retcode == c.TRADE_RETCODE_DONE
    assert term.account_info().margin == pytest.approx(checked.margin)


def test_terminal_netting_account_reverses_a_position() -> None:
    term = SimTerminal(seed=5, clock=SimClock.fixed(MONDAY))
    assert term.initialize(login=DEFAULT_LOGIN + 1, password=DEFAULT_PASSWORD,
                           server=DEFAULT_SERVER)  # fmt: skip
    deal: dict[str, Any] = {"action": c.TRADE_ACTION_DEAL, "symbol": "EURUSD"}
    first = term.order_send(
        {
            **deal,
            "volume": 1.0,
            "type": c.ORDER_TYPE_BUY,
            "price": term.symbol_info_tick("EURUSD").ask,
        }
    )
    term.clock.advance(60)
    term.order_send(
        {
            **deal,
            "volume": 1.5,
            "type": c.ORDER_TYPE_SELL,
            "price": term.symbol_info_tick("EURUSD").bid,
        }
    )
    (position,) = term.positions_get()
    assert (position.type, position.volume) == (c.POSITION_TYPE_SELL, 0.5)
    assert position.identifier == first.order
    entries = [d.entry for d in term.history_deals_get(position=first.order)]
    assert entries == [c.DEAL_ENTRY_IN, c.DEAL_ENTRY_INOUT]


def test_terminal_autotrading_off_answers_10027(term: SimTerminal) -> None:
    term.trade_allowed = False
    result = term.order_send(
        action=c.TRADE_ACTION_DEAL, symbol="EURUSD", volume=1.0, type=c.ORDER_TYPE_BUY
    )
    assert result.retcode == c.TRADE_RETCODE_CLIENT_DISABLES_AT
    assert term.positions_total() == 0
