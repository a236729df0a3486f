"""Trading ergonomics: rounded prices, checked volumes, symbols in errors, sizing from risk."""

from __future__ import annotations

import inspect
import random
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest

import aiomt5
from aiomt5 import (
    AsyncMT5Connector,
    MT5InvalidArgumentError,
    MT5TradeError,
    OrderType,
    TradeRetcode,
)
from aiomt5._trading._sizing import SymbolRules
from aiomt5.sim import SimTerminal
from aiomt5.testing import sim_settings, sim_terminal


@pytest.fixture
def term() -> SimTerminal:
    return sim_terminal(31)


@pytest.fixture
async def mt5(term: SimTerminal) -> AsyncIterator[AsyncMT5Connector]:
    async with AsyncMT5Connector(sim_settings(), backend=term) as connector:
        yield connector


def _rules(**overrides: float) -> SymbolRules:
    info = SimpleNamespace(
        name="XYZ", digits=5, point=1e-5, trade_tick_size=1e-5,
        volume_min=0.01, volume_max=50.0, volume_step=0.01,
    )  # fmt: skip
    for key, value in overrides.items():
        setattr(info, key, value)
    return SymbolRules.from_info(info)


def test_prices_are_put_on_the_tick_grid_and_digits() -> None:
    assert _rules().price(1.3178999999999998) == 1.3179
    assert _rules(digits=2, point=0.01, trade_tick_size=0.25).price(101.37) == 101.25
    assert _rules().price(0.0) == 0.0


def test_volume_check_names_the_symbol_and_its_limits() -> None:
    rules = _rules()
    assert rules.check_volume(0.30000000000000004) == 0.3
    for bad in (0.005, 0.123, 51.0):
        with pytest.raises(MT5TradeError) as caught:
            rules.check_volume(bad)
        assert "XYZ (min 0.01, max 50, step 0.01)" in str(caught.value)
        assert caught.value.retcode == TradeRetcode.INVALID_VOLUME


def test_nearest_volume_is_on_a_step_within_the_limits() -> None:
    rules = _rules(volume_min=0.1, volume_step=0.1, volume_max=5.0)
    assert rules.nearest_volume(0.26) == 0.3
    assert rules.nearest_volume(0.01) == 0.1
    assert rules.nearest_volume(99.0) == 5.0


async def test_sl_and_tp_are_sent_rounded(mt5: AsyncMT5Connector) -> None:
    tick = await mt5.call("symbol_info_tick", "EURUSD")
    sl = tick.bid - 0.0050000000000001
    tp = tick.ask + 0.00500000000001
    result = await mt5.buy("EURUSD", 0.1, sl=sl, tp=tp)
    info = await mt5.get_symbol_info("EURUSD")
    for key, raw in (("sl", sl), ("tp", tp)):
        sent = result.request[key]
        assert sent == round(raw, info.digits)
        assert repr(sent) == repr(round(sent, info.digits))
    position = (await mt5.positions("EURUSD"))[0]
    assert (position.sl, position.tp) == (result.request["sl"], result.request["tp"])


