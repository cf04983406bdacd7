"""Recently stored event ids, so client retries are skipped without reading the store.

Why not look ids up in ClickHouse before each insert: a batch of a few thousand random
ids touches nearly every granule of the day, so each lookup costs a scan of the day's
data. Instead the writer remembers the last `capacity` ids it stored (seeded from the
store at start) and the tables are ReplacingMergeTree on a key that ends in event_id:
a duplicate that slips past (a replay older than the window) is collapsed at merge
time, and readers count distinct event ids in the meantime.

Ids are remembered per project: an id is unique per client, not secret, so one
project's event id must never hide another project's event.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from uuid import UUID

from kept_storage import Store


class RecentIds:
    """A bounded set of (project, event id) with first-in, first-out eviction.

    Not thread-safe. A key is one int, the project's number above the id's 128 bits:
    as small in memory as the id alone.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: set[int] = set()
        self._order: deque[int] = deque()
        self._projects: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def key(self, project: str, event_id: UUID) -> int:
        """The id's key within `project`."""
        number = self._projects.setdefault(project, len(self._projects) + 1)
        return (number << 128) | event_id.int

    def seen(self, key: int) -> bool:
        return key in self._ids

    def add(self, project_ids: Iterable[tuple[str, UUID]]) -> None:
        for project, event_id in project_ids:
            key = self.key(project, event_id)
            if key in self._ids:
                continue
            self._ids.add(key)
            self._order.append(key)
            if len(self._order) > self.capacity:
                self._ids.discard(self._order.popleft())

    def seed(self, store: Store, tables: Iterable[str], window_s: int = 3600) -> None:
        """Remember the ids stored in the last `window_s` seconds, newest last."""
        for table in tables:
            rows = store.rows(
                f"SELECT project, event_id FROM {table} "
                "WHERE ts >= now() - INTERVAL 2 DAY "
                "AND received_at >= now64(3) - INTERVAL {w:UInt32} SECOND "
                "ORDER BY received_at DESC LIMIT {n:UInt64}",
                {"w": window_s, "n": self.capacity},
            )
            self.add((row[0], row[1]) for row in reversed(rows))
