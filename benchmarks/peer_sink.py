"""A loopback HTTP sink that accepts everything kept, PostHog and Langfuse send.

Run as its own process by ``benchmarks/sdk_peers.py`` (so it does not compete with the
measured SDKs for the GIL); it prints ``port <n>`` once it listens and serves until it
is terminated. It answers each SDK the way its real server would on success, and counts
requests, body bytes and events per path; ``GET /_sink/stats`` returns those counts.

The sink stands for a server on another machine, but here it shares the two cores with
the measured app. So a POST is only read and kept, and its events are counted (a JSON
parse of each 550 KB batch of kept's, gunzip and a parse of PostHog's, protobuf of
Langfuse's) when the counts are asked for, which the benchmarks do outside their
measured windows: the sink's decoding does not compete with the app while it is measured.

- ``POST /v1/events`` (kept): a JSON array → 202 ``{}`` (kept's sender reads the status).
- ``POST /batch/`` and the other PostHog capture paths: ``{"batch": [...]}`` → 200
  ``{"status": 1}``.
- ``POST /api/public/otel/v1/traces`` (Langfuse, OTLP/HTTP protobuf): the spans are counted
  by decoding the request → 200 with an empty ``ExportTraceServiceResponse``.
- ``GET /api/public/projects`` (Langfuse's auth check): one project.
- Anything else: 200 ``{}``.

Bodies may be gzip-compressed (``Content-Encoding: gzip``).

    .venv/bin/python benchmarks/peer_sink.py [--port 0]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

try:  # installed with langfuse (opentelemetry-exporter-otlp-proto-http)
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
except ImportError:  # pragma: no cover - then OTLP requests are counted, not their spans
    ExportTraceServiceRequest = None

OTLP_TRACES = "/api/public/otel/v1/traces"
PROJECTS = {
    "data": [
        {
            "id": "bench-project",
            "name": "bench",
            "organization": {"id": "bench-org", "name": "bench"},
            "metadata": {},
        }
    ]
}


class Counts:
    """Requests, body bytes (as received) and events per method and path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        self._uncounted: list[tuple[str, str, bytes, bool]] = []  # path, key, body, gzip

    def add(self, key: str, size: int, events: int) -> None:
        with self._lock:
            row = self._by_path[key]
            row[0] += 1
            row[1] += size
            row[2] += events

    def add_later(self, path: str, raw: bytes, gzipped: bool) -> None:
        """A POST whose events are counted at the next snapshot."""
        with self._lock:
            self._uncounted.append((path, f"POST {path}", raw, gzipped))

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            uncounted, self._uncounted = self._uncounted, []
        for path, key, raw, gzipped in uncounted:
            self.add(key, len(raw), count_events(path, gzip.decompress(raw) if gzipped else raw))
        with self._lock:
            return {
                key: {"requests": r, "bytes": b, "events": e}
                for key, (r, b, e) in sorted(self._by_path.items())
            }


COUNTS = Counts()


def count_events(path: str, body: bytes) -> int:
    """How many events ``body`` carries for the SDK behind ``path`` (0 when unknown)."""
    if path == OTLP_TRACES:
        if ExportTraceServiceRequest is None:
            return 0
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        return sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
    try:
        data: Any = json.loads(body)
    except ValueError:
        return 0
    if isinstance(data, list):
        return len(data)
    if isinstance(data, dict):
        for key in ("batch", "events"):
            if isinstance(data.get(key), list):
                return len(data[key])
        return 1
    return 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real servers do
    # The status line and headers go out in one write and the body in another: with
    # Nagle's algorithm on, the body would wait for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the benchmark's output

    def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/_sink/stats":
            self._answer(200, json.dumps(COUNTS.snapshot()).encode())
            return
        COUNTS.add(f"GET {path}", 0, 0)
        if path == "/api/public/projects":
            self._answer(200, json.dumps(PROJECTS).encode())
        else:
            self._answer(200, b"{}")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        COUNTS.add_later(path, raw, self.headers.get("Content-Encoding", "").lower() == "gzip")
        if path == "/v1/events":  # kept's sender reads the status only
            self._answer(202, b"{}")
        elif path == OTLP_TRACES:
            self._answer(200, b"", "application/x-protobuf")  # an empty export response
        elif path.startswith(("/batch", "/capture", "/e/", "/i/")):
            self._answer(200, b'{"status": 1}')
        else:
            self._answer(200, b"{}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
