"""Migrations from many processes at once, failed migrations, a dead lock holder: on a
real ClickHouse server (each test on a fresh database of the session's server)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kept_storage import Store
from kept_storage.migrate import (
    TABLE,
    MigrationFailed,
    applied,
    available,
    failure,
    migrate,
)
from kept_storage.migration_lock import (
    LOCK_TABLE,
    LockLost,
    LockTiming,
    MigrationBusy,
    MigrationLock,
)
from tests.helpers import KEPT, RUN_DATABASE_PREFIX, kept_env, server_database

pytestmark = pytest.mark.clickhouse_server
ROOT = Path(__file__).resolve().parents[2]
QUICK = LockTiming(wait_s=30, stale_s=1.5, beat_s=0.3, poll_s=0.1)


@pytest.fixture
def database() -> str:
    return f"{RUN_DATABASE_PREFIX}mig_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def store(clickhouse_url: str, database: str) -> Iterator[Store]:
    with server_database(clickhouse_url, database) as store:
        yield store


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def create(table: str) -> str:
    return f"CREATE TABLE IF NOT EXISTS {table} (n UInt32) ENGINE = MergeTree ORDER BY n;\n"


SLOW = {
    "0001_marks.sql": create("marks") + "SELECT sleep(1);\n",
    # Not safe to run twice: a second run would store a second row.
    "0002_mark.sql": "INSERT INTO marks (n) VALUES (2);\nSELECT sleep(1);\n",
}


def migrate_from(url: str, database: str, directory: str, barrier: str) -> None:
    """In a subprocess: say it is ready, wait for the go, migrate from `directory`, print
    what this process applied."""
    store = Store(url, database)
    (Path(barrier) / f"ready-{os.getpid()}").touch()
    while not (Path(barrier) / "go").exists():
        time.sleep(0.01)
    labels = [m.label for m in migrate(store, available(Path(directory)))]
    print(json.dumps(labels))


def start_migrators(
    url: str, database: str, directory: Path, barrier: Path, count: int
) -> list[subprocess.Popen[str]]:
    """`count` processes migrating from `directory` at once (they start together)."""
    barrier.mkdir(parents=True, exist_ok=True)
    code = (
        "from tests.storage.test_migrate import migrate_from; "
        f"migrate_from({url!r}, {database!r}, {str(directory)!r}, {str(barrier)!r})"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=kept_env(),
        )
        for _ in range(count)
    ]
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("ready-*"))) < count:
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
        time.sleep(0.02)
    (barrier / "go").touch()
    return processes


def versions_recorded(store: Store) -> dict[int, int]:
    rows = store.rows(
        f"SELECT version, count() FROM {TABLE} WHERE status = 'applied' GROUP BY version"
    )
    return {int(v): int(n) for v, n in rows}


def test_four_kept_migrate_processes_at_once_apply_each_migration_once(
    clickhouse_url: str, database: str, store: Store, tmp_path: Path
) -> None:
    env = kept_env(KEPT_DSN=clickhouse_url, KEPT_DATABASE=database)
    processes = [
        subprocess.Popen(
            [*KEPT, "migrate", "--data", str(tmp_path / f"data{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, outputs
    shipped = [m.version for m in available()]
    assert all(f"schema version {shipped[-1]}" in out for out in outputs), outputs
    assert versions_recorded(store) == {v: 1 for v in shipped}
    # No migration was applied by two of them.
    said = [re.search(r"applied now: (.*)", out) for out in outputs]
    labels = [label for m in said if m and m[1] != "nothing" for label in m[1].split(", ")]
    assert len(labels) == len(set(labels)), outputs
    # Every process that took the lock gave it back.
    events = store.rows(
        f"SELECT epoch, groupArray(toString(event)) FROM {LOCK_TABLE} GROUP BY epoch"
    )
    assert 1 <= len(events) <= 4 and all(set(e) == {"taken", "released"} for _, e in events)


def test_migrators_started_together_wait_for_the_one_holding_the_lock(
    clickhouse_url: str, database: str, store: Store, tmp_path: Path
) -> None:
    directory = write_migrations(tmp_path / "migrations", SLOW)
    processes = start_migrators(clickhouse_url, database, directory, tmp_path / "barrier", 3)
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0] * 3, [err for _, err in results]
    applied_by = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]
    # One process applied both; the others found nothing left once they held the lock.
    assert sorted(applied_by, key=len) == [[], [], ["0001_marks", "0002_mark"]]
    assert store.scalar("SELECT count() FROM marks") == 1
    assert versions_recorded(store) == {1: 1, 2: 1}
    # All three found work pending, so each took the lock in turn: they did overlap.
    assert store.scalar(f"SELECT uniqExact(epoch) FROM {LOCK_TABLE}") == 3


def test_a_failed_migration_is_recorded_explained_and_retried(store: Store, tmp_path: Path) -> None:
    files = {
        "0001_ok.sql": create("one"),
        "0002_broken.sql": create("two")
        + "ALTER TABLE two ADD COLUMN IF NOT EXISTS m UInt8 DEFAULT;\n"
        + create("three"),
    }
    directory = write_migrations(tmp_path / "migrations", files)
    with pytest.raises(MigrationFailed) as failed:
        migrate(store, available(directory), QUICK)
    message = str(failed.value)
    assert "migration 0002_broken failed at statement 2 of 3 (ALTER TABLE two" in message
    assert "run `kept migrate` or start kept again" in message
    assert "retries 0002_broken from its first statement" in message
    assert (failed.value.version, failed.value.statement) == (2, 2)
    assert applied(store) == {1}
    recorded = failure(store)
    assert recorded is not None
    assert (recorded.version, recorded.name, recorded.statement) == (2, "broken", 2)
    assert recorded.sql.startswith("ALTER TABLE two") and "Syntax error" in recorded.error
    assert store.scalar("EXISTS TABLE three") == 0  # nothing after the failed statement ran
    # The lock was released: the next attempt does not wait for it (QUICK waits 30 s).
    fixed = files | {"0002_broken.sql": files["0002_broken.sql"].replace("DEFAULT;", "DEFAULT 7;")}
    write_migrations(directory, fixed)
    started = time.monotonic()
    assert [m.label for m in migrate(store, available(directory), QUICK)] == ["0002_broken"]
    assert time.monotonic() - started < 10
    assert failure(store) is None
    assert store.scalar("SELECT count() FROM system.columns WHERE database = currentDatabase() "
                        "AND table = 'two' AND name = 'm'") == 1  # fmt: skip
    statuses = store.rows(
        f"SELECT toString(status) FROM {TABLE} WHERE version = 2 ORDER BY applied_at"
    )
    assert [s for (s,) in statuses] == ["failed", "applied"]


def test_a_dead_holder_is_taken_over_and_its_migration_retried(
    clickhouse_url: str, database: str, store: Store, tmp_path: Path
) -> None:
    files = {"0001_slow.sql": create("one") + "SELECT sleep(3);\n", "0002_next.sql": create("two")}
    directory = write_migrations(tmp_path / "migrations", files)
    (victim,) = start_migrators(clickhouse_url, database, directory, tmp_path / "barrier", 1)
    deadline = time.monotonic() + 60
    while not store.scalar(
        "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'one'"
    ):
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)  # mid-migration, holding the lock
    victim.wait(30)
    assert [m.label for m in migrate(store, available(directory), QUICK)] == [
        "0001_slow", "0002_next",
    ]  # fmt: skip
    # Epoch 1: the victim's, never released; epoch 2: ours, taken over once it went stale.
    epochs = store.rows(
        f"SELECT epoch, any(holder), groupArray(toString(event)) FROM {LOCK_TABLE} "
        "GROUP BY epoch ORDER BY epoch"
    )
    assert [e[0] for e in epochs] == [1, 2]
    assert "released" not in epochs[0][2] and {"taken", "released"} <= set(epochs[1][2])
    assert epochs[0][1] != epochs[1][1]
    assert versions_recorded(store) == {1: 1, 2: 1}


def test_a_live_holder_keeps_the_lock_and_a_silent_one_loses_it(store: Store) -> None:
    migrate(store, [])  # the bookkeeping tables
    holder = MigrationLock(store, QUICK)
    with holder.held():
        # Its heartbeat keeps it alive: another process waits, then gives up clearly.
        impatient = LockTiming(wait_s=2 * QUICK.stale_s, stale_s=QUICK.stale_s, poll_s=0.1)
        with (
            pytest.raises(MigrationBusy, match="has been applying migrations"),
            MigrationLock(store, impatient).held(),
        ):
            pass
        holder.check()
    silent = MigrationLock(store, LockTiming(beat_s=60))
    with silent.held():
        taken = threading.Event()

        def take_over() -> None:
            with MigrationLock(store, QUICK).held():
                taken.set()

        thief = threading.Thread(target=take_over)
        thief.start()
        thief.join(30)
        assert taken.is_set()
        with pytest.raises(LockLost, match="took the migration lock over"):
            silent.check()


def test_an_older_record_gains_the_failure_columns_and_keeps_its_versions(store: Store) -> None:
    # schema_migrations as kept versions before this one made it.
    store.command(
        f"CREATE TABLE {TABLE} (version UInt32, name String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
    )
    store.command(f"INSERT INTO {TABLE} (version, name) VALUES (1, 'events'), (2, 'api_keys')")
    for migration in available()[:2]:
        for statement in migration.statements():
            store.command(statement)
    assert applied(store) == {1, 2}
    newly = [m.version for m in migrate(store)]
    assert newly == [m.version for m in available()][2:]
    assert versions_recorded(store) == {m.version: 1 for m in available()}
