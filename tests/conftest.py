"""Shared fixtures. The test process hosts one embedded store (chDB allows one per process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import InProcessServer, in_process_server


@pytest.fixture(scope="session")
def session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    with in_process_server(tmp_path_factory.mktemp("kept-data")) as server:
        yield server


@pytest.fixture
def server(session_server: InProcessServer) -> InProcessServer:
    """The session's in-process server with empty event tables."""
    session_server.truncate()
    return session_server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "kept-data"
