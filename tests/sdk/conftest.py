"""Fixtures shared by the SDK tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kept import Client
from tests.sdk.recorder import Recorder


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """Clients a test makes and appends here; closed without waiting afterwards."""
    made: list[Client] = []
    yield made
    for client in made:
        client.close(timeout=0)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
