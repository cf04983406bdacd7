"""The HTTP transport tells the sink how much waits in the client's spool.

Against the scripted HTTP sink of test_http; the real intake's side is
tests/server/test_spool_report.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import kept.delivery
import kept.spooling
from kept import Client
from kept.transports import HttpTransport, Outcome
from kept_wire.contract import SPOOL_BYTES_HEADER
from tests.sdk.recorder import Recorder
from tests.sdk.test_http import Answer, Events, Request, Sink, log, make, sink  # noqa: F401


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept.delivery, "BACKOFF_BASE", 0.01)
    monkeypatch.setattr(kept.delivery, "BACKOFF_CAP", 0.05)
    monkeypatch.setattr(kept.spooling, "SPOOL_AFTER", 0.2)


def reported(request: Request) -> int | None:
    value = request.headers.get(SPOOL_BYTES_HEADER)
    return None if value is None else int(value)


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_each_request_reports_the_spool_backlog_while_the_spool_holds_events(
    sink: Sink,  # noqa: F811
    clients: list[Client],
    tmp_path: Path,
    fast: None,
) -> None:
    up = threading.Event()

    def answer(events: Events) -> Answer:
        return (202, {"accepted": len(events)}, {}) if up.is_set() else (503, None, {})

    sink.answer = answer
    client = make(clients, sink.url, spool_dir=tmp_path, batch_size=2, flush_interval=0.01)
    log(client, "a", "b", "c", "d", "e", "f")
    wait_for(lambda: client.stats()["spooled"] == 6)
    backlog = client.stats()["spool_bytes"]
    assert backlog > 0
    # The live part was sent before anything was spooled: no report.
    assert reported(sink.requests[0]) is None
    # Replays the sink refused said what waits: the sink learns of it while still down.
    wait_for(lambda: any(reported(r) == backlog for r in list(sink.requests)))
    assert all(0 < (reported(r) or 1) <= backlog for r in sink.requests)

    down = len(sink.requests)
    up.set()
    assert client.flush(timeout=10)
    replays = sink.requests[down:]
    assert [e["model"] for r in replays for e in r.events] == list("abcdef")
    sizes = [reported(r) for r in replays]
    assert sizes[0] == backlog, sizes  # the oldest segment is sent first, the rest waits
    assert all(s is not None for s in sizes)
    assert client.stats()["spool_bytes"] == 0

    log(client, "g")
    assert client.flush(timeout=5)
    assert reported(sink.requests[-1]) is None  # drained: no report


def test_a_failing_backlog_source_never_costs_a_send(sink: Sink) -> None:  # noqa: F811
    transport = HttpTransport(sink.url, "test-key")
    event = b'{"type":"generation"}'
    sources: list[Callable[[], Any]] = [lambda: 1 / 0, lambda: "many", lambda: 0, lambda: 4096]
    for source in sources:
        transport.report_backlog(source)
        assert transport.send([event]).outcome is Outcome.SENT
    transport.close()
    assert [reported(r) for r in sink.requests] == [None, None, None, 4096]


class BrokenHook(Recorder):
    """An app's own transport whose `report_backlog` fails."""

    def report_backlog(self, spool_bytes: Callable[[], int]) -> None:
        raise RuntimeError("not today")


def test_an_apps_transport_with_a_failing_hook_still_sends(
    clients: list[Client], tmp_path: Path
) -> None:
    transport = BrokenHook()
    client = Client(transport=transport, spool_dir=tmp_path)
    clients.append(client)
    client.log_generation(model="m")
    assert client.flush(timeout=5)
    assert [e["model"] for e in transport.events] == ["m"]
