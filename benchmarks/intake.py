"""HTTP intake throughput: batched POSTs against a real `kept serve` on loopback.

Prints events/s made durable (202 means stored in the embedded ClickHouse). Bodies are
encoded before the clock starts, so the load generator costs little CPU; client and
server still share this machine's cores, so the figure is a floor.

    .venv/bin/python benchmarks/intake.py [--seconds 20] [--batch 1000] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers import serve_process


def make_body(batch: int, rng_seed: int) -> bytes:
    """A realistic mix: 1 generation : ~2 feedback events, outputs of a few hundred bytes."""
    ts = datetime.now(timezone.utc) - timedelta(seconds=rng_seed % 3600)
    events = []
    while len(events) < batch:
        gid = str(uuid.uuid4())
        events.append(
            {
                "type": "generation", "event_id": str(uuid.uuid4()), "generation_id": gid,
                "ts": ts.isoformat(), "model": "gpt-4o-mini", "prompt_version": "summarize@2",
                "input": "Summarise the following support ticket. " * 5,
                "output": "The customer reports that the export fails on large files. " * 4,
                "latency_ms": 812, "input_tokens": 412, "output_tokens": 96, "cost_usd": 0.00021,
                "metadata": {"app": "support-bot"}, "user_id": "u-17",
            }
        )  # fmt: skip
        events.append(
            {"type": "action", "event_id": str(uuid.uuid4()), "generation_id": gid,
             "ts": ts.isoformat(), "name": "accept"}
        )  # fmt: skip
        events.append(
            {"type": "vote", "event_id": str(uuid.uuid4()), "generation_id": gid,
             "ts": ts.isoformat(), "value": 1}
        )  # fmt: skip
    return json.dumps(events[:batch]).encode()


def client_loop(url: str, key: str, bodies: list[bytes], stop: float, counts: list[int]) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for body in bodies:
        if time.monotonic() >= stop:
            break
        conn.request("POST", "/v1/events", body, headers)
        response = conn.getresponse()
        payload = response.read()
        if response.status != 202:
            raise SystemExit(f"unexpected {response.status}: {payload[:200]!r}")
        counts.append(json.loads(payload)["accepted"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    per_client = int(60_000 * args.seconds / args.batch / args.clients) + 2
    print(f"encoding {per_client * args.clients} bodies of {args.batch} events ...", flush=True)
    bodies = [
        [make_body(args.batch, c * per_client + i) for i in range(per_client)]
        for c in range(args.clients)
    ]
    with tempfile.TemporaryDirectory() as tmp, serve_process(Path(tmp) / "data") as server:
        warm = [0]
        client_loop(server.url, server.key, bodies[0][:2], time.monotonic() + 60, warm)
        counts: list[list[int]] = [[] for _ in range(args.clients)]
        started = time.monotonic()
        stop = started + args.seconds
        threads = [
            threading.Thread(
                target=client_loop, args=(server.url, server.key, bodies[c][2:], stop, counts[c])
            )
            for c in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        events = sum(sum(c) for c in counts)
        requests = sum(len(c) for c in counts)
        print(
            f"intake: {events / elapsed:,.0f} events/s durable "
            f"({events:,} events in {requests:,} requests of {args.batch}, "
            f"{args.clients} clients, {elapsed:.1f} s)"
        )


if __name__ == "__main__":
    main()
