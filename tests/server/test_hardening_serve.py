"""Hardening of `kept serve` against clients that misbehave at the HTTP level: huge or
many headers, requests sent a byte at a time, exports nobody reads, too many
connections; and a data directory it cannot use."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers import ServeProcess, generation, http, run_kept, serve_process

pytestmark = pytest.mark.slow

MAX_CONNECTIONS = 100


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data = tmp_path_factory.mktemp("hardening") / "kept-data"
    with serve_process(
        data,
        KEPT_REQUEST_TIMEOUT_S="2",
        KEPT_WRITE_TIMEOUT_S="3",
        KEPT_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        KEPT_ANALYTICS_LAG_S="0",
    ) as proc:
        yield proc


def _connect(proc: ServeProcess, rcvbuf: int | None = None) -> socket.socket:
    parts = urlsplit(proc.url)
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect((parts.hostname or "", parts.port or 0))
    return sock


def _send_all(sock: socket.socket, data: bytes) -> None:
    """Send what the server takes; it may close the connection before the end."""
    with contextlib.suppress(OSError):
        sock.sendall(data)


def _status_of(sock: socket.socket) -> tuple[int, bytes]:
    """The status and the raw answer of the server, up to its end or 64 KiB."""
    answer = b""
    try:
        while len(answer) < 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer and answer.startswith(b"HTTP/1.1 4"):
                head, _, body = answer.partition(b"\r\n\r\n")
                length = [
                    ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")
                ]
                if length and len(body) >= int(length[0].split(b":")[1]):
                    break
    except OSError:
        pass
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer


def _rss_kib(proc: ServeProcess) -> int:
    for line in Path(f"/proc/{proc.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _quick(proc: ServeProcess, path: str, **kwargs: object) -> int:
    started = time.monotonic()
    response = http("GET", proc.url + path, timeout=5, **kwargs)  # type: ignore[arg-type]
    assert time.monotonic() - started < 3, path
    return response.status


def test_an_oversized_header_is_refused_quickly_with_memory_bounded(kept: ServeProcess) -> None:
    before = _rss_kib(kept)
    sock = _connect(kept)
    started = time.monotonic()
    sender = threading.Thread(
        target=_send_all,
        args=(sock, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * (48 << 20)),
    )
    sender.start()
    status, answer = _status_of(sock)
    sock.close()
    sender.join(30)
    assert status == 431, answer[:200]
    assert time.monotonic() - started < 5
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["error"] == "headers_too_large"
    assert _rss_kib(kept) - before < 20 * 1024  # 48 MiB sent; at most the limit kept
    assert _quick(kept, "/healthz") == 200


def test_many_headers_are_refused(kept: ServeProcess) -> None:
    sock = _connect(kept)
    # 150 short headers: well under the byte limit, over the count.
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    _send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + headers + b"\r\n")
    status, answer = _status_of(sock)
    sock.close()
    assert status == 431, answer[:200]
    # A request with ordinary headers still goes through, also a long-ish one.
    assert _quick(kept, "/healthz", headers={"X-Long": "v" * 8000}) == 200


def test_slow_requests_are_closed_within_the_timeout(kept: ServeProcess) -> None:
    idle = _connect(kept)  # says nothing at all
    slow = _connect(kept)  # a header line now and then, never the end
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
    body = _connect(kept)  # headers, then not all of the body it announced
    body.sendall(b"POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n[")
    started = time.monotonic()
    closed: dict[str, float] = {}
    while len(closed) < 3 and time.monotonic() - started < 8:
        for name, sock in (("idle", idle), ("slow", slow), ("body", body)):
            if name in closed:
                continue
            if name == "slow":
                _send_all(sock, b"X-Drip: 1\r\n")
            sock.settimeout(0.05)
            try:
                if sock.recv(65536, socket.MSG_PEEK) == b"" or _drained(sock):
                    closed[name] = time.monotonic() - started
            except TimeoutError:
                pass
            except OSError:
                closed[name] = time.monotonic() - started
        # The server answers others meanwhile.
        assert _quick(kept, "/healthz") == 200
        time.sleep(0.3)
    for sock in (idle, slow, body):
        sock.close()
    assert set(closed) == {"idle", "slow", "body"}, closed
    assert all(1.5 < seconds < 5 for seconds in closed.values()), closed


def _drained(sock: socket.socket) -> bool:
    """Read what the server sent (a 408); True once the connection is closed."""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return True


def test_connections_beyond_the_limit_get_503(kept: ServeProcess) -> None:
    held = [_connect(kept) for _ in range(MAX_CONNECTIONS)]
    try:
        extra = _connect(kept)
        _send_all(extra, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, answer = _status_of(extra)
        extra.close()
        assert status == 503, answer[:200]
        assert b"retry-after" in answer.lower()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert _quick(kept, "/healthz") == 200


def _big_events(count: int) -> list[dict[str, object]]:
    return [
        generation(output=f"{uuid.uuid4()} " + "a long answer, " * 1500, input=str(uuid.uuid4()))
        for _ in range(count)
    ]


def _export_request(token: str) -> bytes:
    return (
        b"GET /v1/export?format=jsonl HTTP/1.1\r\nHost: localhost\r\n"
        + f"Authorization: Bearer {token}\r\n\r\n".encode()
    )


def test_exports_nobody_reads_do_not_freeze_the_api(kept: ServeProcess) -> None:
    for _ in range(6):  # ~13 MB of outputs, more than socket buffers and the channel hold
        assert kept.post(_big_events(100)).status == 202
    token = (kept.data / "admin-token").read_text().strip()
    stalled = []
    for _ in range(2):
        sock = _connect(kept, rcvbuf=4096)
        sock.sendall(_export_request(token))
        stalled.append(sock)
    time.sleep(1.5)  # both exports run and fill every buffer
    refused = []
    try:
        for _ in range(40):
            sock = _connect(kept, rcvbuf=4096)
            sock.sendall(_export_request(token))
            refused.append(sock)
        for sock in refused[:3]:
            status, answer = _status_of(sock)
            assert status == 429, answer[:300]
            assert b"retry-after" in answer.lower()
            assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "overloaded"
        auth = {"Authorization": f"Bearer {kept.key}"}
        assert _quick(kept, "/readyz") == 200
        assert _quick(kept, "/v1/report", headers=auth) == 200
        started = time.monotonic()
        assert kept.post([generation()]).status == 202
        assert time.monotonic() - started < 3
        # The stalled exports are given up after KEPT_WRITE_TIMEOUT_S: exports run again.
        deadline = time.monotonic() + 15
        while True:
            response = http("GET", kept.url + "/v1/export?format=jsonl&limit=1", headers=auth)
            if response.status == 200:
                break
            assert response.status == 429
            assert time.monotonic() < deadline, "the stalled exports were never given up"
            time.sleep(0.5)
        # The connection closed by the HTTP layer, or the export giving up: either way. The
        # second export started later (it waited for the first one's outcomes run), so it
        # may stop a moment after a slot came free.
        while (log := "".join(kept.output)).count("export stopped: ") < 2:
            assert time.monotonic() < deadline + 10, log[-2000:]
            time.sleep(0.2)
    finally:
        for sock in stalled + refused:
            sock.close()


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_an_unusable_data_directory_is_one_clear_line(tmp_path: Path, where: str) -> None:
    # Root ignores permission bits, so the failure is made with a file where the
    # directory should be: it fails for every user.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    data = blocker if where == "file" else blocker / "kept-data"
    result = run_kept("serve", "--data", str(data), "--port", "1")
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kept: cannot use data directory"), lines
    assert str(data) in lines[0]
