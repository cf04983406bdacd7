"""`kept dashboards push` against a small recording Grafana API in the test: paths,
payloads, and idempotency (a second push writes nothing). Also checks that the
urllib3-future that grafana-client brings keeps clickhouse-connect's HTTP client working."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kept_dashboards.push import push
from tests.helpers import run_kept


class FakeGrafana(BaseHTTPRequestHandler):
    store: dict[str, Any]
    calls: list[tuple[str, str, Any]]

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def do_GET(self) -> None:
        self.calls.append(("GET", self.path, self.headers.get("Authorization")))
        found = self.store.get(self.path)
        self._send(200, found) if found is not None else self._send(404, {"message": "nf"})

    def do_POST(self) -> None:
        body = self._body()
        self.calls.append(("POST", self.path, body))
        if self.path == "/api/folders":
            self.store[f"/api/folders/{body['uid']}"] = {"uid": body["uid"], "title": body["title"]}
        elif self.path == "/api/datasources":
            self.store[f"/api/datasources/uid/{body['uid']}"] = {**body, "id": 7, "orgId": 1}
        elif self.path == "/api/dashboards/db":
            uid = body["dashboard"]["uid"]
            stored = {**body["dashboard"], "id": 3, "version": 2}
            meta = {"folderUid": body["folderUid"]}
            self.store[f"/api/dashboards/uid/{uid}"] = {"dashboard": stored, "meta": meta}
        self._send(200, {"status": "success"})

    def do_PUT(self) -> None:
        body = self._body()
        self.calls.append(("PUT", self.path, body))
        self.store[self.path.replace("/api/datasources/uid/", "/api/datasources/uid/")] = body
        self._send(200, {"status": "success"})


@pytest.fixture
def grafana() -> Iterator[tuple[str, type[FakeGrafana]]]:
    handler = type("Handler", (FakeGrafana,), {"store": {}, "calls": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()


def test_push_provisions_then_changes_nothing(grafana: tuple[str, type[FakeGrafana]]) -> None:
    url, handler = grafana
    first = push(url, "glsa_test")
    assert first.created == [
        "folder:kept",
        "datasource:kept-clickhouse",
        "datasource:kept-prometheus",
        "dashboard:kept-quality",
    ]
    writes = [(m, p) for m, p, _ in handler.calls if m != "GET"]
    assert writes == [
        ("POST", "/api/folders"),
        ("POST", "/api/datasources"),
        ("POST", "/api/datasources"),
        ("POST", "/api/dashboards/db"),
    ]
    assert all(auth == "Bearer glsa_test" for m, _, auth in handler.calls if m == "GET")
    dashboard = next(b for m, p, b in handler.calls if p == "/api/dashboards/db")
    assert dashboard["folderUid"] == "kept" and dashboard["overwrite"] is True
    assert dashboard["dashboard"]["uid"] == "kept-quality"
    ch = next(b for m, p, b in handler.calls if p == "/api/datasources")
    assert ch["type"] == "grafana-clickhouse-datasource" and ch["jsonData"]["port"] == 8123

    handler.calls.clear()
    second = push(url, "glsa_test")
    assert not second.created and not second.updated
    assert [m for m, _, _ in handler.calls] == ["GET"] * 4


def test_cli_push_and_build(grafana: tuple[str, type[FakeGrafana]], tmp_path: Any) -> None:
    url, _ = grafana
    result = run_kept("dashboards", "push", "--grafana-url", url, "--token", "t")
    assert result.returncode == 0, result.stderr
    assert "created   dashboard:kept-quality" in result.stdout
    again = run_kept("dashboards", "push", "--grafana-url", url, "--token", "t")
    assert "created" not in again.stdout and "unchanged dashboard:kept-quality" in again.stdout
    built = run_kept("dashboards", "build", "--out", str(tmp_path))
    assert built.returncode == 0 and (tmp_path / "dashboards/kept-quality.json").exists()
    down = run_kept("dashboards", "push", "--grafana-url", "http://127.0.0.1:9", "--token", "t")
    assert down.returncode == 1 and "Grafana" in down.stderr


def test_clickhouse_connect_http_works_beside_urllib3_future() -> None:
    # grafana-client pulls in urllib3-future, which installs as `urllib3`; clickhouse-connect
    # must still send a request and stream the answer through its pool manager.
    import urllib3
    from clickhouse_connect.driver.httputil import get_pool_manager

    class Answer(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        pool = get_pool_manager()
        response = pool.request(
            "POST",
            f"http://127.0.0.1:{httpd.server_address[1]}/?query=x",
            body=b"SELECT 1" * 10_000,
            preload_content=False,
        )
        data = b"".join(response.stream(4096))
        assert response.status == 200 and data == b"SELECT 1" * 10_000
    finally:
        httpd.shutdown()
    assert urllib3.__version__  # type: ignore[attr-defined]