async def test_a_bad_volume_is_refused_before_sending(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    with pytest.raises(MT5TradeError, match=r"EURUSD \(min 0\.01, max \d+, step 0\.01\)"):
        await mt5.buy("EURUSD", 0.015)
    assert term.calls.get("order_send", 0) == 0


async def test_server_refusals_name_the_symbol(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5TradeError) as caught:
        await mt5.buy("USDJPY", 100.0)  # far more than the account's margin
    assert "USDJPY" in str(caught.value)
    assert caught.value.retcode == TradeRetcode.NO_MONEY


async def test_every_sending_method_takes_the_same_exactly_once_options(
    mt5: AsyncMT5Connector,
) -> None:
    options = {"reconcile_timeout": 1.0, "exactly_once": False}
    opened = await mt5.buy("EURUSD", 0.1, comment="plain", **options)
    assert opened.tag == ""
    assert opened.request["comment"] == "plain"
    position = (await mt5.positions("EURUSD"))[0]
    assert (await mt5.modify_position(position, sl=position.price_open - 0.01, **options)).ok
    tick = await mt5.call("symbol_info_tick", "EURUSD")
    pending = await mt5.place_pending(
        "EURUSD", OrderType.BUY_LIMIT, 0.1, tick.ask - 0.01, deviation=5, **options
    )
    assert (await mt5.cancel_order(pending.order, **options)).ok
    assert (await mt5.close_position(position, magic=7, deviation=5, **options)).ok
    assert (await mt5.sell("EURUSD", 0.1, **options)).ok


async def test_normalize_helpers_use_the_symbol(mt5: AsyncMT5Connector) -> None:
    info = await mt5.get_symbol_info("EURUSD")
    assert await mt5.normalize_price("EURUSD", 1.123456789) == round(1.123456789, info.digits)
    assert await mt5.normalize_volume("EURUSD", 0.123) == 0.12
    assert await mt5.normalize_volume("EURUSD", 10_000) == info.volume_max


@pytest.mark.parametrize("symbol", ["EURUSD", "USDJPY", "XAUUSD", "GBPJPY"])
async def test_volume_for_risk_never_exceeds_the_risk_and_is_the_largest_step(
    mt5: AsyncMT5Connector, symbol: str
) -> None:
    await mt5.call("symbol_select", symbol, True)  # quotes flow only for selected symbols
    info = await mt5.get_symbol_info(symbol)
    rng = random.Random(symbol)
    for _ in range(12):
        kind = rng.choice([OrderType.BUY, OrderType.SELL, OrderType.BUY_LIMIT, OrderType.SELL_STOP])
        distance = info.point * rng.randint(50, 3000)
        price = (await mt5.call("symbol_info_tick", symbol)).ask
        sl = price - distance if kind in (OrderType.BUY, OrderType.BUY_LIMIT) else price + distance
        risk = rng.uniform(20, 5000)
        smallest = await mt5.call("order_calc_profit", kind % 2, symbol, info.volume_min, price, sl)
        if -smallest > risk:
            with pytest.raises(MT5InvalidArgumentError, match="smallest volume"):
                await mt5.volume_for_risk(symbol, kind, price, sl, risk)
            continue
        volume = await mt5.volume_for_risk(symbol, kind, price, sl, risk)
        direction = 0 if kind in (OrderType.BUY, OrderType.BUY_LIMIT) else 1
        rounded_price = await mt5.normalize_price(symbol, price)
        rounded_sl = await mt5.normalize_price(symbol, sl)

        async def loss(
            v: float, d: int = direction, p: float = rounded_price, s: float = rounded_sl
        ) -> float:
            profit = await mt5.call("order_calc_profit", d, symbol, v, p, s)
            return -float(profit)

        assert await loss(volume) <= risk
        assert volume == await mt5.normalize_volume(symbol, volume)
        bigger = round(volume + info.volume_step, 8)
        assert bigger > info.volume_max or await loss(bigger) > risk


async def test_volume_for_risk_refuses_a_stop_on_the_wrong_side(mt5: AsyncMT5Connector) -> None:
    with pytest.raises(MT5InvalidArgumentError, match="must be below"):
        await mt5.volume_for_risk("EURUSD", OrderType.BUY, 1.10, 1.11, 100)
    with pytest.raises(MT5InvalidArgumentError, match="not a buy or sell"):
        await mt5.volume_for_risk("EURUSD", 99, 1.10, 1.09, 100)
    with pytest.raises(MT5InvalidArgumentError, match="smallest volume"):
        await mt5.volume_for_risk("EURUSD", OrderType.BUY, 1.10, 1.00, 0.5)


def test_enums_are_accepted_where_ints_are() -> None:
    assert (
        aiomt5.TradeRequest(action=aiomt5.TradeAction.PENDING, type=OrderType.SELL_STOP).type == 5
    )


EXACTLY_ONCE_OPTIONS = {"timeout", "exactly_once", "reconcile_timeout", "resend_if_absent", "tag"}
ORDER_OPTIONS = {"deviation", "magic", "comment", "type_filling"}
SENDING = ["order_send", "buy", "sell", "close_position", "modify_position", "place_pending"]
CREATING = ["buy", "sell", "close_position", "place_pending"]


@pytest.mark.parametrize("owner", [aiomt5.Trader, AsyncMT5Connector, aiomt5.MT5Connector])
def test_the_same_options_wherever_an_order_is_sent(owner: type) -> None:
    for name in [*SENDING, "cancel_order"]:
        parameters = inspect.signature(getattr(owner, name)).parameters
        assert set(parameters) >= EXACTLY_ONCE_OPTIONS, (owner.__name__, name)
        for option in EXACTLY_ONCE_OPTIONS:
            assert parameters[option].kind is inspect.Parameter.KEYWORD_ONLY
    for name in CREATING:
        parameters = inspect.signature(getattr(owner, name)).parameters
        assert set(parameters) >= ORDER_OPTIONS, (owner.__name__, name)


async def test_ambiguous_and_absent_outcomes_name_the_symbol(
    mt5: AsyncMT5Connector, term: SimTerminal
) -> None:
    term.faults.fail("order_send", code=-10001)  # ambiguous: reconciled, then unknown
    with pytest.raises(aiomt5.MT5TradeOutcomeUnknownError) as caught:
        await mt5.sell("GBPUSD", 0.1)
    assert str(caught.value).startswith("order_send(GBPUSD, tag=~")
    refused = aiomt5.MT5TradeError(
        "refused", retcode=10019, request={"symbol": "XAUUSD"}, args_summary="order_send(tag=~x)"
    )
    assert "on XAUUSD" in str(refused)
