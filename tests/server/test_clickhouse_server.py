"""The same storage code against a real ClickHouse server over HTTP.

The server is KEPT_TEST_CLICKHOUSE_URL when set (e.g. http://default:@127.0.0.1:8123),
else one the session starts from the chdb-core wheel (tests/clickhouse.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from kept_ingest.decode import decode_json_array
from kept_ingest.metrics import IngestMetrics
from kept_ingest.rows import to_rows
from kept_ingest.writer import BatchWriter
from kept_service.runtime.status import store_status
from kept_storage import Store, migrate
from kept_storage.migrate import available
from tests.helpers import feedback, generation

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
    database = f"kept_test_{uuid.uuid4().hex[:8]}"
    store = Store(clickhouse_url, database)
    try:
        yield store
    finally:
        store.command(f"DROP DATABASE IF EXISTS {database}")
        store.close()


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
