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
from collections.abc import Iterable, Sequence

from kept_storage import Store


class RecentIds:
    """A bounded set of (project, event id) with first-in, first-out eviction.

    Not thread-safe. A key is one string: the project's number, then the id's canonical
    text in lower case, as rows carry it (`kept_ingest.rows`) and the store returns it.
    Batches are handled whole (`keys`, `fresh`, `remember`), at C speed where it can be:
    per event, a Python call cost as much as the insert itself.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()
        self._projects: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def _prefix(self, project: str) -> str:
        prefix = self._projects.get(project)
        if prefix is None:
            prefix = self._projects[project] = f"{len(self._projects)}/"
        return prefix

    def key(self, project: str, event_id: str) -> str:
        """The key within `project` of an id (its text, as rows carry it)."""
        return self._prefix(project) + event_id

    def keys(self, projects: Sequence[str], event_ids: Sequence[str]) -> list[str]:
        """The keys of a batch's ids (a batch is nearly always of one project)."""
        if not projects:
            return []
        if projects.count(projects[0]) == len(projects):
            prefix = self._prefix(projects[0])
            return [prefix + event_id for event_id in event_ids]
        return [self.key(p, e) for p, e in zip(projects, event_ids, strict=True)]

    def seen(self, key: str) -> bool:
        return key in self._ids

    def fresh(self, keys: Sequence[str]) -> list[bool] | None:
        """Mask of keys neither remembered nor repeated earlier in `keys`; None when all
        are (the common case, checked at C speed)."""
        ids = self._ids
        if ids.isdisjoint(keys) and len(set(keys)) == len(keys):
            return None
        mask, seen = [], set()
        for key in keys:
            mask.append(key not in ids and key not in seen)
            seen.add(key)
        return mask

    def remember(self, keys: Sequence[str]) -> None:
        """Remember `keys` (those not remembered yet), evicting the oldest beyond capacity."""
        ids, order = self._ids, self._order
        if ids.isdisjoint(keys) and len(set(keys)) == len(keys):
            ids.update(keys)
            order.extend(keys)
        else:
            for key in keys:
                if key not in ids:
                    ids.add(key)
                    order.append(key)
        excess = len(order) - self.capacity
        if excess > 0:
            popleft = order.popleft
            ids.difference_update([popleft() for _ in range(excess)])

    def add(self, project_ids: Iterable[tuple[str, str]]) -> None:
        pairs = list(project_ids)
        self.remember(self.keys([p for p, _ in pairs], [e for _, e in pairs]))

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
            self.add((row[0], str(row[1])) for row in reversed(rows))
