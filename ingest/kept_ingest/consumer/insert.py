"""The insert step: events into ClickHouse through the intake's Inserter.

The store is opened on first use, not before consuming starts: a consumer whose
ClickHouse is down at start behaves as when it goes down later (it holds the batch and
its offsets and retries) instead of crashing in a restart loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from kept_ingest.fast_contract import AnyEvent
from kept_ingest.inserter import Inserter
from kept_ingest.metrics import IngestMetrics
from kept_ingest.rows import to_rows
from kept_storage import Store, migrate

log = logging.getLogger("kept.consumer")


class InsertStep:
    """Stores batches of events; raises StorageError when ClickHouse does not take them."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        metrics: IngestMetrics,
        recent_ids: int,
        *,
        owned: bool = True,
    ) -> None:
        """`owned`: this step opens (and migrates) the store and closes it; else the store
        belongs to someone else (`kept serve`'s runtime)."""
        self._open_store = open_store
        self._metrics = metrics
        self._recent_ids = recent_ids
        self._owned = owned
        self._inserter: Inserter | None = None
        self.store: Store | None = None

    def insert(self, events: Sequence[AnyEvent]) -> int:
        """Insert `events` (rows of their own projects); returns how many were new."""
        inserter = self._inserter or self._open()
        return inserter.insert(to_rows(events, datetime.now(timezone.utc)))

    def prepare(self) -> None:
        """Open (and migrate) the store now if it can be reached, before joining the group.

        Opening takes seconds on a large store; done after partitions are assigned, it
        can outlast the group session and cause a rebalance. A store that cannot be
        reached now is opened on first use instead, as the module docstring says.
        """
        if self._inserter is not None:
            return
        try:
            self._open()
        except Exception as exc:
            log.warning("cannot open the store yet (%s); will retry with the first batch", exc)

    def _open(self) -> Inserter:
        store = self.store or self._open_store()
        self.store = store
        if self._owned:
            for migration in migrate(store):
                log.info("applied migration %04d_%s", migration.version, migration.name)
        inserter = Inserter(store, self._metrics, self._recent_ids)
        inserter.seed()  # a replay after a crash skips what the last run stored
        self._inserter = inserter
        log.info("storing into %s", store.dsn.split("@")[-1])
        return inserter

    def close(self) -> None:
        if self.store is not None and self._owned:
            self.store.close()
        self.store = None
        self._inserter = None
