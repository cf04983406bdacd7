"""Shared fixtures. The test process hosts one embedded store (chDB allows one per process)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clickhouse import local_clickhouse
from tests.helpers import InProcessServer, in_process_server


@pytest.fixture(scope="session")
def session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
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


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ClickHouse server: KEPT_TEST_CLICKHOUSE_URL, else one started for the session."""
    given = os.environ.get("KEPT_TEST_CLICKHOUSE_URL")
    if given:
        yield given
        return
    with local_clickhouse(tmp_path_factory.mktemp("clickhouse")) as url:
        yield url
