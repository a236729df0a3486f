"""Trader against the simulated terminal: helpers, typed results, errors, and exactly-once sends."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from typing import Any

import pytest

from _order_audit import ALL_TIME, audit_history
from aiomt5._connector import AsyncMT5Connector
from aiomt5._core._errors import (
    MT5AutoTradingDisabledError,
    MT5ConnectionError,
    MT5InvalidArgumentError,
    MT5MarketClosedError,
    MT5OrderNotPlacedError,
    MT5OutcomeUnknownError,
    MT5TimeoutError,
    MT5TradeError,
    MT5TradeOutcomeUnknownError,
)
from aiomt5._core._events import LateResult
from aiomt5._mt5 import constants as c
from aiomt5._settings import MT5Settings
from aiomt5._trading._models import (
    MAX_USER_COMMENT,
    TAG_RE,
    OrderResult,
    TradeRequest,
    find_tag,
    new_tag,
    tag_from_key,
    tagged_comment,
)
from aiomt5._trading._trader import (
    TradeEvent,
    Trader,
    pick_filling,
)
from aiomt5.sim import DEFAULT_LOGIN, DEFAULT_PASSWORD, DEFAULT_SERVER, SimClock, SimTerminal

SIM_START = "2026-03-02T10:00:00Z"


def sim_settings(**overrides: Any) -> MT5Settings:
    fields: dict[str, Any] = {"backend": "sim", "testing": True, "call_timeout": 5.0}
    fields.update(overrides)
    return MT5Settings(_env_file=None, **fields)


class Events:
    """Collects TradeEvents; lets a test wait for one kind without sleeping."""

    def __init__(self) -> None:
        self.seen: list[TradeEvent] = []
        self.arrived = asyncio.Event()

    def __call__(self, event: TradeEvent) -> None:
        self.seen.append(event)
        self.arrived.set()

    def kinds(self) -> list[str]:
        return [e.kind for e in self.seen]

    async def wait_for(self, kind: str, count: int = 1) -> TradeEvent:
        async with asyncio.timeout(30):  # a bound against a hung test, not a wait for time
            while sum(e.kind == kind for e in self.seen) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return [e for e in self.seen if e.kind == kind][count - 1]


class Reconnector:
    """Stands in for the supervisor: each "wait" of the trader reconnects the connector."""

    def __init__(self) -> None:
        self.connector: AsyncMT5Connector | None = None
        self.reconnects = 0

    async def __call__(self, _seconds: float) -> None:
        # Shielded: the trader cancels its wait once the state changes (our disconnect does),
        # and then waits for the reconnect, which must go on.
        await asyncio.shield(self._reconnect())

    async def _reconnect(self) -> None:
        assert self.connector is not None
        self.reconnects += 1
        await self.connector.disconnect()
        await self.connector.connect()


@pytest.fixture
def term() -> SimTerminal:
    return SimTerminal(seed=1, clock=SimClock.fixed(SIM_START))


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def reconnector() -> Reconnector:
    return Reconnector()


@pytest.fixture
async def mt5(term: SimTerminal) -> AsyncIterator[AsyncMT5Connector]:
    async with AsyncMT5Connector(sim_settings(), backend=term) as connector:
        yield connector


@pytest.fixture
def trader(mt5: AsyncMT5Connector, events: Events, reconnector: Reconnector) -> Trader:
    reconnector.connector = mt5
    return Trader(mt5, settle=0, on_event=events, sleep=reconnector)


async def tagged_history(trader: Trader, tag: str) -> list[Any]:
    return [o for o in await trader.history_orders(*ALL_TIME) if o.tag == tag]


async def proven_trader(trader: Trader) -> Trader:
    """A trader that has seen one of its tags survive in the history (comments are kept)."""
    await trader.buy("USDJPY", 0.01)
    term_tag = (await trader.positions(symbol="USDJPY"))[0].tag
    assert term_tag is not None
    await trader.lookup(term_tag, symbol="USDJPY")
    assert trader.comments_kept is True
    return trader


# ---------------------------------------------------------------- tags and requests


def test_tags_are_13_chars_of_prefix_and_base32_and_fit_beside_a_user_comment() -> None:
    tags = {new_tag() for _ in range(1000)}
    assert len(tags) == 1000
    assert all(TAG_RE.fullmatch(t) and len(t) == 13 for t in tags)
    comment = tagged_comment("~0123456789ab", "x" * MAX_USER_COMMENT)
    assert len(comment) == 29
    assert find_tag(comment) == "~0123456789ab"


def test_tag_from_key_is_deterministic_and_distinct_per_key() -> None:
    assert tag_from_key("signal-1") == tag_from_key("signal-1")
    assert tag_from_key("signal-1") != tag_from_key("signal-2")
    assert TAG_RE.fullmatch(tag_from_key("signal-1"))


def test_a_user_comment_too_long_for_the_tag_is_refused_not_truncated() -> None:
    with pytest.raises(MT5InvalidArgumentError, match="only 15 fit"):
        tagged_comment(new_tag(), "x" * (MAX_USER_COMMENT + 1))


def test_request_turns_int_volume_and_prices_into_floats() -> None:
    request = TradeRequest(symbol="EURUSD", volume=1, price=2, sl=1, tp=3)
    payload = request.payload("c", 0)
    assert [type(payload[k]) for k in ("volume", "price", "sl", "tp", "stoplimit")] == [float] * 5
    with pytest.raises(FrozenInstanceError):
        request.volume = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"volume": "1"}, "volume must be a number"),
        ({"volume": -1.0}, "volume must be finite and >= 0"),
        ({"action": 99}, "TRADE_ACTION"),
        ({"magic": True}, "magic must be an int"),
        ({"expiration": datetime(2026, 3, 2)}, "aware datetime"),
        ({"symbol": "X" * 30}, "at most 29"),
    ],
)
def test_bad_request_fields_are_refused_with_what_was_wrong(
    fields: dict[str, Any], match: str
) -> None:
    with pytest.raises(MT5InvalidArgumentError, match=match):
        TradeRequest(**fields)


def test_unknown_request_keys_are_refused_instead_of_ignored() -> None:
    with pytest.raises(MT5InvalidArgumentError, match="stoploss"):
        TradeRequest.from_mapping({"symbol": "EURUSD", "stoploss": 1.0})


@pytest.mark.parametrize(
    ("mask", "filling"),
    [
        (1, c.ORDER_FILLING_FOK),
        (3, c.ORDER_FILLING_FOK),
        (2, c.ORDER_FILLING_IOC),
        (0, c.ORDER_FILLING_RETURN),
    ],
)
def test_filling_is_fok_then_ioc_then_return(mask: int, filling: int) -> None:
    assert pick_filling(mask) == filling


# ---------------------------------------------------------------- helpers


async def test_buy_opens_a_long_position_carrying_the_tag(trader: Trader) -> None:
    result = await trader.buy("EURUSD", 1, comment="entry")
    assert result.ok
    assert (result.retcode_name, result.volume, result.reconciled) == (
        "TRADE_RETCODE_DONE",
        1.0,
        False,
    )
    (position,) = await trader.positions()
    assert position.tag == result.tag
    assert position.comment == f"{result.tag} entry"
    assert position.is_buy
    assert position.time.tzinfo is UTC


async def test_sell_then_close_position_leaves_two_deals_and_no_position(trader: Trader) -> None:
    opened = await trader.sell("GBPUSD", 0.5)
    (position,) = await trader.positions(symbol="GBPUSD")
    assert not position.is_buy
    closed = await trader.close_position(position)
    assert closed.ok
    assert await trader.positions() == ()
    deals = await trader.history_deals(ticket=closed.order)
    assert [d.position_id for d in deals] == [opened.order]
    assert all(d.time.tzinfo is UTC for d in deals)


async def test_close_position_with_a_volume_closes_part_of_it(trader: Trader) -> None:
    await trader.buy("EURUSD", 1.0)
    (position,) = await trader.positions()
    await trader.close_position(position.ticket, volume=0.4)
    (left,) = await trader.positions()
    assert left.volume == pytest.approx(0.6)


async def test_closing_a_position_that_is_not_open_raises_position_closed(trader: Trader) -> None:
    with pytest.raises(MT5TradeError) as caught:
        await trader.close_position(123)
    assert caught.value.retcode_name == "TRADE_RETCODE_POSITION_CLOSED"


async def test_modify_position_sets_levels_and_none_keeps_the_current_one(trader: Trader) -> None:
    await trader.buy("EURUSD", 0.1)
    (position,) = await trader.positions()
    sl, tp = round(position.price_open - 0.01, 5), round(position.price_open + 0.01, 5)
    await trader.modify_position(position, sl=sl, tp=tp)
    await trader.modify_position(position, tp=round(tp + 0.001, 5))
    (changed,) = await trader.positions()
    assert (changed.sl, changed.tp) == (sl, round(tp + 0.001, 5))


async def test_place_pending_then_cancel_order(trader: Trader) -> None:
    tick = await trader._connector.call("symbol_info_tick", "EURUSD")
    placed = await trader.place_pending(
        "EURUSD", c.ORDER_TYPE_BUY_LIMIT, 0.2, round(tick.ask - 0.005, 5), comment="dip"
    )
    assert placed.retcode_name == "TRADE_RETCODE_PLACED"
    (order,) = await trader.orders()
    assert (order.ticket, order.tag, order.state_name) == (placed.order, placed.tag, "placed")
    cancelled = await trader.cancel_order(order)
    assert cancelled.ok
    assert await trader.orders() == ()
    (history,) = await trader.history_orders(ticket=order.ticket)
    assert history.state_name == "canceled"


async def test_stop_limit_order_with_expiration_is_placed(trader: Trader) -> None:
    tick = await trader._connector.call("symbol_info_tick", "EURUSD")
    expires = datetime(2026, 3, 3, tzinfo=UTC)
    await trader.place_pending(
        "EURUSD",
        c.ORDER_TYPE_BUY_STOP_LIMIT,
        0.1,
        round(tick.ask + 0.01, 5),
        stoplimit=round(tick.ask + 0.005, 5),
        expiration=expires,
    )
    (order,) = await trader.orders()
    assert order.price_stoplimit == round(tick.ask + 0.005, 5)
    assert order.time_expiration == expires


async def test_place_pending_refuses_a_market_type(trader: Trader) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="pending order type"):
        await trader.place_pending("EURUSD", c.ORDER_TYPE_BUY, 0.1, 1.0)


async def test_netting_account_nets_opposite_deals_into_one_position(term: SimTerminal) -> None:
    settings = sim_settings(
        login=DEFAULT_LOGIN + 1, password=DEFAULT_PASSWORD, server=DEFAULT_SERVER
    )
    async with AsyncMT5Connector(settings, backend=term) as mt5:
        trader = Trader(mt5, settle=0)
        first = await trader.buy("EURUSD", 1.0)
        await trader.sell("EURUSD", 0.3)
        (position,) = await trader.positions()
        assert (position.ticket, position.volume, position.is_buy) == (first.order, 0.7, True)


async def test_refusal_raises_trade_error_with_retcode_name_comment_and_request(
    trader: Trader,
) -> None:
    with pytest.raises(MT5TradeError) as caught:
        await trader.buy("EURUSD", 90.0, comment="too big")
    error = caught.value
    assert (error.retcode, error.retcode_name) == (10019, "TRADE_RETCODE_NO_MONEY")
    assert error.comment == "No money"
    assert error.request["volume"] == 90.0
    assert error.request["comment"].endswith(" too big")
    assert "TRADE_RETCODE_NO_MONEY" in str(error)


async def test_auto_trading_disabled_is_raised_without_reconciling(
    trader: Trader, term: SimTerminal, events: Events
) -> None:
    term.tradeapi_disabled = True
    with pytest.raises(MT5AutoTradingDisabledError):
        await trader.buy("EURUSD", 0.1)
    assert events.seen == []


@pytest.mark.parametrize(
    ("symbol", "filling"),
    [
        ("EURCHF", c.ORDER_FILLING_FOK),  # FOK only, instant execution: needs a price
        ("XAGUSD", c.ORDER_FILLING_FOK),
        ("US30", c.ORDER_FILLING_IOC),  # IOC only
        ("EURUSD", c.ORDER_FILLING_FOK),
    ],
)
async def test_filling_mode_comes_from_the_symbol(
    trader: Trader, symbol: str, filling: int
) -> None:
    result = await trader.buy(symbol, 0.1)
    assert result.request["type_filling"] == filling
    (order,) = await trader.history_orders(ticket=result.order)
    assert order.type_filling == filling


async def test_an_explicit_unsupported_filling_is_refused_by_the_server(trader: Trader) -> None:
    with pytest.raises(MT5TradeError) as caught:
        await trader.buy("US30", 0.1, type_filling=c.ORDER_FILLING_FOK)
    assert caught.value.retcode_name == "TRADE_RETCODE_INVALID_FILL"


async def test_broker_names_are_resolved_and_the_symbol_selected() -> None:
    term = SimTerminal(seed=1, clock=SimClock.fixed(SIM_START), symbol_suffix=".m")
    async with AsyncMT5Connector(sim_settings(), backend=term) as mt5:
        trader = Trader(mt5, settle=0)
        assert not (await mt5.get_symbol_info("EURCHF.m")).select
        result = await trader.buy("EURCHF", 0.1)
        assert result.request["symbol"] == "EURCHF.m"
        assert (await mt5.get_symbol_info("EURCHF.m")).select


async def test_order_check_reports_figures_without_trading(trader: Trader) -> None:
    check = await trader.order_check({"symbol": "EURUSD", "volume": 1, "type": c.ORDER_TYPE_BUY})
    assert check.ok
    assert check.margin > 0
    assert await trader.positions() == ()
    refused = await trader.order_check(TradeRequest(symbol="EURUSD", volume=90))
    assert (refused.ok, refused.retcode_name) == (False, "TRADE_RETCODE_NO_MONEY")


async def test_reads_refuse_ambiguous_filters(trader: Trader) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="one of"):
        await trader.positions("EURUSD", ticket=1)
    with pytest.raises(MT5InvalidArgumentError, match="naive"):
        await trader.history_deals(datetime(2026, 3, 1), datetime(2026, 3, 2))
    with pytest.raises(MT5InvalidArgumentError, match="date_from and date_to"):
        await trader.history_orders(ALL_TIME[0])


# ---------------------------------------------------------------- exactly once


async def test_lost_reply_is_reconciled_to_exactly_one_position(
    trader: Trader, term: SimTerminal, events: Events
) -> None:
    term.faults.lose_reply("order_send")
    result = await trader.buy("EURUSD", 0.3, comment="lost")
    assert result.reconciled
    assert (result.retcode_name, result.volume) == ("TRADE_RETCODE_DONE", 0.3)
    (position,) = await trader.positions()
    assert position.ticket == result.order
    assert len(await tagged_history(trader, result.tag)) == 1
    assert events.kinds() == ["ambiguous", "reconciled"]


async def test_terminal_restart_after_execution_is_reconciled_after_reconnecting(
    trader: Trader, term: SimTerminal
) -> None:
    term.faults.break_pipe_on("order_send", after_execution=True)
    result = await trader.sell("GBPUSD", 0.2)
    assert result.reconciled
    # Reconnected by the stand-in (or by the connector's own supervisor, whichever came first).
    assert trader._connector.get_connection_stats().reconnects >= 1
    assert [p.ticket for p in await trader.positions()] == [result.order]


async def test_reconciling_looks_again_as_soon_as_the_supervisor_reconnects(
    term: SimTerminal,
) -> None:
    term.faults.break_pipe_on("order_send", after_execution=True)
    async with AsyncMT5Connector(sim_settings(), backend=term) as mt5:
        # An hour between lookups: only noticing the reconnect can end the wait in time.
        trader = Trader(mt5, settle=0, retry_interval=3600)
        async with asyncio.timeout(60):
            result = await trader.sell("GBPUSD", 0.2)
        assert result.reconciled
        assert mt5.get_connection_stats().reconnects == 1


async def test_a_send_hanging_past_its_timeout_resolves_with_its_late_result(
    trader: Trader, term: SimTerminal, events: Events
) -> None:
    hang = term.faults.hang("order_send")
    sending = asyncio.create_task(trader.buy("EURUSD", 0.1, timeout=0.2))
    await events.wait_for("ambiguous")
    hang.release()
    result = await sending
    assert result.reconciled
    assert result.request_id > 0  # the terminal's own answer, not a lookup
    assert len(await trader.positions()) == 1
    assert events.kinds() == ["ambiguous", "late_result", "reconciled"]


async def test_a_late_result_carries_its_requests_tag(
    mt5: AsyncMT5Connector, trader: Trader, term: SimTerminal, events: Events
) -> None:
    late: list[LateResult] = []
    mt5.add_event_hook(lambda event: late.append(event) if isinstance(event, LateResult) else None)
    hang = term.faults.hang("order_send")
    sending = asyncio.create_task(trader.buy("EURUSD", 0.1, timeout=0.2))
    await events.wait_for("ambiguous")
    hang.release()
    result = await sending
    (event,) = late
    assert event.tag == result.tag  # structured: no parsing of the call's summary


async def test_a_late_refusal_is_raised_as_a_trade_error(
    trader: Trader, term: SimTerminal, events: Events
) -> None:
    hang = term.faults.hang("order_send")
    sending = asyncio.create_task(trader.buy("EURUSD", 90.0, timeout=0.2))
    await events.wait_for("ambiguous")
    hang.release()
    with pytest.raises(MT5TradeError) as caught:
        await sending
    assert caught.value.retcode_name == "TRADE_RETCODE_NO_MONEY"


async def test_a_send_stuck_beyond_the_budget_raises_outcome_unknown_with_the_tag(
    mt5: AsyncMT5Connector, term: SimTerminal, events: Events
) -> None:
    trader = Trader(mt5, settle=0, reconcile_timeout=0.0, on_event=events)
    hang = term.faults.hang("order_send")
    with pytest.raises(MT5TradeOutcomeUnknownError) as caught:
        await trader.buy("EURUSD", 0.1, timeout=0.2)
    error = caught.value
    assert isinstance(error, MT5OutcomeUnknownError)
    assert error.tag == error.request["comment"]
    assert "still running" in error.checked[-1]
    hang.release()
    late = await events.wait_for("late_result")
    assert late.tag == error.tag  # the late result is linked to the request by its tag
    found = await trader.lookup(error.tag, symbol="EURUSD")
    assert len(found.positions) == 1


async def test_a_provably_absent_order_is_not_resent_unless_allowed(
    trader: Trader, term: SimTerminal
) -> None:
    await proven_trader(trader)
    term.faults.fail("order_send", -10001)  # IPC send failed: never reached the terminal
    with pytest.raises(MT5OrderNotPlacedError) as caught:
        await trader.buy("EURUSD", 0.1)
    assert isinstance(caught.value.__cause__, MT5ConnectionError)
    assert any("history_orders_get" in step for step in caught.value.checked)
    assert await trader.positions(symbol="EURUSD") == ()
    term.faults.fail("order_send", -10001)
    result = await trader.buy("EURUSD", 0.1, resend_if_absent=True)
    assert (result.attempts, result.reconciled) == (2, False)
    assert len(await trader.positions(symbol="EURUSD")) == 1
    assert len(await tagged_history(trader, result.tag)) == 1


async def test_a_broken_pipe_before_execution_is_resent_once_after_reconnecting(
    trader: Trader, term: SimTerminal
) -> None:
    await proven_trader(trader)
    term.faults.break_pipe_on("order_send")
    result = await trader.sell("EURUSD", 0.1, resend_if_absent=True)
    assert result.attempts == 2
    assert trader._connector.get_connection_stats().reconnects >= 1
    assert len(await trader.positions(symbol="EURUSD")) == 1


async def test_absence_is_unproven_until_a_tag_was_seen_to_survive(
    trader: Trader, term: SimTerminal
) -> None:
    term.faults.fail("order_send", -10001)
    with pytest.raises(MT5TradeOutcomeUnknownError, match="absence unproven"):
        await trader.buy("EURUSD", 0.1, resend_if_absent=True)
    assert await trader.positions() == ()


async def test_a_lookup_that_cannot_reach_the_terminal_gives_up_at_the_budget(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    async def no_reconnect(_seconds: float) -> None:
        await asyncio.sleep(0)

    trader = Trader(mt5, settle=0, reconcile_timeout=0.05, retry_interval=0, sleep=no_reconnect)
    term.faults.lose_reply("order_send")
    term.faults.fail("orders_get", -10004, times=None)  # unreachable, reconnects or not
    with pytest.raises(MT5TradeOutcomeUnknownError) as caught:
        await trader.buy("EURUSD", 0.1)
    assert "lookup failed: MT5NotConnectedError" in caught.value.checked
    term.faults.clear()


async def test_lost_reply_of_a_pending_order_finds_the_placed_order(
    trader: Trader, term: SimTerminal
) -> None:
    tick = await trader._connector.call("symbol_info_tick", "EURUSD")
    term.faults.lose_reply("order_send")
    placed = await trader.place_pending(
        "EURUSD", c.ORDER_TYPE_SELL_LIMIT, 0.1, round(tick.bid + 0.005, 5)
    )
    assert (placed.reconciled, placed.retcode_name) == (True, "TRADE_RETCODE_PLACED")
    assert [o.ticket for o in await trader.orders()] == [placed.order]


async def test_lost_replies_of_modifications_are_reconciled_by_state(
    trader: Trader, term: SimTerminal
) -> None:
    await trader.buy("EURUSD", 0.1)
    (position,) = await trader.positions()
    term.faults.lose_reply("order_send")
    sl = round(position.price_open - 0.01, 5)
    modified = await trader.modify_position(position, sl=sl)
    assert modified.reconciled
    assert (await trader.positions())[0].sl == sl
    tick = await trader._connector.call("symbol_info_tick", "EURUSD")
    placed = await trader.place_pending(
        "EURUSD", c.ORDER_TYPE_BUY_LIMIT, 0.1, round(tick.ask - 0.005, 5)
    )
    term.faults.lose_reply("order_send")
    cancelled = await trader.cancel_order(placed.order)
    assert cancelled.reconciled
    assert await trader.orders() == ()


async def test_an_unapplied_modification_is_resent_when_allowed(
    trader: Trader, term: SimTerminal
) -> None:
    await trader.buy("EURUSD", 0.1)
    (position,) = await trader.positions()
    tp = round(position.price_open + 0.02, 5)
    term.faults.fail("order_send", -10001)
    with pytest.raises(MT5OrderNotPlacedError):
        await trader.modify_position(position, tp=tp)
    term.faults.fail("order_send", -10001)
    result = await trader.modify_position(position, tp=tp, resend_if_absent=True)
    assert result.attempts == 2
    assert (await trader.positions())[0].tp == tp


async def test_exactly_once_false_sends_the_comment_as_is_and_does_not_reconcile(
    trader: Trader, term: SimTerminal, events: Events
) -> None:
    term.faults.lose_reply("order_send")
    request = TradeRequest(symbol="EURUSD", volume=0.1, comment="plain")
    with pytest.raises(MT5ConnectionError):
        await trader.order_send(request, exactly_once=False)
    assert events.seen == []
    (position,) = await trader.positions()
    assert (position.comment, position.tag) == ("plain", None)


async def test_an_idempotency_key_tag_is_used_as_given(trader: Trader) -> None:
    tag = tag_from_key("signal-42")
    result = await trader.buy("EURUSD", 0.1, tag=tag)
    assert result.tag == tag
    assert (await trader.lookup(tag, symbol="EURUSD")).found
    with pytest.raises(MT5InvalidArgumentError, match="not a client tag"):
        await trader.buy("EURUSD", 0.1, tag="mine")


# ---------------------------------------------------------------- soak


async def run_order_soak(orders: int, seed: int) -> Counter[str]:
    """Sequential orders under ambiguous-outcome, broken-pipe and hang faults; checks each tag."""
    rng = random.Random(seed)
    netting = c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    term = SimTerminal(seed=seed, clock=SimClock.fixed(SIM_START), margin_mode=netting)
    reconnector = Reconnector()
    outcomes: Counter[str] = Counter()
    volumes = {"EURUSD": 0.01, "GBPUSD": 0.01, "USDJPY": 0.01, "EURCHF": 0.01, "US30": 0.1}
    async with AsyncMT5Connector(sim_settings(), backend=term) as mt5:
        reconnector.connector = mt5
        trader = Trader(mt5, settle=0, sleep=reconnector)
        sent: dict[str, OrderResult] = {}
        net: Counter[str] = Counter()
        warm = await trader.buy("EURUSD", 0.01)
        sent[warm.tag] = warm
        for _ in range(orders):
            roll = rng.random()
            timeout: float | None = None
            if roll < 0.04:
                term.faults.lose_reply("order_send")
            elif roll < 0.06:
                term.faults.break_pipe_on("order_send", after_execution=True)
            elif roll < 0.08:
                term.faults.break_pipe_on("order_send")
            elif roll < 0.10:
                term.faults.fail("order_send", -10001)
            elif roll < 0.11:
                term.faults.hang("order_send", seconds=0.02)
                timeout = 0.005
            elif roll < 0.12:
                term.faults.fail("history_orders_get", -10002)
                term.faults.lose_reply("order_send")
            symbol = rng.choice(tuple(volumes))
            # Random sides, kept within 3 lots-steps per symbol so the margin stays affordable.
            buy = rng.random() < 0.5 if abs(net[symbol]) < 3 else net[symbol] < 0
            net[symbol] += 1 if buy else -1
            side = trader.buy if buy else trader.sell
            tag = new_tag()
            while True:
                try:
                    result = await side(
                        symbol,
                        volumes[symbol],
                        resend_if_absent=True,
                        timeout=timeout if timeout is not None else 5.0,
                        tag=tag,
                    )
                except MT5TimeoutError as exc:
                    # Timed out while still queued ("never ran"), or the operation's deadline
                    # passed before its next call ("was not sent"): the same tag again is safe
                    # (the trader looks it up before sending; the audit below would see a
                    # duplicate). On a loaded machine 5 ms can pass before the first call.
                    if "never ran" not in str(exc) and "was not sent" not in str(exc):
                        raise
                    outcomes["never_ran"] += 1
                    timeout = None
                    continue
                break
            outcomes["reconciled" if result.reconciled else "answered"] += 1
            outcomes["resent"] += result.attempts - 1
            sent[result.tag] = result
        outcomes.update(await audit_history(trader, sent))
        outcomes["reconnects"] = mt5.get_connection_stats().reconnects
        term.faults.clear()
    return outcomes


async def test_order_soak_reduced_has_no_duplicate_and_no_lost_order() -> None:
    outcomes = await run_order_soak(400, seed=7)
    assert outcomes["answered"] + outcomes["reconciled"] == 400
    assert (outcomes["duplicates"], outcomes["lost"], outcomes["unexpected"]) == (0, 0, 0)
    assert outcomes["reconciled"] > 10
    assert outcomes["resent"] > 5
    assert outcomes["reconnects"] > 5


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_order_soak_10k_has_no_duplicate_and_no_lost_order() -> None:
    outcomes = await run_order_soak(10_000, seed=2026)
    assert outcomes["answered"] + outcomes["reconciled"] == 10_000
    assert (outcomes["duplicates"], outcomes["lost"], outcomes["unexpected"]) == (0, 0, 0)
    assert outcomes["reconciled"] > 300


def test_results_are_immutable() -> None:
    result = OrderResult(
        retcode=10009, retcode_name="", deal=1, order=1, volume=1.0, price=1.0, bid=1.0,
        ask=1.0, comment="", request_id=1, retcode_external=0, request={}, tag="",
    )  # fmt: skip
    with pytest.raises(FrozenInstanceError):
        result.retcode = 1  # type: ignore[misc]


async def test_close_by_closes_two_opposite_positions_and_survives_a_lost_reply(
    trader: Trader, term: SimTerminal
) -> None:
    long = await trader.buy("EURUSD", 0.2)
    short = await trader.sell("EURUSD", 0.2)
    term.faults.lose_reply("order_send")
    result = await trader.order_send(
        {"action": c.TRADE_ACTION_CLOSE_BY, "position": long.order, "position_by": short.order}
    )
    assert result.reconciled
    assert await trader.positions() == ()
    (order,) = await tagged_history(trader, result.tag)
    assert order.type == c.ORDER_TYPE_CLOSE_BY


async def test_reconciliation_waits_for_the_connector_to_be_connected_again(
    mt5: AsyncMT5Connector, term: SimTerminal, events: Events
) -> None:
    async def must_not_poll(_seconds: float) -> None:
        raise AssertionError("a disconnected connector is waited for, not polled")

    trader = Trader(mt5, settle=0, on_event=events, sleep=must_not_poll)
    term.faults.break_pipe_on("order_send", after_execution=True)
    sending = asyncio.create_task(trader.buy("EURUSD", 0.1))
    await events.wait_for("ambiguous")
    await mt5.disconnect()  # as a supervisor would, on seeing the broken pipe
    assert not sending.done()
    await mt5.connect()
    result = await sending
    assert result.reconciled
    assert [p.ticket for p in await trader.positions()] == [result.order]


async def test_a_resend_waits_for_its_own_late_result_not_the_first_attempts(
    trader: Trader, term: SimTerminal, events: Events
) -> None:
    await proven_trader(trader)
    first = term.faults.hang("order_send")
    term.faults.fail("order_send", -10001)  # the first attempt hangs, then never executes
    sending = asyncio.create_task(trader.buy("EURUSD", 0.1, timeout=0.2, resend_if_absent=True))
    await events.wait_for("ambiguous")
    second = term.faults.hang("order_send")  # the re-send hangs too, then executes
    first.release()
    await events.wait_for("ambiguous", count=2)
    second.release()
    result = await sending
    assert (result.attempts, result.reconciled, result.retcode_name) == (
        2,
        True,
        "TRADE_RETCODE_DONE",
    )
    assert result.request_id > 0  # the re-send's own answer, not a lookup
    assert len(await trader.positions(symbol="EURUSD")) == 1


async def test_a_lookup_refused_by_the_terminal_is_retried_not_reported_as_the_outcome(
    trader: Trader, term: SimTerminal, reconnector: Reconnector
) -> None:
    term.faults.lose_reply("order_send")
    term.faults.fail("orders_get", -1)  # "Terminal: Call failed", e.g. the trade server is down
    result = await trader.buy("EURUSD", 0.1)
    assert result.reconciled
    assert reconnector.reconnects == 1
    assert len(await trader.positions()) == 1


async def test_a_trade_on_a_closed_market_raises_market_closed_with_when_it_opens(
    trader: Trader, term: SimTerminal
) -> None:
    term.clock.set("2026-03-07T12:00:00Z")  # Saturday
    with pytest.raises(MT5MarketClosedError) as raised:
        await trader.buy("EURUSD", 0.1)
    error = raised.value
    assert isinstance(error, MT5TradeError)
    assert (error.retcode, error.symbol) == (c.TRADE_RETCODE_MARKET_CLOSED, "EURUSD")
    assert error.opens_at == datetime(2026, 3, 9, tzinfo=UTC)
    assert "EURUSD" in str(error)
    assert "2026-03-09T00:00:00+00:00" in str(error)
