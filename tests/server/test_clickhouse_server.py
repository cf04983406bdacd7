"""The same storage code against a real ClickHouse server over HTTP.

The server is KEPT_TEST_CLICKHOUSE_URL when set (e.g. http://default:@127.0.0.1:8123),
else one the session starts from the chdb-core wheel (tests/clickhouse.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from kept_analytics.lease import Lease
from kept_analytics.outcomes import OutcomesJob
from kept_analytics.report import ReportSpec, report
from kept_analytics.runner import run_once
from kept_ingest.decode import decode_json_array
from kept_ingest.metrics import IngestMetrics
from kept_ingest.rows import to_rows
from kept_ingest.writer import BatchWriter
from kept_service.runtime.status import store_status
from kept_storage import Store, migrate
from kept_storage.arrow_columns import arrow_type
from kept_storage.migrate import available
from tests.clickhouse import SERVER_TIME_ZONE
from tests.helpers import (
    CLICKHOUSE_URL_VAR,
    feedback,
    generation,
    now_iso,
    server_database,
    store_events,
)

pytestmark = pytest.mark.clickhouse_server


def test_the_local_server_is_a_real_clickhouse_server(clickhouse_url: str) -> None:
    store = Store(clickhouse_url, "default")
    try:
        assert str(store.scalar("SELECT version()")).startswith("26.")
        assert store.scalar("SELECT count() FROM system.databases WHERE name = 'system'") == 1
    finally:
        store.close()


@pytest.fixture
def store(clickhouse_url: str) -> Iterator[Store]:
    with server_database(clickhouse_url) as store:
        yield store


def test_migrations_writer_and_status_on_a_server(store: Store) -> None:
    assert [m.version for m in migrate(store)] == [m.version for m in available()]
    assert migrate(store) == []
    gen = generation()
    events = [gen, feedback("vote", gen["generation_id"], value=1)]
    rows = to_rows(decode_json_array(json.dumps(events).encode()), datetime.now(timezone.utc), "p")
    writer = BatchWriter(store, IngestMetrics())
    writer.start()
    try:
        writer.submit(rows).result(30)
        writer.submit(rows).result(30)
    finally:
        writer.stop()
    status = store_status(store)
    assert (status.generations, status.feedback) == (1, 1)


def test_times_are_utc_whatever_the_servers_time_zone(store: Store) -> None:
    # tests/clickhouse.py runs the server in a zone half an hour off UTC's hours.
    zone = store.scalar("SELECT timezone()")
    assert zone == SERVER_TIME_ZONE or os.environ.get(CLICKHOUSE_URL_VAR), zone
    migrate(store)
    gen = generation(ts=now_iso())
    store_events(store, [gen], datetime.now(timezone.utc))
    before = datetime.now(timezone.utc)
    run = run_once(
        OutcomesJob(store, lag_s=0), Lease(store, 20)
    )  # its watermark is the server's clock, in UTC
    assert abs(run.until - before) < timedelta(seconds=30), (run.until, before)
    assert run.generations == 1
    # A window given in UTC finds the generation, by the rollup's hours and exactly.
    for exact in (False, True):
        spec = ReportSpec(since=before - timedelta(minutes=1), until=before, exact=exact)
        assert [g["generations"] for g in report(store, spec)] == [1], exact


def test_every_column_of_kept_tables_has_an_arrow_type(store: Store) -> None:
    """Inserts travel as Arrow: a migration that adds a type without an Arrow form must
    fail here, not at the first insert into its table."""
    migrate(store)
    rows = store.rows(
        "SELECT table, name, type FROM system.columns WHERE database = {d:String}",
        {"d": store.database},
    )
    assert len(rows) > 50
    for table, name, kind in rows:
        if str(kind).startswith("AggregateFunction("):
            continue  # states: only the rollup's materialized view writes them
        assert arrow_type(str(kind)) is not None, f"{table}.{name}"
