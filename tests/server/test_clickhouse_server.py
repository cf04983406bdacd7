"""The same storage code against a ClickHouse server, where one exists.

No modern ClickHouse server can be installed on the development machines (see
DESIGN.md), so these run only when KEPT_TEST_CLICKHOUSE_URL names one, e.g.
http://default:@127.0.0.1:8123.
"""

from __future__ import annotations

import json
import os
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

URL = os.environ.get("KEPT_TEST_CLICKHOUSE_URL")
pytestmark = [
    pytest.mark.clickhouse_server,
    pytest.mark.skipif(
        not URL, reason="needs a ClickHouse server: set KEPT_TEST_CLICKHOUSE_URL (none here)"
    ),
]


@pytest.fixture
def store() -> Iterator[Store]:
    assert URL
    database = f"kept_test_{uuid.uuid4().hex[:8]}"
    store = Store(URL, database)
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
