"""The inserter stores both tables at once for the group commit; a table whose insert
fails is stored by the next call alone, and the other's rows are not stored twice."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from kept_ingest.decode import decode_json_array
from kept_ingest.inserter import TABLES, Inserter
from kept_ingest.metrics import IngestMetrics
from kept_ingest.rows import EventRows, to_rows
from kept_storage import StorageError
from tests.helpers import InProcessServer, feedback, generation


def _rows() -> EventRows:
    events = [generation(generation_id=f"ins-{n}") for n in range(3)]
    events += [feedback("vote", "ins-0", value=1), feedback("action", "ins-1", name="copy")]
    return to_rows(decode_json_array(json.dumps(events).encode()), datetime.now(timezone.utc), "p")


def _counts(server: InProcessServer) -> tuple[int, ...]:
    store = server.runtime.store
    return tuple(int(store.scalar(f"SELECT count() FROM {table}") or 0) for table in TABLES)


@pytest.mark.parametrize("failing", TABLES)
def test_a_failed_table_is_stored_by_the_next_call_alone(
    server: InProcessServer, failing: str
) -> None:
    store = server.runtime.store
    inserter = Inserter(store, IngestMetrics(), tables_at_once=True)
    try:
        assert inserter.insert(_rows()) == 5  # (and the store knows both tables' columns)
        assert _counts(server) == (3, 2)
        batch = _rows()  # new event ids
        store.command(f"RENAME TABLE {failing} TO {failing}_away")
        try:
            with pytest.raises(StorageError):
                inserter.insert(batch)
        finally:
            store.command(f"RENAME TABLE {failing}_away TO {failing}")
        # The other table, inserted at the same time, is stored, and its ids remembered.
        assert _counts(server) == ((3, 4) if failing == "generations" else (6, 2))
        assert inserter.insert(batch) == (3 if failing == "generations" else 2)
        assert _counts(server) == (6, 4)
        assert inserter.insert(batch) == 0
    finally:
        inserter.close()
