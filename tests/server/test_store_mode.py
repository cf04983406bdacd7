"""KEPT_TEST_STORE reaches every store of the run: `make test`'s second pass would
otherwise run on the embedded store again, and prove nothing about the server."""

from __future__ import annotations

from pathlib import Path

from kept_storage import Store
from kept_storage.migrate import available
from tests.helpers import (
    CLICKHOUSE_URL_VAR,
    InProcessServer,
    kept_env,
    on_clickhouse_server,
    run_kept,
    store_of,
)


def test_the_session_server_is_on_the_store_asked_for(session_server: InProcessServer) -> None:
    store = session_server.runtime.store
    assert store.embedded is not on_clickhouse_server()
    dsn, database = store_of(session_server.runtime.data_dir.path)
    assert (store.dsn, store.database) == (dsn, database)


def test_kept_processes_get_the_store_of_their_data_directory(data_dir: Path) -> None:
    env = kept_env(data_dir)
    if on_clickhouse_server():
        assert env["KEPT_DSN"].startswith("http://")
        assert env["KEPT_DATABASE"] == store_of(data_dir)[1]
        assert env["KEPT_DATABASE"] != store_of(data_dir.parent / "other")[1]
    else:
        assert "KEPT_DSN" not in env and "KEPT_DATABASE" not in env
    assert CLICKHOUSE_URL_VAR not in env  # only what kept itself reads
    assert run_kept("migrate", "--data", str(data_dir)).returncode == 0
    # The embedded store's files appear in the data directory only on the embedded pass.
    assert (data_dir / "clickhouse" / "metadata").is_dir() is not on_clickhouse_server()
    if on_clickhouse_server():
        store = Store(*store_of(data_dir))
        try:
            assert store.scalar("SELECT count() FROM schema_migrations") == len(available())
        finally:
            store.close()
