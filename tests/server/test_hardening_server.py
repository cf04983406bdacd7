"""Hardening of the in-process server: auth edges, the keyless page, readiness, modes on
disk and the security headers of every answer."""

from __future__ import annotations

import json
import stat
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from kept_service.app import create_app
from kept_service.runtime.settings import ServerSettings
from kept_storage.datadir import DataDir
from tests.helpers import InProcessServer, generation, http


def _raw(
    server: InProcessServer, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    """A request with headers exactly as given (Host included), bytes as latin-1."""
    parts = urlsplit(server.url)
    conn = HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        body = b"[]" if method == "POST" else None
        if body is not None:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        raw = response.read()
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return response.status, dict(response.getheaders()), parsed
    finally:
        conn.close()


def _authenticated_routes() -> list[tuple[str, str]]:
    """Every operation the OpenAPI document says needs a bearer credential."""
    document = create_app(ServerSettings()).openapi()
    routes = []
    for path, operations in document["paths"].items():
        concrete = path.replace("{panel_id}", "ingest_rate").replace("{name}", "model")
        concrete = concrete.replace("{key_id}", "abcdefghijkl")
        for method, operation in operations.items():
            if operation.get("security"):
                routes.append((method.upper(), concrete))
    return routes


@pytest.mark.parametrize(
    "bearer", ["Bearer caf\u00e9", "Bearer \u00c3\u00a9\u00ff", "Bearer é " * 3]
)
def test_non_ascii_bearer_is_unauthorized_on_every_route(
    server: InProcessServer, bearer: str
) -> None:
    routes = _authenticated_routes()
    assert len(routes) >= 10, routes
    for method, path in routes:
        status, _, body = _raw(server, method, path, {"Authorization": bearer})
        assert status == 401, (method, path, status, body)
        if path in ("/v1/traces", "/v1/logs"):  # OTLP answers with a google.rpc.Status
            assert body["code"] == 16, (method, path, body)  # UNAUTHENTICATED
        else:
            assert body["error"] == "unauthorized", (method, path, body)


def test_keyless_page_data_needs_a_loopback_host(server: InProcessServer) -> None:
    port = urlsplit(server.url).port
    path = "/v1/panels/ingest_rate?from=now-1h"
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        status, _, body = _raw(server, "GET", path, {"Host": host})
        assert status == 200, (host, body)
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.attacker.example", ""):
        status, _, body = _raw(server, "GET", path, {"Host": host})
        assert status == 401, (host, body)
        assert body["error"] == "unauthorized"


def test_keyless_page_data_refuses_cross_site_requests(server: InProcessServer) -> None:
    port = urlsplit(server.url).port
    path = "/v1/variables/model?from=now-1h"
    host = {"Host": f"127.0.0.1:{port}"}
    same = [
        {"Origin": f"http://127.0.0.1:{port}"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
    ]
    for extra in same:
        assert _raw(server, "GET", path, host | extra)[0] == 200, extra
    cross = [
        {"Origin": "http://attacker.example"},
        {"Origin": f"http://localhost:{port}"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ]
    for extra in cross:
        status, _, body = _raw(server, "GET", path, host | extra)
        assert status == 401, (extra, body)
    # A key still reads from anywhere: the check is for keyless access only.
    keyed = {"Authorization": f"Bearer {server.key}", "Origin": "http://attacker.example"}
    assert _raw(server, "GET", path, {"Host": "attacker.example"} | keyed)[0] == 200


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_directory_and_store_are_private(session_server: InProcessServer) -> None:
    data_dir = session_server.runtime.data_dir
    assert _mode(data_dir.path) == 0o700
    assert _mode(data_dir.store_dir) == 0o700
    for name in ("kept.lock", "admin-token", "feedback-secret", "demo-key"):
        assert _mode(data_dir.path / name) == 0o600, name


def test_an_existing_open_data_directory_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old"
    (path / "clickhouse").mkdir(parents=True)
    path.chmod(0o755)
    (path / "clickhouse").chmod(0o755)
    (path / "kept.lock").write_text("")
    (path / "kept.lock").chmod(0o644)
    data_dir = DataDir(path)
    with caplog.at_level("INFO", logger="kept.datadir"):
        data_dir.acquire()
    try:
        assert _mode(path) == 0o700
        assert _mode(path / "clickhouse") == 0o700
        assert _mode(path / "kept.lock") == 0o600
        assert "0700" in caplog.text
    finally:
        data_dir.release()


def test_readiness_and_intake_when_inserts_fail(server: InProcessServer) -> None:
    assert http("GET", server.url + "/readyz").status == 200
    store = server.runtime.store
    store.command("ALTER TABLE generations ADD CONSTRAINT refuse_all CHECK 0")
    try:
        refused = server.post([generation()])
        assert refused.status == 503, refused.body
        assert refused.body["error"] == "unavailable"
        message = refused.body["message"]
        assert "refuse_all" not in message and "Exception" not in message, message
        ready = http("GET", server.url + "/readyz")
        assert ready.status == 503, ready.body
        assert ready.body["checks"]["inserts"] is False
    finally:
        store.command("ALTER TABLE generations DROP CONSTRAINT refuse_all")
    assert server.post([generation()]).status == 202
    ready = http("GET", server.url + "/readyz")
    assert ready.status == 200 and ready.body["checks"]["inserts"] is True


def test_security_headers_on_the_page_and_its_assets(server: InProcessServer) -> None:
    for path in ("/", "/static/app.js", "/static/app.css", "/v1/dashboard"):
        response = http("GET", server.url + path)
        assert response.status == 200, path
        headers = {k.lower(): v for k, v in response.headers.items()}
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path


def test_no_docs_page_from_a_cdn(server: InProcessServer) -> None:
    assert http("GET", server.url + "/docs").status == 404
    assert http("GET", server.url + "/redoc").status == 404
    assert http("GET", server.url + "/openapi.json").status == 200


def test_a_directory_kept_did_not_make_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "home"
    path.mkdir()
    path.chmod(0o755)
    (path / "notes.txt").write_text("the user's own file")
    data_dir = DataDir(path)
    data_dir.acquire()
    try:
        assert _mode(path) == 0o755
        assert _mode(path / "clickhouse") == 0o700
        assert _mode(path / "kept.lock") == 0o600
    finally:
        data_dir.release()
