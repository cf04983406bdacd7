"""The migration files and their cluster rendering, as text (no server: test_cluster.py
runs them on one)."""

from __future__ import annotations

import re

import pytest

from kept_storage.cluster import (
    FIRST_SHARD_KEY,
    GENERATION_KEY,
    Cluster,
    ClusterRenderError,
    ClusterSchema,
    render_migrations,
)
from kept_storage.migrate import Migration, available

REPLICATED = Cluster("kc")
SHARDED = Cluster("kc", replicated=False)
SHIPPED = [m.statements() for m in available()]

_NEEDS_GUARD = [
    (re.compile(r"^CREATE\s+(TABLE|MATERIALIZED\s+VIEW|VIEW)\s+", re.I), "IF NOT EXISTS"),
    (re.compile(r"^DROP\s+(TABLE|VIEW)\s+", re.I), "IF EXISTS"),
    (re.compile(r"\bADD\s+(COLUMN|INDEX|PROJECTION)\s+", re.I), "IF NOT EXISTS"),
    (re.compile(r"\bDROP\s+(COLUMN|INDEX|PROJECTION)\s+", re.I), "IF EXISTS"),
]


@pytest.mark.parametrize("migration", available(), ids=lambda m: m.label)
def test_shipped_statements_are_safe_to_run_again(migration: Migration) -> None:
    """A failed or interrupted migration is retried from its first statement."""
    for statement in migration.statements():
        for pattern, guard in _NEEDS_GUARD:
            for match in pattern.finditer(statement):
                following = statement[match.end() : match.end() + len(guard)]
                assert following.upper() == guard, f"{migration.label}: {statement[:80]}"
        assert not statement.upper().startswith("INSERT"), f"{migration.label}: {statement[:80]}"


def test_every_shipped_table_gets_a_local_table_and_a_distributed_one() -> None:
    rendered = [s for m in render_migrations(SHIPPED, SHARDED, "kept") for s in m]
    shape = r"CREATE TABLE IF NOT EXISTS (\w+) AS (\w+) ENGINE = Distributed\(`kc`, `kept`, `\w+`, "
    shape += r"(.*)\)$"
    distributed = {m[1]: (m[2], m[3]) for s in rendered if (m := re.match(shape, s))}
    assert distributed["generations"] == ("generations_local", GENERATION_KEY)
    assert distributed["feedback"] == ("feedback_local", GENERATION_KEY)
    assert distributed["outcomes"] == ("outcomes_local", GENERATION_KEY)
    assert distributed["api_keys"] == ("api_keys_local", FIRST_SHARD_KEY)
    assert distributed["analytics_lease"] == ("analytics_lease_local", FIRST_SHARD_KEY)
    view = next(s for s in rendered if s.startswith("CREATE MATERIALIZED VIEW"))
    assert " TO outcomes_hourly_local AS" in view and "FROM outcomes_local AS outcomes\n" in view
    assert not any(" ON CLUSTER " in s for s in rendered)  # no Keeper: DDL node by node


def test_the_replicated_variant_runs_on_cluster_with_replica_paths() -> None:
    rendered = [s for m in render_migrations(SHIPPED, REPLICATED, "kept") for s in m]
    assert all(" ON CLUSTER `kc`" in s for s in rendered)
    engines = re.findall(
        r"ENGINE = (\w+)\(('[^']*'), ('[^']*')(.*?)\)\n", "\n".join(rendered) + "\n"
    )
    assert {e[0] for e in engines} >= {
        "ReplicatedReplacingMergeTree", "ReplicatedVersionedCollapsingMergeTree",
        "ReplicatedAggregatingMergeTree", "ReplicatedMergeTree",
    }  # fmt: skip
    assert {(e[1], e[2]) for e in engines} == {
        ("'/clickhouse/tables/{shard}/{database}/{table}'", "'{replica}'")
    }
    assert ("ReplicatedVersionedCollapsingMergeTree", ", sign, version") in {
        (e[0], e[3]) for e in engines
    }
    drops = [s for s in rendered if s.startswith("DROP")]
    assert "DROP TABLE IF EXISTS analytics_affected_local ON CLUSTER `kc` SYNC" in drops


def test_an_alter_splits_between_local_and_distributed_tables() -> None:
    schema = ClusterSchema(REPLICATED, "kept")
    schema.render(
        "CREATE TABLE IF NOT EXISTS t (project String, generation_id String, "
        "s Map(String, UInt8)) ENGINE = SummingMergeTree((s)) ORDER BY project"
    )
    assert schema.render(
        "ALTER TABLE t ADD COLUMN IF NOT EXISTS a UInt8 DEFAULT 1, ADD INDEX IF NOT EXISTS i a "
        "TYPE minmax GRANULARITY 1, MATERIALIZE COLUMN a"
    ) == [
        "ALTER TABLE t_local ON CLUSTER `kc` ADD COLUMN IF NOT EXISTS a UInt8 DEFAULT 1, ADD INDEX "
        "IF NOT EXISTS i a TYPE minmax GRANULARITY 1, MATERIALIZE COLUMN a",
        "ALTER TABLE t ON CLUSTER `kc` ADD COLUMN IF NOT EXISTS a UInt8 DEFAULT 1",
    ]
    assert schema.render("ALTER TABLE other DROP COLUMN IF EXISTS x") == [
        "ALTER TABLE other ON CLUSTER `kc` DROP COLUMN IF EXISTS x"
    ]


def test_engine_arguments_and_view_sources_survive_the_rendering() -> None:
    schema = ClusterSchema(REPLICATED, "db")
    local = schema.render(
        "CREATE TABLE x (k String, s Map(String, UInt8)) ENGINE = SummingMergeTree((s)) ORDER BY k"
    )[0]
    assert "ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', " \
           "'{replica}', (s)) ORDER BY k" in local  # fmt: skip
    schema.render("CREATE TABLE y (k String) ENGINE = MergeTree() ORDER BY k")
    view = schema.render(
        "CREATE MATERIALIZED VIEW v TO y AS SELECT x.k FROM x AS a JOIN y ON a.k = y.k "
        "JOIN x q ON q.k = a.k WHERE k != ''"
    )
    assert view == [
        "CREATE MATERIALIZED VIEW v ON CLUSTER `kc` TO y_local AS SELECT x.k FROM x_local AS a "
        "JOIN y_local AS y ON a.k = y.k JOIN x_local q ON q.k = a.k WHERE k != ''"
    ]
    assert schema.render("DROP TABLE IF EXISTS y") == [
        "DROP TABLE IF EXISTS y ON CLUSTER `kc` SYNC",
        "DROP TABLE IF EXISTS y_local ON CLUSTER `kc` SYNC",
    ]
    assert schema.render("TRUNCATE TABLE x") == ["TRUNCATE TABLE x_local ON CLUSTER `kc`"]
    assert schema.render("INSERT INTO x SELECT 'a', map()") == ["INSERT INTO x SELECT 'a', map()"]


@pytest.mark.parametrize(
    "statement",
    [
        "RENAME TABLE a TO b",
        "CREATE TABLE r (k String) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY k",
        "CREATE MATERIALIZED VIEW v ENGINE = MergeTree ORDER BY k AS SELECT k FROM t",
    ],
)
def test_shapes_it_cannot_render_fail_loudly(statement: str) -> None:
    with pytest.raises(ClusterRenderError):
        ClusterSchema(REPLICATED, "db").render(statement)
