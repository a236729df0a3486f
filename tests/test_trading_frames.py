"""Positions, orders and deals as pandas/polars frames: UTC times, enum columns, round trip."""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import polars as pl
import pytest

from aiomt5 import (
    AsyncMT5Connector,
    Deal,
    DealEntry,
    Order,
    OrderState,
    OrderType,
    Position,
    PositionType,
)
from aiomt5._trading import _models
from aiomt5.sim import SimTerminal
from aiomt5.testing import sim_settings, sim_terminal

ENGINES = ["pandas", "polars"]


@pytest.fixture
def term() -> SimTerminal:
    return sim_terminal(41)


@pytest.fixture
async def mt5(term: SimTerminal) -> AsyncIterator[AsyncMT5Connector]:
    async with AsyncMT5Connector(sim_settings(), backend=term) as connector:
        await connector.buy("EURUSD", 0.1)
        await connector.sell("USDJPY", 0.2)
        await connector.buy("GBPUSD", 0.3)
        closing = (await connector.positions("GBPUSD"))[0]
        await connector.close_position(closing)
        tick = await connector.call("symbol_info_tick", "EURUSD")
        await connector.place_pending("EURUSD", OrderType.SELL_LIMIT, 0.1, tick.bid + 0.01)
        yield connector


def _rows(frame: Any) -> list[dict[str, Any]]:
    if isinstance(frame, pl.DataFrame):
        return frame.to_dicts()
    return [
        {k: (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def _record(kind: type[Any], row: dict[str, Any]) -> Any:
    """Rebuild a record from a frame row: enum names back to members, nulls back to None."""
    hints = typing.get_type_hints(kind, globalns=vars(_models))
    values = {}
    for field in dataclasses.fields(kind):
        value = row[field.name]
        options = typing.get_args(hints[field.name]) or (hints[field.name],)
        family = next(
            (o for o in options if isinstance(o, type) and issubclass(o, enum.Enum)), None
        )
        if family is not None:
            value = family[value]
        elif value is pd.NaT or (
            isinstance(value, float) and value != value and datetime in options
        ):
            value = None
        values[field.name] = value
    return kind(**values)


async def _since(mt5: AsyncMT5Connector) -> tuple[datetime, datetime]:
    now = datetime(2026, 3, 4, 12, tzinfo=UTC)
    return now - timedelta(days=1), now + timedelta(days=1)


@pytest.mark.parametrize("engine", ENGINES)
async def test_positions_frame_round_trips(mt5: AsyncMT5Connector, engine: Any) -> None:
    records = await mt5.positions()
    frame = await mt5.positions_frame(engine=engine)
    assert list(frame.columns) == [f.name for f in dataclasses.fields(Position)]
    assert [_record(Position, row) for row in _rows(frame)] == list(records)
    assert sorted(_rows(frame), key=lambda r: r["symbol"])[0]["type"] == "BUY"


@pytest.mark.parametrize("engine", ENGINES)
async def test_orders_and_history_frames_round_trip(mt5: AsyncMT5Connector, engine: Any) -> None:
    start, end = await _since(mt5)
    cases = [
        (Order, await mt5.orders(), await mt5.orders_frame(engine=engine)),
        (
            Order,
            await mt5.history_orders(start, end),
            await mt5.history_orders_frame(start, end, engine=engine),
        ),
        (
            Deal,
            await mt5.history_deals(start, end),
            await mt5.history_deals_frame(start, end, engine=engine),
        ),
    ]
    for kind, records, frame in cases:
        assert records, kind
        assert [_record(kind, row) for row in _rows(frame)] == list(records)


async def test_pandas_columns_are_utc_times_and_enum_categories(mt5: AsyncMT5Connector) -> None:
    start, end = await _since(mt5)
    deals = await mt5.history_deals_frame(start, end, engine="pandas")
    assert str(deals["time"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(deals["entry"].dtype, pd.CategoricalDtype)
    assert list(deals["entry"].cat.categories) == list(DealEntry.__members__)
    assert set(deals["entry"]) == {"IN", "OUT"}
    orders = await mt5.orders_frame(engine="pandas")
    assert orders["time_done"].isna().all()  # pending: not done yet
    assert orders["state"].iloc[0] == OrderState.PLACED.name
    assert str(orders["volume_initial"].dtype) == "float64"
    assert str(orders["ticket"].dtype) == "int64"


async def test_polars_columns_are_utc_times_and_enums(mt5: AsyncMT5Connector) -> None:
    frame = await mt5.positions_frame(engine="polars")
    assert frame.schema["time"] == pl.Datetime("us", "UTC")
    assert frame.schema["type"] == pl.Enum(list(PositionType.__members__))
    assert frame.filter(pl.col("type") == "SELL")["symbol"].to_list() == ["USDJPY"]


@pytest.mark.parametrize("engine", ENGINES)
async def test_an_empty_result_is_an_empty_frame_with_the_columns(
    mt5: AsyncMT5Connector, engine: Any
) -> None:
    frame = await mt5.positions_frame("NZDUSD", engine=engine)
    assert len(frame) == 0
    assert list(frame.columns) == [f.name for f in dataclasses.fields(Position)]
