"""A closed-loop HTTP/1.1 load generator: N keep-alive connections, one request in flight each.

Run as its own process by ``benchmarks/sdk_busy_app.py`` so that it does not share the
measured app's GIL. Each connection sends ``GET <path>``, waits for the whole response and
sends the next one at once, so the app always has N requests in hand. It is written on
raw asyncio protocols (uvloop when installed), not an HTTP client library, so that one core
drives well over the app's rate; the report gives its own CPU use to check that.

Protocol with the parent, one line each on stdout: ``start`` when the measured window
opens (after ``--warmup`` s), ``end`` when it closes (after ``--seconds`` more), then one
JSON object: ``requests`` completed in the window, ``rps``, ``p50_ms``/``p99_ms``/``max_ms``
of those, ``errors`` and ``load_cpu`` (this process's CPU seconds over the window).

    python benchmarks/http_load.py --port 8000 [--path /chat] [--connections 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from types import ModuleType
from typing import cast

uvloop: ModuleType | None
try:
    import uvloop
except ImportError:  # pragma: no cover - plain asyncio is slower but works
    uvloop = None


class Window:
    """The measured window and what completed in it."""

    def __init__(self) -> None:
        self.open = False
        self.latencies: list[float] = []
        self.errors = 0


class Connection(asyncio.Protocol):
    """One keep-alive connection that sends the next request as soon as a response ends."""

    def __init__(self, request: bytes, window: Window, done: asyncio.Future[None]) -> None:
        self._request = request
        self._window = window
        self._done = done
        self._buffer = b""
        self._sent_at = 0.0
        self._transport: asyncio.Transport | None = None
        self.stopping = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        self._sent_at = time.perf_counter()
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = buffer[:head_end].lower()
            at = head.find(b"content-length:")
            length = 0
            if at >= 0:
                eol = head.find(b"\r\n", at)
                length = int(head[at + 15 : eol if eol >= 0 else len(head)])
            end = head_end + 4 + length
            if len(buffer) < end:
                break
            ok = head.startswith(b"http/1.1 200")
            buffer = buffer[end:]
            window = self._window
            if window.open:
                if ok:
                    window.latencies.append(time.perf_counter() - self._sent_at)
                else:
                    window.errors += 1
            if self.stopping:
                assert self._transport is not None
                self._transport.close()
                return
            self._send()
        self._buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.stopping:
            self._window.errors += 1
        if not self._done.done():
            self._done.set_result(None)


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
        "User-Agent: kept-bench\r\nAccept: */*\r\n\r\n"
    ).encode()
    window = Window()
    connections: list[Connection] = []
    closed: list[asyncio.Future[None]] = []
    for _ in range(args.connections):
        done: asyncio.Future[None] = loop.create_future()
        connection = Connection(request, window, done)
        await loop.create_connection(lambda c=connection: c, "127.0.0.1", args.port)  # type: ignore[misc]
        connections.append(connection)
        closed.append(done)
    await asyncio.sleep(args.warmup)
    window.open = True
    cpu0, t0 = time.process_time(), time.perf_counter()
    print("start", flush=True)
    await asyncio.sleep(args.seconds)
    window.open = False
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print("end", flush=True)
    for connection in connections:
        connection.stopping = True
    await asyncio.wait(closed, timeout=10)
    latencies = sorted(window.latencies)
    n = len(latencies)

    def ms(q: float) -> float:
        return latencies[min(n - 1, int(q * n))] * 1000 if n else 0.0

    return {
        "requests": n,
        "rps": n / elapsed,
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "max_ms": latencies[-1] * 1000 if n else 0.0,
        "errors": window.errors,
        "elapsed": elapsed,
        "load_cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/chat")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = asyncio.run(run(args)) if uvloop is None else uvloop.run(run(args))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
