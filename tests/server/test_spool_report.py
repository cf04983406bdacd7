"""Clients' spool backlogs as the intake shows them: `kept_client_spool_bytes{project}`,
the largest backlog a client of the project reported in the last minute (SDK header
Kept-Spool-Bytes)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType

import pytest
from prometheus_client import CollectorRegistry

import kept.delivery
import kept.spooling
from kept import Client
from kept_ingest.keys import create_key
from kept_ingest.metrics import SPOOL_REPORT_WINDOW_S, ClientSpoolReports
from kept_wire.contract import SPOOL_BYTES_HEADER
from tests.helpers import InProcessServer, generation

METRIC = "kept_client_spool_bytes"


class Gate:
    """A TCP path to the server that drops every connection until `opened` is set: the
    intake unreachable for a while, then back."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.opened = threading.Event()
        self.dropped = 0
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.opened.is_set():
                self.dropped += 1
                conn.close()
                continue
            upstream = socket.create_connection(self._upstream)
            self._sockets += [conn, upstream]
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()

    def __enter__(self) -> Gate:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def project(server: InProcessServer) -> tuple[str, str]:
    """A project of its own (the session's server keeps reports for a minute) and its key."""
    name = f"spool-{uuid.uuid4().hex[:10]}"
    key = create_key(server.runtime.store, name)
    server.runtime.keys.add(key, name)  # as the admin API does
    return name, key


def shown(server: InProcessServer, project: str) -> float:
    return server.metric(METRIC, f'project="{project}"')


def test_the_intake_shows_the_backlog_a_client_reported_after_an_outage(
    server: InProcessServer,
    project: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kept.delivery, "BACKOFF_BASE", 0.01)
    monkeypatch.setattr(kept.delivery, "BACKOFF_CAP", 0.1)
    monkeypatch.setattr(kept.spooling, "SPOOL_AFTER", 0.3)
    name, key = project
    port = int(server.url.rsplit(":", 1)[1])
    with Gate(("127.0.0.1", port)) as gate:
        client = Client(
            f"http://127.0.0.1:{gate.port}",
            key,
            spool_dir=tmp_path / "spool",
            batch_size=5,
            flush_interval=0.01,
        )
        try:
            for i in range(20):
                client.log_generation(model="m", output=f"output {i}")
            deadline = time.monotonic() + 10
            while client.stats()["spooled"] < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            stats = client.stats()
            assert stats["spooled"] == 20, stats
            backlog = stats["spool_bytes"]
            assert backlog > 0 and gate.dropped > 0
            assert shown(server, name) == 0  # nothing reached the intake yet

            gate.opened.set()
            assert client.flush(timeout=30)
            assert client.stats()["spool_bytes"] == 0
        finally:
            client.close(timeout=5)
    assert shown(server, name) == backlog  # the first replay carried the whole backlog
    assert server.count("generations", "project = {p:String}", p=name) == 20


def test_reports_count_on_refused_requests_and_malformed_ones_are_ignored(
    server: InProcessServer, project: tuple[str, str]
) -> None:
    name, key = project
    invalid = generation(model=None)
    refused = server.post([invalid], key=key, **{SPOOL_BYTES_HEADER: "5000"})
    assert refused.status == 422  # a client spools while it is refused: it still counts
    assert shown(server, name) == 5000
    for malformed in ("-7", "12abc", "²³", "9" * 40, "1e9", ""):
        answer = server.post([generation()], key=key, **{SPOOL_BYTES_HEADER: malformed})
        assert answer.status == 202, (malformed, answer.body)
    assert shown(server, name) == 5000
    assert server.post([generation()], key=key, **{SPOOL_BYTES_HEADER: " 70000 "}).status == 202
    assert shown(server, name) == 70000
    # Without a valid key there is no project to show it under.
    assert server.post([generation()], key="kept_nope", **{SPOOL_BYTES_HEADER: "1"}).status == 401


def test_the_largest_report_of_the_last_minute_per_project() -> None:
    now = [1000.0]
    reports = ClientSpoolReports(CollectorRegistry(), clock=lambda: now[0])
    reports.report("a", 300)
    now[0] += 30
    reports.report("a", 100)
    reports.report("b", 7)
    assert reports.largest() == {"a": 300, "b": 7}
    now[0] += SPOOL_REPORT_WINDOW_S - 29  # the 300 is older than the window
    assert reports.largest() == {"a": 100, "b": 7}
    now[0] += 29
    assert reports.largest() == {}  # drained clients stop reporting: the series goes


def test_the_registry_exports_the_gauge_with_a_project_label() -> None:
    registry = CollectorRegistry()
    reports = ClientSpoolReports(registry)
    assert registry.get_sample_value(METRIC, {"project": "p"}) is None
    reports.report("p", 42)
    assert registry.get_sample_value(METRIC, {"project": "p"}) == 42
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        ClientSpoolReports(registry)
