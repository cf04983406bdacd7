"""Rows as Arrow tables: the type each ClickHouse column's values travel as."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from kept_storage.arrow_columns import arrow_table, arrow_type


@pytest.mark.parametrize(
    ("clickhouse", "arrow"),
    [
        ("LowCardinality(String)", pa.string()),
        ("UUID", pa.string()),
        ("Nullable(UInt32)", pa.uint32()),
        ("Enum8('none' = 0, 'text' = 1, 'chat' = 2)", pa.string()),
        ("DateTime64(3, 'UTC')", pa.timestamp("us", tz="UTC")),
        ("Map(LowCardinality(String), String)", pa.map_(pa.string(), pa.string())),
        ("Map(String, Array(LowCardinality(String)))", pa.map_(pa.string(), pa.list_(pa.string()))),
        ("Array(Nullable(Float64))", pa.list_(pa.float64())),
    ],
)
def test_each_column_type_has_its_arrow_type(clickhouse: str, arrow: pa.DataType) -> None:
    assert arrow_type(clickhouse) == arrow


def test_a_type_without_an_arrow_form_is_named() -> None:
    with pytest.raises(ValueError, match="Decimal"):
        arrow_type("Decimal(18, 4)")


def test_a_column_the_table_lacks_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no such columns: colour"):
        arrow_table({"colour": ["red"]}, {"name": "String"})


def test_times_in_any_zone_become_utc_instants() -> None:
    paris = timezone(timedelta(hours=1))
    moment = datetime(2026, 1, 2, 4, 4, 5, 123999, tzinfo=paris)
    table = arrow_table({"ts": [moment, None]}, {"ts": "Nullable(DateTime64(3, 'UTC'))"})
    assert table.column("ts").to_pylist() == [moment.astimezone(timezone.utc), None]


def test_a_simple_aggregate_takes_plain_values_of_its_type() -> None:
    assert arrow_type("SimpleAggregateFunction(sumMap, Map(UInt32, Int64))") == pa.map_(
        pa.uint32(), pa.int64()
    )


def test_times_given_as_microseconds_are_the_same_instants() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 123999, tzinfo=timezone.utc)
    micros = (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    table = arrow_table({"ts": [micros]}, {"ts": "DateTime64(3, 'UTC')"})
    assert table.column("ts").to_pylist() == [moment]
