"""HTTP intake throughput: batched POSTs against a real `kept serve` on loopback.

Prints events/s made durable (202 means stored), into the embedded store and into a
ClickHouse server of its own (deploy/clickhouse-local). Bodies are
encoded before the clock starts, so the load generator costs little CPU; client and
server still share this machine's cores, so the figure is a floor. The ceilings, measured
in the same run (benchmarks/_ceilings.py): the store alone taking the same rows (made
beforehand) through the driver, with no HTTP, validation, dedup or row building, in
inserts of `kept consume`'s batch and in inserts of what the clients have in flight at
once (clients × batch: the most one group commit can take, as each client waits for its
answer). Each insert costs the store a part whatever its size, so the second is the
intake's real bound. The server's CPU per event is split into its Python threads and the
embedded store's engine threads (named by ClickHouse).

    .venv/bin/python benchmarks/intake.py [--seconds 20] [--batch 1000] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import _paths  # noqa: F401 - first: puts the repository on the path, this folder off it

from benchmarks._ceilings import (
    BATCH_EVENTS,
    batches,
    cpu_seconds,
    insert_rate,
    ratio,
    thread_cpu_seconds,
)
from kept_ingest.decode import decode_json_array
from kept_storage import chdb_dsn
from tests.clickhouse import local_clickhouse
from tests.helpers import ServeProcess, serve_process

CEILING_EVENTS = 100_000
"""Events of the bodies whose rows make the insert ceiling."""
TARGET = 60_000
"""Events/s the intake should make durable per process (issue 16)."""


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


def events_accepted(status: int, payload: bytes) -> int:
    """What a `/v1/events` answer says was stored (SystemExit unless a 202)."""
    if status != 202:
        raise SystemExit(f"unexpected {status}: {payload[:200]!r}")
    return int(json.loads(payload)["accepted"])


def client_loop(
    url: str, key: str, bodies: list[bytes], stop: float, counts: list[int],
    path: str = "/v1/events", content_type: str = "application/json",
    accepted: Callable[[int, bytes], int] = events_accepted,
) -> None:  # fmt: skip
    """POST `bodies` to `path` one after the other until `stop`, appending to `counts`
    what each answer says was stored."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    for body in bodies:
        if time.monotonic() >= stop:
            break
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        counts.append(accepted(response.status, response.read()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--store", choices=["embedded", "ClickHouse"], help="only this store")
    args = parser.parse_args()
    per_client = int(60_000 * args.seconds / args.batch / args.clients) + 2
    print(f"encoding {per_client * args.clients} bodies of {args.batch} events ...", flush=True)
    bodies = [
        [make_body(args.batch, c * per_client + i) for i in range(per_client)]
        for c in range(args.clients)
    ]
    events = [
        e for body in bodies[0][: CEILING_EVENTS // args.batch] for e in decode_json_array(body)
    ]
    in_flight = args.clients * args.batch
    sizes = sorted({BATCH_EVENTS, in_flight}, reverse=True)
    rows = {size: batches(events, "bench", size) for size in sizes}
    with tempfile.TemporaryDirectory(prefix="kept-bench-intake-") as tmp:
        (Path(tmp) / "clickhouse").mkdir()
        with local_clickhouse(Path(tmp) / "clickhouse") as url:
            stores = {
                "the embedded store": ({}, lambda db: (chdb_dsn(Path(tmp) / db), "kept")),
                "the ClickHouse server": (
                    {"KEPT_DSN": url, "KEPT_DATABASE": "intake"},
                    lambda db: (url, db),
                ),
            }
            for name, (env, where) in stores.items():
                if args.store and args.store not in name:
                    continue
                ceilings = {}
                for size in sizes:
                    ceiling, cpu_us = insert_rate(*where(f"ceiling{size}"), rows[size])
                    ceilings[size] = ceiling
                    print(
                        f"ceiling: raw insert of the same rows into {name}, {size:,} a time: "
                        f"{ceiling:,.0f} events/s ({cpu_us:.1f} µs CPU per event in the "
                        "inserting process)"
                    )
                data = Path(tmp) / f"data-{name.split()[-2]}"
                with serve_process(data, **env) as server:
                    rate = run_clients(server, bodies, args, name)
                shares = ", ".join(
                    f"{ratio(rate, ceilings[size])} of the ceiling at {size:,} a time"
                    for size in sizes
                )
                print(f"  {shares}; {ratio(rate, TARGET)} of the {TARGET:,}/s target", flush=True)


def run_clients(server: ServeProcess, bodies: list[list[bytes]], args: Any, name: str) -> float:
    """Events/s made durable by `args.clients` clients posting `bodies` for `args.seconds`;
    prints them with the server's CPU time per event (all its threads)."""
    url, key, pid = server.url, server.key, server.process.pid
    warm = [0]
    client_loop(url, key, bodies[0][:2], time.monotonic() + 60, warm)
    counts: list[list[int]] = [[] for _ in range(args.clients)]
    started, cpu, threads_cpu = time.monotonic(), cpu_seconds(pid), thread_cpu_seconds(pid)
    stop = started + args.seconds
    threads = [
        threading.Thread(target=client_loop, args=(url, key, bodies[c][2:], stop, counts[c]))
        for c in range(args.clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu
    after = thread_cpu_seconds(pid)
    python = after.get("python", 0.0) - threads_cpu.get("python", 0.0)
    events = sum(sum(c) for c in counts)
    requests = sum(len(c) for c in counts)
    print(
        f"intake into {name}: {events / elapsed:,.0f} events/s durable "
        f"({events:,} events in {requests:,} requests of {args.batch}, "
        f"{args.clients} clients, {elapsed:.1f} s); server CPU {cpu / events * 1e6:.1f} µs "
        f"per event ({events / cpu:,.0f} events per CPU-second): Python threads "
        f"{python / events * 1e6:.1f}, others (an embedded store's engine) "
        f"{(cpu - python) / events * 1e6:.1f}",
        flush=True,
    )
    return events / elapsed


if __name__ == "__main__":
    main()
