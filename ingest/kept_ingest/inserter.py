"""One batch of rows made durable: skip recently stored event ids, insert both tables.

The HTTP writer (group commit) and the Kafka consumer both insert through an Inserter,
so dedup and the insert metrics work the same on both paths.
"""

from __future__ import annotations

import time

from kept_ingest.dedup import RecentIds
from kept_ingest.metrics import IngestMetrics
from kept_ingest.rows import EventRows
from kept_storage import Store

TABLES = ("generations", "feedback")


class Inserter:
    """Dedup by a bounded window of recent event ids, then insert. Not thread-safe."""

    def __init__(self, store: Store, metrics: IngestMetrics, recent_ids: int = 500_000) -> None:
        self._store = store
        self._metrics = metrics
        self._recent = RecentIds(recent_ids)

    def seed(self) -> None:
        """Remember the ids stored lately, so replays after a restart are skipped."""
        self._recent.seed(self._store, TABLES)

    def insert(self, rows: EventRows) -> int:
        """Insert the rows whose event ids are new; returns how many were stored.

        Raises StorageError when an insert fails; ids are remembered only once their
        table's insert succeeded, so calling again with the same rows is safe.
        """
        started = time.perf_counter()
        total, stored = len(rows), 0
        for table, columns in zip(TABLES, (rows.generations, rows.feedback), strict=True):
            keys = self._recent.keys(columns.data["project"], columns.data["event_id"])
            mask = self._recent.fresh(keys)
            if mask is None:
                fresh = columns
            else:
                fresh = columns.keep(mask)
                keys = [k for k, m in zip(keys, mask, strict=True) if m]
            if len(fresh):
                self._store.insert_columns(table, fresh.data)
                self._recent.remember(keys)
                stored += len(fresh)
        self._metrics.batch_rows.observe(total)
        self._metrics.insert_latency.observe(time.perf_counter() - started)
        self._metrics.events_duplicate.inc(total - stored)
        return stored
