"""Column-oriented rows as an Arrow table, typed by the ClickHouse columns they go into.

Inserts travel as Arrow (`Store.insert_columns`): pyarrow turns each Python list into a
column in C, and ClickHouse converts Arrow's types into the table's (a string into a
UUID, an enum or a LowCardinality, a UTC timestamp into DateTime64, truncating to its
precision). The driver's own encoder went value by value in Python: measured, half of a
consumer's insert CPU, and rows had to carry ids as numbers and times as integer ticks
for it, which cost as much again to make.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

_WRAPPER = re.compile(r"(?:LowCardinality|Nullable)\((.*)\)")
_PLAIN: dict[str, pa.DataType] = {
    "String": pa.string(),
    # A UUID travels as its text: rows hold ids as the events wrote them (any case).
    "UUID": pa.string(),
    "Bool": pa.bool_(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Float32": pa.float32(),
    "Float64": pa.float64(),
}
_TIME = pa.timestamp("us", tz="UTC")
"""Times as datetimes (aware in any zone, or naive UTC) or as ints (microseconds since
the epoch: a ninth of an aware datetime's conversion cost); the column's DateTime64
precision truncates."""


def arrow_type(clickhouse_type: str) -> pa.DataType:
    """The Arrow type that a Python value of a `clickhouse_type` column travels as."""
    name = clickhouse_type
    while match := _WRAPPER.fullmatch(name):
        name = match.group(1)
    if name in _PLAIN:
        return _PLAIN[name]
    if name.startswith(("Enum8(", "Enum16(")):
        return pa.string()  # by the value's name
    if name.startswith(("DateTime64(", "DateTime(")) or name == "DateTime":
        return _TIME
    if name.startswith("Map("):
        key, value = _arguments(name)
        return pa.map_(arrow_type(key), arrow_type(value))
    if name.startswith("Array("):
        return pa.list_(arrow_type(name[len("Array(") : -1]))
    if name.startswith("SimpleAggregateFunction("):
        return arrow_type(_arguments(name)[1])  # a value of the function's type
    raise ValueError(f"no Arrow type for the ClickHouse type {clickhouse_type}")


def _arguments(name: str) -> list[str]:
    """The top-level arguments of a type like `Map(K, V)` (types can nest parentheses)."""
    inner = name[name.index("(") + 1 : -1]
    parts, depth, start = [], 0, 0
    for index, char in enumerate(inner):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(inner[start:index].strip())
            start = index + 1
    parts.append(inner[start:].strip())
    return parts


def arrow_table(columns: Mapping[str, Sequence[Any]], types: Mapping[str, str]) -> pa.Table:
    """`columns` (name → values, all of one length) as an Arrow table for the table whose
    column types are `types`. Raises ValueError for a column the table does not have."""
    unknown = [name for name in columns if name not in types]
    if unknown:
        raise ValueError(f"no such columns: {', '.join(unknown)}")
    return pa.table(
        {name: pa.array(values, arrow_type(types[name])) for name, values in columns.items()}
    )
