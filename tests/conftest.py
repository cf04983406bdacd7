"""Shared fixtures, and which store the tests run on.

KEPT_TEST_STORE picks the store (tests/helpers.py): `embedded` (default; the test process
hosts one chDB store, as chDB allows one per process) or `clickhouse` (a real ClickHouse
server over http://, started here for the session unless KEPT_TEST_CLICKHOUSE_URL names
one). Tests that touch a store are marked `store`: `make test` runs them on both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kept_storage import Store
from tests.clickhouse import local_clickhouse
from tests.helpers import (
    CLICKHOUSE_URL_VAR,
    RUN_DATABASE_PREFIX,
    InProcessServer,
    in_process_server,
    on_clickhouse_server,
    store_mode,
)

STORE_FIXTURES = frozenset({"server", "session_server", "data_dir"})
"""A test that uses one of these runs kept on a store."""
STORE_MODULES = frozenset(
    {
        "tests/kafka/test_pipeline.py",
        "tests/kafka/test_batch_messages.py",
        "tests/export/test_cli.py",
        "tests/server/test_hardening_serve.py",
    }
)
"""Modules whose tests start kept processes on data directories of their own."""
ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "store: touches a store; `make test` runs it on both (KEPT_TEST_STORE)"
    )
    config.addinivalue_line(
        "markers",
        "embedded_only(reason): skipped on the ClickHouse-server pass; the reason says why",
    )
    store_mode()  # a wrong KEPT_TEST_STORE fails the run before any test


def pytest_report_header(config: pytest.Config) -> str:
    return f"store: {store_mode()} (KEPT_TEST_STORE)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.relative_to(ROOT).as_posix()
        if STORE_FIXTURES & set(getattr(item, "fixturenames", ())) or module in STORE_MODULES:
            item.add_marker(pytest.mark.store)
        embedded = item.get_closest_marker("embedded_only")
        if embedded is not None and on_clickhouse_server():
            item.add_marker(pytest.mark.skip(reason=f"embedded store only: {embedded.args[0]}"))


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ClickHouse server: KEPT_TEST_CLICKHOUSE_URL, else one started for the session."""
    given = os.environ.get(CLICKHOUSE_URL_VAR)
    if given:
        yield given
        return
    with local_clickhouse(tmp_path_factory.mktemp("clickhouse")) as url:
        yield url


@pytest.fixture(scope="session", autouse=True)
def store_server(request: pytest.FixtureRequest) -> Iterator[None]:
    """On the ClickHouse-server pass: the server for every store of the session (its URL in
    KEPT_TEST_CLICKHOUSE_URL for tests/helpers.py); the run's databases dropped at the end."""
    if not on_clickhouse_server():
        yield
        return
    url: str = request.getfixturevalue("clickhouse_url")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(CLICKHOUSE_URL_VAR, url)
        yield
    store = Store(url, "default")
    try:
        names = store.rows(
            "SELECT name FROM system.databases WHERE startsWith(name, {p:String})",
            {"p": RUN_DATABASE_PREFIX},
        )
        for (name,) in names:
            store.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
    finally:
        store.close()


@pytest.fixture(scope="session")
def session_server(
    store_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessServer]:
    # No scheduled analytics runs: tests run the job themselves, when they mean to.
    data = tmp_path_factory.mktemp("kept-data")
    with in_process_server(data, analytics_interval_s=0, analytics_lag_s=0.05) as server:
        yield server


@pytest.fixture
def server(session_server: InProcessServer) -> InProcessServer:
    """The session's in-process server with empty event tables."""
    session_server.truncate()
    return session_server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "kept-data"


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's SDK clients spool under its own directory, never in the user's cache."""
    path = tmp_path / "spool"
    monkeypatch.setenv("KEPT_SPOOL_DIR", str(path))
    return path
