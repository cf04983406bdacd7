"""HttpTransport and the whole client against a tiny scripted HTTP sink on 127.0.0.1.

The sink is a stand-in for "some HTTP server answering these statuses"; the real kept
server is covered by the integration tests.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import kept.delivery
from kept import Client
from kept.transports import HttpTransport, Outcome, make_transport
from kept.transports.http import _retry_after, json_array

Events = list[dict[str, Any]]
Answer = tuple[int, dict[str, Any] | None, dict[str, str]]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    raw: bytes
    events: Events
    peer: tuple[str, int]
    at: float


@dataclass
class Sink:
    """Records every POST; ``answer(events)`` decides the reply (default 202)."""

    answer: Callable[[Events], Answer] = lambda events: (202, {"accepted": len(events)}, {})
    close_after_reply: bool = False
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def events(self) -> Events:
        return [e for r in self.requests for e in r.events]


@pytest.fixture
def sink() -> Iterator[Sink]:
    state = Sink()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            events = json.loads(raw)
            state.requests.append(
                Request(
                    self.path,
                    dict(self.headers),
                    raw,
                    events,
                    self.client_address,
                    time.monotonic(),
                )
            )
            status, body, headers = state.answer(events)
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            if state.close_after_reply:  # drop the connection without saying so
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def make(clients: list[Client], endpoint: str | None, **kwargs: Any) -> Client:
    client = Client(endpoint, "test-key", **kwargs)
    clients.append(client)
    return client


def log(client: Client, *models: str) -> None:
    for model in models:
        client.log_generation(model=model, output=f"output of {model}")


def models(events: Events) -> list[str]:
    return [e["model"] for e in events]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_posts_compact_json_arrays_over_one_connection(sink: Sink, clients: list[Client]) -> None:
    client = make(clients, sink.url + "/")
    for model in ("a", "b", "c"):
        log(client, model)
        assert client.flush(timeout=5)
    assert [r.path for r in sink.requests] == ["/v1/events"] * 3
    first = sink.requests[0]
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Authorization"] == "Bearer test-key"
    assert first.raw == json.dumps(first.events, separators=(",", ":")).encode()
    assert len({r.peer for r in sink.requests}) == 1  # keep-alive
    assert models(sink.events()) == ["a", "b", "c"]
    assert client.stats()["sent"] == 3


def test_a_batch_is_one_json_array_of_its_events(sink: Sink, clients: list[Client]) -> None:
    client = make(clients, sink.url)
    for model in ("a", "b", "c", "d"):
        log(client, model)
    assert client.flush(timeout=5)
    assert models(sink.events()) == ["a", "b", "c", "d"]
    for request in sink.requests:
        assert request.raw == json.dumps(request.events, separators=(",", ":")).encode()
    assert json_array([]) == b"[]"
    assert json_array([b"1"]) == b"[1]"
    assert json_array([b"1", b"{}", b"3"]) == b"[1,{},3]"


def test_endpoint_and_key_from_environment(
    sink: Sink, clients: list[Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEPT_ENDPOINT", sink.url + "/kept//")
    monkeypatch.setenv("KEPT_API_KEY", "env-key")
    client = Client()
    clients.append(client)
    client.vote("g", 1)
    assert client.flush(timeout=5)
    assert sink.requests[0].path == "/kept/v1/events"
    assert sink.requests[0].headers["Authorization"] == "Bearer env-key"


def test_reconnects_when_the_server_drops_an_idle_connection(
    sink: Sink, clients: list[Client]
) -> None:
    sink.close_after_reply = True
    client = make(clients, sink.url)
    for model in ("a", "b", "c"):
        log(client, model)
        assert client.flush(timeout=5)
        time.sleep(0.05)
    assert models(sink.events()) == ["a", "b", "c"]
    assert len({r.peer for r in sink.requests}) == 3
    assert client.stats()["retries"] == 0  # a stale connection is retried at once


def test_422_drops_exactly_the_named_events(
    sink: Sink, clients: list[Client], caplog: pytest.LogCaptureFixture
) -> None:
    def validate(events: Events) -> Answer:
        errors = [
            {"index": i, "field": "model", "message": "unknown model"}
            for i, e in enumerate(events)
            if e["model"].startswith("bad")
        ]
        return (422, {"errors": errors}, {}) if errors else (202, {"accepted": len(events)}, {})

    sink.answer = validate
    client = make(clients, sink.url)
    log(client, "a", "bad1", "b", "bad2", "c")
    assert client.flush(timeout=5)
    assert [models(r.events) for r in sink.requests] == [
        ["a", "bad1", "b", "bad2", "c"],
        ["a", "b", "c"],
    ]
    stats = client.stats()
    assert (stats["sent"], stats["dropped_invalid"], stats["queued"]) == (3, 2, 0)
    assert "unknown model" in caplog.text
    assert "output of bad" not in caplog.text


def test_422_without_error_list_drops_the_batch(sink: Sink, clients: list[Client]) -> None:
    sink.answer = lambda events: (422, {"detail": "nope"}, {})
    client = make(clients, sink.url)
    log(client, "a", "b")
    assert client.flush(timeout=5)
    assert len(sink.requests) == 1
    assert client.stats()["dropped_invalid"] == 2


def test_413_splits_batches_until_they_fit(sink: Sink, clients: list[Client]) -> None:
    def limit(events: Events) -> Answer:
        if len(events) > 2 or any(e["model"] == "huge" for e in events):
            return (413, None, {})
        return (202, {"accepted": len(events)}, {})

    sink.answer = limit
    client = make(clients, sink.url)
    log(client, "a", "b", "c", "huge", "d", "e", "f")
    assert client.flush(timeout=5)
    stored = [m for r in sink.requests if limit(r.events)[0] == 202 for m in models(r.events)]
    assert stored == ["a", "b", "c", "d", "e", "f"]
    stats = client.stats()
    assert (stats["sent"], stats["dropped_invalid"]) == (6, 1)


def test_429_retry_after_is_honoured(sink: Sink, clients: list[Client]) -> None:
    answers: list[Answer] = [(429, None, {"Retry-After": "1"})]
    sink.answer = lambda events: answers.pop() if answers else (202, {}, {})
    client = make(clients, sink.url)
    log(client, "a")
    assert client.flush(timeout=5)
    first, second = sink.requests
    assert second.at - first.at >= 0.95
    assert first.events == second.events
    assert client.stats()["retries"] == 1


def test_5xx_and_connection_errors_are_retried(
    sink: Sink, clients: list[Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kept.delivery, "BACKOFF_BASE", 0.01)
    answers: list[Answer] = [(503, None, {}), (500, None, {})]
    sink.answer = lambda events: answers.pop() if answers else (202, {}, {})
    client = make(clients, sink.url)
    log(client, "a", "b")
    assert client.flush(timeout=5)
    assert len(sink.requests) == 3
    assert sink.requests[0].events == sink.requests[2].events  # same event ids
    stats = client.stats()
    assert (stats["retries"], stats["sent"]) == (2, 2)


def test_401_drops_the_batch(
    sink: Sink, clients: list[Client], caplog: pytest.LogCaptureFixture
) -> None:
    sink.answer = lambda events: (401, {"detail": "bad key"}, {})
    client = make(clients, sink.url)
    log(client, "a", "b")
    assert client.flush(timeout=5)
    log(client, "c")
    assert client.flush(timeout=5)
    assert client.stats()["dropped_unauthorized"] == 3
    assert caplog.text.count("refused the API key") == 1
    assert "test-key" not in caplog.text


def test_endpoint_down_never_raises_and_respects_deadlines(clients: list[Client]) -> None:
    client = make(clients, f"http://127.0.0.1:{closed_port()}", spool_dir=False)
    gid = client.log_generation(model="m")
    assert client.vote(gid, 1)
    assert client.correct(gid, "t")
    start = time.monotonic()
    assert client.flush(timeout=0.5) is False
    assert time.monotonic() - start < 0.8
    start = time.monotonic()
    client.close(timeout=0.5)
    assert time.monotonic() - start < 0.8
    stats = client.stats()
    assert stats["retries"] >= 1
    assert (stats["sent"], stats["dropped_shutdown"], stats["queued"]) == (0, 3, 0)


def test_unresponsive_sink_does_not_hold_close(clients: list[Client]) -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        client = make(clients, f"http://127.0.0.1:{listener.getsockname()[1]}", spool_dir=False)
        log(client, "a")
        assert client.flush(timeout=0.3) is False
        start = time.monotonic()
        client.close(timeout=0.3)
        assert time.monotonic() - start < 0.6
        assert client.stats()["dropped_shutdown"] == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_sends_its_own_events_only(sink: Sink, clients: list[Client]) -> None:
    client = make(clients, sink.url, flush_interval=60, batch_size=100)
    log(client, "parent-sent")
    assert client.flush(timeout=5)  # the worker runs and holds a keep-alive connection
    log(client, "parent-queued-1", "parent-queued-2")

    pid = os.fork()
    if pid == 0:  # child: must not run anything of pytest's
        code = 1
        try:
            log(client, "child")
            code = 0 if client.flush(timeout=5) and client.stats()["sent"] == 1 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0
    assert models(sink.events()) == ["parent-sent", "child"]

    assert client.flush(timeout=5)
    assert sorted(models(sink.events())) == [
        "child",
        "parent-queued-1",
        "parent-queued-2",
        "parent-sent",
    ]
    assert client.stats()["sent"] == 3


def test_make_transport_by_scheme(caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(make_transport("http://localhost:8787", "k", 1.0), HttpTransport)
    assert isinstance(make_transport("HTTPS://example.com/x/", "k", 1.0), HttpTransport)
    assert make_transport(None, "k", 1.0) is None
    assert make_transport("  ", "k", 1.0) is None
    assert make_transport("kafka://a:9092,b:9092", "k", 1.0) is None
    assert "kafka:// endpoint needs a project" in caplog.text
    assert make_transport("http://user:secret@:99999", "k", 1.0) is None
    assert make_transport("ws://x", "k", 1.0) is None
    assert "secret" not in caplog.text


def test_transport_reports_connection_errors_as_retry() -> None:
    transport = HttpTransport(f"http://127.0.0.1:{closed_port()}", "k", 1.0)
    result = transport.send([b'{"type":"vote"}'])
    assert result.outcome is Outcome.RETRY
    assert "connection error" in result.detail
    transport.close()


def test_retry_after_header_parsing() -> None:
    assert _retry_after(None) is None
    assert _retry_after("2") == 2.0
    assert _retry_after("-5") == 0.0
    assert _retry_after("86400") == 300.0
    assert _retry_after("soon") is None
    in_ten = _retry_after(formatdate(time.time() + 10, usegmt=True))
    assert in_ten is not None
    assert 8 <= in_ten <= 11
