"""Numbered plain-SQL migrations, applied in order and recorded in `schema_migrations`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from kept_storage.clickhouse import Store

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """Statements split on `;` at line ends; the files hold no procedural code."""
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.strip().startswith("--")
        )
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def available() -> list[Migration]:
    """Every migration shipped with this version of kept, by version."""
    found = []
    for entry in resources.files("kept_storage").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def applied(store: Store) -> set[int]:
    store.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY version"
    )
    return {int(v) for (v,) in store.rows("SELECT DISTINCT version FROM schema_migrations")}


def migrate(store: Store) -> list[Migration]:
    """Apply the migrations not applied yet; returns those it applied. Idempotent."""
    done = applied(store)
    newly = []
    for migration in available():
        if migration.version in done:
            continue
        for statement in migration.statements():
            store.command(statement)
        store.command(
            "INSERT INTO schema_migrations (version, name) VALUES ({v:UInt32}, {n:String})",
            {"v": migration.version, "n": migration.name},
        )
        newly.append(migration)
    return newly


def current_version(store: Store) -> int:
    return max(applied(store), default=0)
