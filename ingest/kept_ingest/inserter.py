"""One batch of rows made durable: skip recently stored event ids, insert both tables.

The HTTP writer (group commit) and the Kafka consumer both insert through an Inserter,
so dedup and the insert metrics work the same on both paths.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from kept_ingest.dedup import RecentIds
from kept_ingest.metrics import IngestMetrics
from kept_ingest.rows import Columns, EventRows
from kept_storage import Store

TABLES = ("generations", "feedback")


@dataclass
class _Fresh:
    """A table's rows whose event ids are new, with those ids' dedup keys."""

    table: str
    columns: Columns
    keys: list[str]


class Inserter:
    """Dedup by a bounded window of recent event ids, then insert. Not thread-safe.

    With `tables_at_once` the two tables are inserted at the same time (one on a thread
    of the inserter's own): a batch is then as durable as its slower table is, not as
    both one after the other. That is what a group commit waits for (measured: 4,000
    events into a ClickHouse server, 58 against 44 ms; into the embedded store, 50
    against 39 ms); the Kafka consumer, which works while its inserts run, gained
    nothing from it."""

    def __init__(
        self,
        store: Store,
        metrics: IngestMetrics,
        recent_ids: int = 500_000,
        *,
        tables_at_once: bool = False,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._recent = RecentIds(recent_ids)
        self._aside = (
            ThreadPoolExecutor(1, thread_name_prefix="kept-insert") if tables_at_once else None
        )

    def seed(self) -> None:
        """Remember the ids stored lately, so replays after a restart are skipped."""
        self._recent.seed(self._store, TABLES)

    def close(self) -> None:
        """Stop the thread of `tables_at_once` (an insert in flight finishes first)."""
        if self._aside is not None:
            self._aside.shutdown(wait=True)

    def insert(self, rows: EventRows) -> int:
        """Insert the rows whose event ids are new; returns how many were stored.

        Raises StorageError when an insert fails; ids are remembered only once their
        table's insert succeeded, so calling again with the same rows is safe.
        """
        started = time.perf_counter()
        total, stored = len(rows), 0
        batches = [
            fresh
            for table, columns in zip(TABLES, (rows.generations, rows.feedback), strict=True)
            if len((fresh := self._fresh(table, columns)).columns)
        ]
        aside: tuple[_Fresh, Future[None]] | None = None
        if self._aside is not None and len(batches) > 1:
            last = batches.pop()
            aside = (
                last,
                self._aside.submit(self._store.insert_columns, last.table, last.columns.data),
            )
        try:
            for fresh in batches:
                self._store.insert_columns(fresh.table, fresh.columns.data)
                stored += self._stored(fresh)
        finally:
            # Whatever this thread's insert did, the other's ids count once it succeeded.
            if aside is not None and aside[1].exception() is None:
                stored += self._stored(aside[0])
        if aside is not None and (error := aside[1].exception()) is not None:
            raise error
        self._metrics.batch_rows.observe(total)
        self._metrics.insert_latency.observe(time.perf_counter() - started)
        self._metrics.events_duplicate.inc(total - stored)
        return stored

    def _stored(self, fresh: _Fresh) -> int:
        """Remember the ids of `fresh`, whose insert succeeded; returns its rows."""
        self._recent.remember(fresh.keys)
        return len(fresh.columns)

    def _fresh(self, table: str, columns: Columns) -> _Fresh:
        """The rows of `columns` whose ids the recent window does not hold."""
        keys = self._recent.keys(columns.data["project"], columns.data["event_id"])
        mask = self._recent.fresh(keys)
        if mask is None:
            return _Fresh(table, columns, keys)
        kept = [k for k, m in zip(keys, mask, strict=True) if m]
        return _Fresh(table, columns.keep(mask), kept)
