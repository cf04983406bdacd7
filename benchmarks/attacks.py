"""Resource attacks on a real `kept serve`: how fast each is refused, how `/healthz`
answers meanwhile, and how much memory the server takes.

The cases of the hardening review, at their original sizes: a 9.7 KB gzip body that
inflates to 3.3 million `{}` (as NDJSON and as a JSON array), a 48 MiB header, and 200
slowloris connections. The tests (tests/server/test_hardening_*.py) assert bounds on
smaller versions; this prints the figures.

    .venv/bin/python benchmarks/attacks.py
"""

from __future__ import annotations

import gzip
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers import ServeProcess, http, serve_process

LINES = 3_300_000


def _gzip_bomb(server: ServeProcess, array: bool) -> str:
    raw = b"[" + b",".join([b"{}"] * LINES) + b"]" if array else b"{}\n" * LINES
    body = gzip.compress(raw, 9)
    kind = "application/json" if array else "application/x-ndjson"
    headers = {"Authorization": f"Bearer {server.key}", "Content-Type": kind}
    response = http("POST", server.url + "/v1/events", body, headers | {"Content-Encoding": "gzip"})
    return f"{len(body):,} bytes → {response.status} ({len(str(response.body)):,} bytes of body)"


def _gzip_ndjson(server: ServeProcess) -> str:
    return _gzip_bomb(server, array=False)


def _gzip_array(server: ServeProcess) -> str:
    return _gzip_bomb(server, array=True)


def _huge_header(server: ServeProcess) -> str:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        try:
            while sent < 48 << 20:
                conn.sendall(b"a" * (1 << 20))
                sent += 1 << 20
        except OSError:
            pass  # the server closed the connection: what a refusal looks like here
        answer = conn.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
    return f"{sent >> 20} MiB sent → {answer or 'connection closed'}"


def _slowloris(server: ServeProcess) -> str:
    host, port = server.url.removeprefix("http://").split(":")
    conns = [socket.create_connection((host, int(port)), timeout=120) for _ in range(200)]
    for conn in conns:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    start = time.perf_counter()
    for conn in conns:
        conn.recv(4096)  # returns when the server answers or closes
    return f"200 connections closed after {time.perf_counter() - start:.1f} s"


def _measure(server: ServeProcess, attack: Callable[[ServeProcess], str]) -> None:
    process = psutil.Process(server.process.pid)
    base = process.memory_info().rss
    peak, health, done = [base], [0.0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak.append(process.memory_info().rss)
            start = time.perf_counter()
            http("GET", server.url + "/healthz", timeout=120)
            health.append(time.perf_counter() - start)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    outcome = attack(server)
    elapsed = time.perf_counter() - start
    done.set()
    watcher.join()
    print(
        f"{attack.__name__.strip('_'):<12} {outcome}; refused in {elapsed:.2f} s; "
        f"/healthz max {max(health) * 1000:.0f} ms; RSS +{(max(peak) - base) / 2**20:.0f} MiB"
    )


def main() -> None:
    cases = [_gzip_ndjson, _gzip_array, _huge_header, _slowloris]
    print("kept serve with KEPT_REQUEST_TIMEOUT_S=5 (default 30), every other setting default")
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_process(Path(tmp) / "data", KEPT_REQUEST_TIMEOUT_S="5") as server,
    ):
        for case in cases:
            _measure(server, case)


if __name__ == "__main__":
    main()
