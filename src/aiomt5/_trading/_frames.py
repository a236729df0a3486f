"""Positions, orders and deals as pandas or polars data frames.

One column per field of the record (``Position``, ``Order``, ``Deal``), in the record's order:

* times are UTC datetimes (``None`` — an order not done, no expiration — is a null);
* enum fields (``type``, ``state``, ``entry``, ``reason``...) are categorical columns of the
  member names (``"BUY"``, ``"SELL_LIMIT"``, ``"OUT"``): pandas ``category``, polars ``Enum``,
  with every member as a category so filters and group-bys see the whole family; a value this
  version does not name shows as its number;
* numbers and strings keep their types (ints ``int64``, prices and volumes ``float64``).

An empty result is an empty frame with the same columns and types.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import types
import typing
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal

from aiomt5._market._frames import FrameEngine, resolve_engine

from . import _models
from ._models import Deal, Order, Position

__all__ = ["records_to_frame"]

Record = Position | Order | Deal
_Kind = Literal["datetime", "enum", "int", "float", "str"]
_SCALARS: Final[dict[type, _Kind]] = {int: "int", float: "float", str: "str", datetime: "datetime"}


_Column = tuple[str, _Kind, type[enum.IntEnum] | None]


def _family(options: tuple[Any, ...]) -> type[enum.IntEnum] | None:
    return next((o for o in options if isinstance(o, type) and issubclass(o, enum.IntEnum)), None)


@functools.cache
def _schema(record: type[Any]) -> tuple[_Column, ...]:
    """Each field's name, column kind and enum (for enum fields) of a record type."""
    # The records' home module is where their annotations resolve (``__module__`` is "aiomt5").
    hints = typing.get_type_hints(record, globalns=vars(_models))
    schema: list[_Column] = []
    for field in dataclasses.fields(record):
        hint = hints[field.name]
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        family = _family(options)
        if family is not None:
            schema.append((field.name, "enum", family))
        else:
            scalar = next(o for o in options if o is not type(None))
            schema.append((field.name, _SCALARS[scalar], None))
    return tuple(schema)


def _name(value: int) -> str:
    return value.name if isinstance(value, enum.IntEnum) and value.name else str(int(value))


def _categories(family: type[enum.IntEnum], names: list[str]) -> list[str]:
    known = list(family.__members__)
    return known + sorted(set(names) - set(known))


def records_to_frame(
    records: Sequence[Record], record: type[Record], engine: FrameEngine | None = None
) -> Any:
    """``records`` (all of type ``record``) as a pandas or polars frame; see the module doc."""
    chosen = resolve_engine(engine)
    build = _pandas if chosen == "pandas" else _polars
    schema: tuple[_Column, ...] = _schema(record)  # type: ignore[arg-type]  # types hash
    return build(records, schema)


def _pandas(records: Sequence[Record], schema: tuple[_Column, ...]) -> Any:
    pd = importlib.import_module("pandas")

    columns: dict[str, Any] = {}
    for name, kind, family in schema:
        values = [getattr(r, name) for r in records]
        if kind == "datetime":
            columns[name] = pd.Series(pd.to_datetime(values, utc=True), dtype="datetime64[ns, UTC]")
        elif kind == "enum":
            names = [_name(v) for v in values]
            assert family is not None
            columns[name] = pd.Categorical(names, categories=_categories(family, names))
        else:
            dtype = {"int": "int64", "float": "float64", "str": "object"}[kind]
            columns[name] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(columns)


def _polars(records: Sequence[Record], schema: tuple[_Column, ...]) -> Any:
    pl = importlib.import_module("polars")

    columns = []
    for name, kind, family in schema:
        values = [getattr(r, name) for r in records]
        if kind == "enum":
            names = [_name(v) for v in values]
            assert family is not None
            columns.append(pl.Series(name, names, dtype=pl.Enum(_categories(family, names))))
        else:
            dtype: Any = {
                "datetime": pl.Datetime("us", "UTC"),
                "int": pl.Int64,
                "float": pl.Float64,
                "str": pl.String,
            }[kind]
            columns.append(pl.Series(name, values, dtype=dtype))
    return pl.DataFrame(columns)
