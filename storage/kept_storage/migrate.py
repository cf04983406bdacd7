"""Numbered plain-SQL migrations, applied in order and recorded in `schema_migrations`.

Safe when several processes start at once: a process applies what is pending only while
it holds the migration lock (migration_lock.py); the others wait for it, then find
nothing left to do. Every statement must be safe to run again (`IF NOT EXISTS`,
`IF EXISTS`), because a migration that failed, or whose process died, is retried from its
first statement. A failure is recorded (status `failed`, which statement, the error) and
raised as MigrationFailed, whose message says what to do. On a cluster (`store.cluster`)
each statement is rendered for it first (cluster.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kept_storage.clickhouse import Store
from kept_storage.cluster import ClusterSchema, create_database, render_migrations
from kept_storage.errors import StorageError
from kept_storage.migration_lock import (
    DEFAULT_TIMING,
    LOCK_DDL,
    LOCK_TABLE,
    LockTiming,
    MigrationLock,
)

log = logging.getLogger("kept.storage")

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
TABLE = "schema_migrations"
_DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE}
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3),
    status     Enum8('applied' = 1, 'failed' = 2) DEFAULT 'applied',
    statement  UInt32 DEFAULT 0,
    sql        String DEFAULT '',
    error      String DEFAULT ''
)
ENGINE = MergeTree
ORDER BY version
SETTINGS non_replicated_deduplication_window = 1000"""
# What the table of kept versions before these columns lacks (applied_at: when an attempt
# ended; statement: the number, from 1, of the statement that failed).
_ADDED = (
    "ADD COLUMN IF NOT EXISTS status Enum8('applied' = 1, 'failed' = 2) DEFAULT 'applied'",
    "ADD COLUMN IF NOT EXISTS statement UInt32 DEFAULT 0",
    "ADD COLUMN IF NOT EXISTS sql String DEFAULT ''",
    "ADD COLUMN IF NOT EXISTS error String DEFAULT ''",
    "MODIFY SETTING non_replicated_deduplication_window = 1000",
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def statements(self) -> list[str]:
        """Statements split on `;` at line ends; the files hold no procedural code."""
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.strip().startswith("--")
        )
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


class MigrationFailed(StorageError):
    """A statement of a migration failed; the migration is recorded as failed."""

    def __init__(self, migration: Migration, number: int, total: int, sql: str, why: str) -> None:
        first = " ".join(sql.split())[:100]
        super().__init__(
            f"migration {migration.label} failed at statement {number} of {total} "
            f"({first}...): {why}. Its statements before that one ran (they are safe to run "
            f"again), none after it; schema_migrations records the failure with the full "
            f"error. Fix the cause, then run `kept migrate` or start kept again: it retries "
            f"{migration.label} from its first statement."
        )
        self.version, self.statement = migration.version, number


@dataclass(frozen=True)
class Failure:
    """The latest failed attempt at a migration not applied since."""

    version: int
    name: str
    statement: int
    sql: str
    error: str


def available(directory: Path | None = None) -> list[Migration]:
    """The migrations in `directory` (default: those shipped with kept), by version."""
    shipped = resources.files("kept_storage").joinpath("migrations")
    where = shipped if directory is None else directory
    found = []
    for entry in where.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def _bookkeeping(store: Store) -> None:
    """Create the tables of the migrations and their lock, or add what older ones lack."""
    columns = {
        (str(t), str(c))
        for t, c in store.rows(
            "SELECT table, name FROM system.columns WHERE database = {d:String} "
            "AND table IN ({m:String}, {l:String})",
            {"d": store.database, "m": TABLE, "l": LOCK_TABLE},
        )
    }
    if (TABLE, "error") in columns and (LOCK_TABLE, "epoch") in columns:
        return
    # On a cluster without Keeper each node keeps its own record (DDL runs node by
    # node); with ON CLUSTER DDL the record and the lock are the cluster's.
    cluster = store.cluster if store.cluster is not None and store.cluster.replicated else None
    render = ClusterSchema(cluster, store.database).render if cluster else lambda s: [s]
    if cluster is not None:
        store.command(create_database(store.database, cluster))
    fresh = (TABLE, "version") not in columns
    statements = [_DDL, LOCK_DDL, *([] if fresh else [f"ALTER TABLE {TABLE} {a}" for a in _ADDED])]
    for statement in statements:
        for rendered in render(statement):
            store.command(rendered)


def applied(store: Store) -> set[int]:
    _bookkeeping(store)
    return {
        int(v)
        for (v,) in store.rows(f"SELECT DISTINCT version FROM {TABLE} WHERE status = 'applied'")
    }


def failure(store: Store) -> Failure | None:
    """The latest failure of a migration that has not been applied since, if any."""
    rows = store.rows(
        f"SELECT version, argMax(name, applied_at), argMax(statement, applied_at), "
        f"argMax(sql, applied_at), argMax(error, applied_at) FROM {TABLE} "
        f"GROUP BY version HAVING countIf(status = 'applied') = 0 ORDER BY version LIMIT 1"
    )
    if not rows:
        return None
    version, name, statement, sql, error = rows[0]
    return Failure(int(version), str(name), int(statement), str(sql), str(error))


def migrate(
    store: Store,
    migrations: Sequence[Migration] | None = None,
    timing: LockTiming = DEFAULT_TIMING,
) -> list[Migration]:
    """Apply the migrations not applied yet (default: those shipped with kept), holding
    the migration lock; returns those this call applied."""
    ordered = list(available() if migrations is None else migrations)
    if not {m.version for m in ordered} - applied(store):
        return []  # the common case: no lock taken, nothing written
    statements = [m.statements() for m in ordered]
    if store.cluster is not None:
        statements = render_migrations(statements, store.cluster, store.database)
    lock = MigrationLock(store, timing)
    newly = []
    with lock.held():
        done = applied(store)  # another process may have applied them while we waited
        for migration, rendered in zip(ordered, statements, strict=True):
            if migration.version not in done:
                _apply(store, lock, migration, rendered)
                newly.append(migration)
    return newly


def _apply(store: Store, lock: MigrationLock, migration: Migration, statements: list[str]) -> None:
    for number, sql in enumerate(statements, 1):
        lock.check()
        try:
            store.command(sql)
        except StorageError as exc:
            error = str(exc.__cause__ or exc)
            _record(store, migration, "failed", number, sql, error)
            raise MigrationFailed(migration, number, len(statements), sql, str(exc)) from exc
    # The token makes a repeated record of the same version a no-op.
    token = f"{TABLE}:{migration.version}:applied"
    _record(store, migration, "applied", 0, "", "", {"insert_deduplication_token": token})


def _record(
    store: Store,
    migration: Migration,
    status: str,
    number: int,
    sql: str,
    error: str,
    settings: dict[str, str] | None = None,
) -> None:
    try:
        store.command(
            f"INSERT INTO {TABLE} (version, name, applied_at, status, statement, sql, error) "
            "SELECT {v:UInt32}, {n:String}, now64(3, 'UTC'), {s:String}, {i:UInt32}, "
            "{q:String}, {e:String}",
            {"v": migration.version, "n": migration.name, "s": status, "i": number,
             "q": sql, "e": error[:4000]},
            settings=settings,
        )  # fmt: skip
    except StorageError:
        if status == "applied":
            raise
        # The failure itself is what the caller must see.
        log.warning("could not record the failure of migration %s", migration.label)


def current_version(store: Store) -> int:
    return max(applied(store), default=0)
