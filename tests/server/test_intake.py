"""Durability semantics of the intake: idempotency, group commit, backpressure."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kept_ingest.decode import decode_json_array
from kept_ingest.metrics import IngestMetrics
from kept_ingest.rows import to_rows
from kept_ingest.writer import BatchWriter, Overloaded
from tests.helpers import InProcessServer, feedback, generation, serve_process


def test_same_event_id_twice_is_stored_once(server: InProcessServer) -> None:
    gen = generation()
    vote = feedback("vote", gen["generation_id"], value=-1)
    assert server.post([gen, vote]).status == 202
    assert server.post([gen, vote]).status == 202  # a client retry
    assert server.post([gen, gen, vote, vote]).status == 202  # duplicates inside one request
    assert server.count("generations") == 1
    assert server.count("feedback") == 1
    assert server.metric("kept_events_duplicate_total") >= 6


def test_a_restarted_writer_still_skips_recent_ids(server: InProcessServer) -> None:
    events = [generation() for _ in range(3)]
    assert server.post(events).status == 202
    # A new writer, as after a restart: it learns recent ids from the store at start.
    writer = BatchWriter(server.runtime.store, IngestMetrics())
    writer.start()
    try:
        parsed = decode_json_array(json.dumps([*events, generation()]).encode())
        writer.submit(to_rows(parsed, datetime.now(timezone.utc), "demo")).result(30)
    finally:
        writer.stop()
    assert server.count("generations") == 4


def test_duplicates_past_the_window_collapse_and_count_once(server: InProcessServer) -> None:
    # Older than the in-memory window: stored twice at first, but readers count event
    # ids, and the table's merge collapses them.
    event = generation()
    writer = BatchWriter(server.runtime.store, IngestMetrics(), recent_ids=0)
    writer.start()
    try:
        for _ in range(2):
            rows = to_rows(
                decode_json_array(json.dumps([event]).encode()), datetime.now(timezone.utc), "demo"
            )
            writer.submit(rows).result(30)
    finally:
        writer.stop()
    assert server.count("generations") == 2
    assert server.runtime.store.scalar("SELECT uniqExact(event_id) FROM generations") == 1
    server.runtime.store.command("OPTIMIZE TABLE generations FINAL")
    assert server.count("generations") == 1


def test_retry_after_partial_store_completes_it(server: InProcessServer) -> None:
    first = [generation() for _ in range(3)]
    assert server.post(first[:2]).status == 202
    assert server.post(first).status == 202
    assert server.count("generations") == 3


def test_concurrent_requests_share_inserts(server: InProcessServer) -> None:
    requests = 64
    batches_before = server.metric("kept_insert_batches_total")
    barrier = threading.Barrier(requests)

    def send(_: int) -> int:
        body = [generation() for _ in range(20)]
        barrier.wait()
        return server.post(body).status

    with ThreadPoolExecutor(requests) as pool:
        statuses = list(pool.map(send, range(requests)))
    assert statuses == [202] * requests
    inserts = server.metric("kept_insert_batches_total") - batches_before
    assert server.count("generations") == requests * 20
    assert 1 <= inserts < requests, f"{inserts} insert batches for {requests} requests"


def test_writer_refuses_past_its_bound(server: InProcessServer) -> None:
    # The writer is not started, so nothing drains: the bound alone decides.
    writer = BatchWriter(server.runtime.store, IngestMetrics(), max_pending_rows=5)
    events = decode_json_array(json.dumps([generation() for _ in range(4)]).encode())
    rows = to_rows(events, datetime.now(timezone.utc), "demo")
    writer.submit(rows)
    with pytest.raises(Overloaded):
        writer.submit(rows)


@pytest.mark.slow
def test_overload_answers_429_with_retry_after(data_dir: Path) -> None:
    # A long linger keeps the first request's rows pending while the second arrives.
    env = {"KEPT_PENDING_MAX_ROWS": "5", "KEPT_BATCH_LINGER_MS": "1500"}
    with serve_process(data_dir, None, **env) as proc:
        results: list[int] = []
        first = threading.Thread(
            target=lambda: results.append(proc.post([generation() for _ in range(5)]).status)
        )
        first.start()
        time.sleep(0.5)
        second = proc.post([generation() for _ in range(5)])
        first.join()
        assert second.status == 429
        assert second.body["error"] == "overloaded"
        assert int(second.headers["retry-after"]) >= 1
        assert results == [202]
