"""A table rebuilt aside and swapped in: its shadow has the same structure and engine,
is filled by the caller, then replaces the table partition by partition.

Why: what is written into the shadow fires none of the table's materialized views (a
rebuild fills a derived table once, from the result, instead of row batch by row batch),
and readers keep seeing the old table until the swap, which moves parts (hard links, no
copy). One server only: a Distributed table has no parts to swap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from kept_storage.clickhouse import Store

SHADOW_SUFFIX = "_rebuild"

# A partition id as ClickHouse names it (toYYYYMM: '202612'; unpartitioned: 'all'). The
# ids are spliced into ALTER statements, which take no parameters there.
_PARTITION_ID = re.compile(r"[0-9A-Za-z_-]+")


class Shadow:
    """The shadow of `table`: `name` to write into, `swap_in()` once it is complete."""

    def __init__(self, store: Store, table: str) -> None:
        self._store = store
        self.table = table
        self.name = table + SHADOW_SUFFIX

    def create(self) -> None:
        """An empty shadow (one left by a crashed run is dropped first)."""
        self.drop()
        self._store.command(f"CREATE TABLE {self.name} AS {self.table}")

    def drop(self) -> None:
        self._store.command(f"DROP TABLE IF EXISTS {self.name} SYNC")

    def swap_in(self) -> None:
        """Every partition of the table becomes the shadow's: replaced when the shadow has
        it, dropped when it has not. Each partition's swap is atomic."""
        filled = self._partitions(self.name)
        for partition in filled:
            self._store.command(
                f"ALTER TABLE {self.table} REPLACE PARTITION ID '{partition}' FROM {self.name}"
            )
        for partition in self._partitions(self.table) - filled:
            self._store.command(f"ALTER TABLE {self.table} DROP PARTITION ID '{partition}'")

    def _partitions(self, table: str) -> set[str]:
        rows = self._store.rows(
            "SELECT DISTINCT partition_id FROM system.parts "
            "WHERE database = {d:String} AND table = {t:String} AND active",
            {"d": self._store.database, "t": table},
        )
        ids = {str(partition) for (partition,) in rows}
        unexpected = sorted(p for p in ids if not _PARTITION_ID.fullmatch(p))
        if unexpected:
            raise ValueError(f"unexpected partition ids of {table}: {unexpected}")
        return ids


@contextmanager
def shadows(store: Store, *tables: str) -> Iterator[list[Shadow]]:
    """Fresh shadows of `tables`, dropped on the way out whatever happens."""
    made = [Shadow(store, table) for table in tables]
    try:
        for shadow in made:
            shadow.create()
        yield made
    finally:
        for shadow in made:
            shadow.drop()
