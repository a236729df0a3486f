"""MT5 definitions: ``aiomt5.constants`` and the enums against the reference surface of 5.0.6231."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

import aiomt5
import aiomt5.constants
import aiomt5.sim
from aiomt5._mt5 import constants as source
from aiomt5._mt5.enums import FAMILIES, enum_or_int

SURFACE: dict[str, Any] = json.loads(
    (pathlib.Path(__file__).parent / "data" / "mt5_api_surface.json").read_text()
)
REFERENCE: dict[str, int] = SURFACE["constants"]


def test_constants_module_has_every_reference_constant_with_its_value() -> None:
    from aiomt5.constants import ORDER_TYPE_BUY_LIMIT, TRADE_RETCODE_DONE

    assert (ORDER_TYPE_BUY_LIMIT, TRADE_RETCODE_DONE) == (2, 10009)
    assert len(REFERENCE) == 223
    values = {name: getattr(aiomt5.constants, name) for name in aiomt5.constants.__all__}
    assert values == REFERENCE
    assert all(type(value) is int for value in values.values())  # plain ints, as MetaTrader5


def test_star_import_gives_exactly_the_reference_names() -> None:
    namespace: dict[str, Any] = {}
    exec("from aiomt5.constants import *", namespace)
    namespace.pop("__builtins__")
    assert namespace == REFERENCE


def test_simulator_module_exposes_the_same_constant_objects() -> None:
    module = aiomt5.sim.make_module(aiomt5.sim.SimTerminal(seed=1))
    assert {name: getattr(module, name) for name in REFERENCE} == REFERENCE


def test_every_enum_member_is_its_constant_and_every_constant_of_a_family_is_a_member() -> None:
    for kind, (prefix, extra) in FAMILIES.items():
        expected = {n: v for n, v in REFERENCE.items() if n.startswith(prefix) or n in extra}
        members = {
            (prefix + name if prefix + name in REFERENCE else "DEAL_" + name): int(member)
            for name, member in kind.__members__.items()
        }
        assert members == expected, kind.__name__


def test_timeframe_values_come_from_the_constants() -> None:
    for member in aiomt5.Timeframe:
        assert member == REFERENCE[f"TIMEFRAME_{member.name}"]


@pytest.mark.parametrize(
    "name",
    [
        "OrderType",
        "TradeAction",
        "OrderFilling",
        "OrderTime",
        "OrderState",
        "DealType",
        "DealEntry",
        "DealReason",
        "PositionType",
        "TradeRetcode",
    ],
)
def test_design_enums_are_exported_from_aiomt5(name: str) -> None:
    assert name in aiomt5.__all__
    assert getattr(aiomt5, name).__module__ == "aiomt5"


def test_an_enum_member_equals_the_mt5_int() -> None:
    assert aiomt5.OrderType.BUY_LIMIT == 2
    assert aiomt5.TradeRetcode.DONE == source.TRADE_RETCODE_DONE
    assert {aiomt5.DealEntry.OUT: "x"}[1] == "x"


def test_enum_or_int_keeps_an_unknown_value_as_an_int() -> None:
    assert enum_or_int(aiomt5.DealReason, 4) is aiomt5.DealReason.SL
    assert enum_or_int(aiomt5.DealReason, 99) == 99
    assert type(enum_or_int(aiomt5.DealReason, 99)) is int


def _position(**values: Any) -> SimpleNamespace:
    base = dict.fromkeys(
        ("ticket", "time_msc", "time_update_msc", "magic", "identifier", "volume"), 1
    )
    base |= dict.fromkeys(("price_open", "sl", "tp", "price_current", "swap", "profit"), 0.0)
    base |= {"symbol": "EURUSD", "comment": "", "external_id": "", "type": 1, "reason": 3}
    return SimpleNamespace(**(base | values))


def test_models_carry_enum_members_for_their_families() -> None:
    position = aiomt5.Position.from_struct(_position())
    assert position.type is aiomt5.PositionType.SELL
    assert position.reason is aiomt5.PositionReason.EXPERT
    assert position.time == datetime.fromtimestamp(0.001, UTC)
    unknown = aiomt5.Position.from_struct(_position(type=7))
    assert unknown.type == 7


def test_remote_client_does_not_import_the_simulator() -> None:
    code = (
        "import sys, aiomt5._remote._client, aiomt5._remote._aiomt5, aiomt5._remote._mt5linux;"
        "print(sorted(m for m in sys.modules if m.startswith('aiomt5.sim')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_importing_the_constants_stays_light() -> None:
    code = "import sys, aiomt5.constants; print('numpy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
