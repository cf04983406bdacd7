"""A shadow table: filled aside without firing the table's materialized views, then
swapped in partition by partition (on both stores: the session server's store)."""

from __future__ import annotations

import pytest

from kept_storage import Store
from kept_storage.shadow import SHADOW_SUFFIX, Shadow, shadows
from tests.helpers import InProcessServer

_ROW = (
    "INSERT INTO {table} (project, gen_ts, generation_id, version, sign, is_first, model, "
    "prompt_version, latency_ms, accepted, vote, corrected) "
    "VALUES ('p', {ts:String}, {gid:String}, 1, 1, 1, 'm', 'pv', 5, 1, 0, 0)"
)


def _insert(store: Store, table: str, ts: str, gid: str) -> None:
    store.command(_ROW.replace("{table}", table), {"ts": ts, "gid": gid})


def _ids(store: Store, table: str) -> list[str]:
    return [str(g) for (g,) in store.rows(f"SELECT generation_id FROM {table} ORDER BY ALL")]


def _tables(store: Store) -> set[str]:
    rows = store.rows(
        "SELECT name FROM system.tables WHERE database = {d:String}", {"d": store.database}
    )
    return {str(name) for (name,) in rows}


def test_a_shadow_replaces_the_table_by_partitions_without_firing_its_views(
    server: InProcessServer,
) -> None:
    store = server.runtime.store
    _insert(store, "outcomes", "2026-10-05 10:00:00", "october-old")
    _insert(store, "outcomes", "2026-11-05 10:00:00", "november-old")
    hourly = store.scalar("SELECT count() FROM outcomes_hourly")
    assert hourly == 2  # the view fed the rollup from the table

    with shadows(store, "outcomes") as (shadow,):
        assert shadow.name == "outcomes" + SHADOW_SUFFIX and shadow.name in _tables(store)
        _insert(store, shadow.name, "2026-11-06 10:00:00", "november-new")
        _insert(store, shadow.name, "2026-12-01 10:00:00", "december-new")
        # Readers still see the old table, and the view has not seen the shadow's rows.
        assert _ids(store, "outcomes") == ["november-old", "october-old"]
        assert store.scalar("SELECT count() FROM outcomes_hourly") == hourly
        shadow.swap_in()
        # November replaced, December added, October (absent from the shadow) dropped.
        assert _ids(store, "outcomes") == ["december-new", "november-new"]
        assert store.scalar("SELECT count() FROM outcomes_hourly") == hourly
    assert shadow.name not in _tables(store)


def test_a_shadow_starts_empty_and_is_dropped_whatever_happens(server: InProcessServer) -> None:
    store = server.runtime.store
    # What a crashed rebuild left: a shadow with rows.
    left = Shadow(store, "outcomes")
    left.create()
    _insert(store, left.name, "2026-11-05 10:00:00", "left-over")
    seen: list[list[str]] = []

    def fail_half_way() -> None:
        with shadows(store, "outcomes") as (shadow,):
            seen.append(_ids(store, shadow.name))
            raise RuntimeError("failed half-way")

    with pytest.raises(RuntimeError, match="failed half-way"):
        fail_half_way()
    assert seen == [[]]
    assert left.name not in _tables(store)
    assert _ids(store, "outcomes") == []
