"""The group-commit writer's linger: an insert waits for the requests on their way to it
(authorised, still decoding) and for as many as the last inserts carried, so clients
share it, and a lone client never waits."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from kept_ingest.decode import decode_json_array
from kept_ingest.metrics import IngestMetrics
from kept_ingest.rows import EventRows, to_rows
from kept_ingest.writer import BatchWriter
from tests.helpers import InProcessServer, generation, serve_process

LINGER_S = 1.5
"""Long against an insert into the test store, so that a wait for it shows."""


def rows(events: int = 3) -> EventRows:
    parsed = decode_json_array(json.dumps([generation() for _ in range(events)]).encode())
    return to_rows(parsed, datetime.now(timezone.utc), "demo")


@contextmanager
def lingering_writer(server: InProcessServer) -> Iterator[tuple[BatchWriter, IngestMetrics]]:
    metrics = IngestMetrics()
    writer = BatchWriter(server.runtime.store, metrics, linger_s=LINGER_S)
    writer.start()
    try:
        yield writer, metrics
    finally:
        writer.stop()


def inserts(metrics: IngestMetrics) -> tuple[int, int]:
    """(inserts made, requests they carried) so far."""
    count = metrics.registry.get_sample_value("kept_insert_batch_requests_count") or 0
    total = metrics.registry.get_sample_value("kept_insert_batch_requests_sum") or 0
    return int(count), int(total)


def durable_after(future: Future[None]) -> float:
    started = time.monotonic()
    future.result(30)
    return time.monotonic() - started


def first_insert(writer: BatchWriter) -> None:
    """Made and waited for: the first insert of a writer lingers the whole time."""
    assert durable_after(writer.submit(rows())) >= LINGER_S * 0.9


def request(
    writer: BatchWriter,
    decoding_s: float,
    submits: bool = True,
    authorised: threading.Barrier | None = None,
) -> None:
    """An intake request as the API makes one: arriving, then its rows after decoding
    (once every request of `authorised` is arriving)."""
    with writer.arriving():
        if authorised is not None:
            authorised.wait(30)
        time.sleep(decoding_s)
        if submits:
            writer.submit(rows()).result(30)


def test_a_lone_client_waits_for_nobody(server: InProcessServer) -> None:
    with lingering_writer(server) as (writer, metrics):
        first_insert(writer)
        for _ in range(3):
            started = time.monotonic()
            request(writer, 0.01)
            assert time.monotonic() - started < LINGER_S / 2
        assert inserts(metrics) == (4, 4)
    assert server.count("generations") == 12


def test_clients_decoding_apart_share_an_insert(server: InProcessServer) -> None:
    with lingering_writer(server) as (writer, metrics):
        first_insert(writer)
        started = time.monotonic()
        authorised = threading.Barrier(4)
        clients = [
            threading.Thread(target=request, args=(writer, 0.1 * i, True, authorised))
            for i in range(4)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join(30)
        # The first rows waited for the three requests still decoding, not the linger.
        assert time.monotonic() - started < LINGER_S
        assert inserts(metrics) == (2, 5)
    assert server.count("generations") == 15


def test_clients_just_answered_are_waited_for(server: InProcessServer) -> None:
    with lingering_writer(server) as (writer, metrics):
        for future in [writer.submit(rows()) for _ in range(4)]:
            future.result(30)  # the first insert, of 4 requests
        # Two clients' requests queue before the other two are even authorised again:
        # the insert waits for them (as many as the last insert carried), not the linger.
        started = time.monotonic()
        early = [writer.submit(rows()) for _ in range(2)]
        time.sleep(0.3)
        late = [writer.submit(rows()) for _ in range(2)]
        for future in early + late:
            future.result(30)
        assert time.monotonic() - started < LINGER_S
        assert inserts(metrics) == (2, 8)


def test_fewer_clients_than_lately_wait_the_linger_at_most(server: InProcessServer) -> None:
    with lingering_writer(server) as (writer, metrics):
        for future in [writer.submit(rows()) for _ in range(4)]:
            future.result(30)
        # Three clients left: the one remaining waits for them no longer than the linger.
        waited = durable_after(writer.submit(rows()))
        assert LINGER_S * 0.9 <= waited < LINGER_S * 2
        assert inserts(metrics) == (2, 5)


def test_a_request_that_stores_nothing_is_not_waited_for(server: InProcessServer) -> None:
    with lingering_writer(server) as (writer, metrics):
        first_insert(writer)
        authorised = threading.Barrier(2)
        refused = threading.Thread(target=request, args=(writer, 0.2, False, authorised))
        refused.start()
        authorised.wait(30)
        waited = durable_after(writer.submit(rows()))
        refused.join(30)
        assert 0.1 <= waited < LINGER_S / 2
        assert inserts(metrics) == (2, 2)


def test_a_stalled_request_is_waited_for_one_linger_at_most(server: InProcessServer) -> None:
    with lingering_writer(server) as (writer, metrics):
        first_insert(writer)
        authorised = threading.Barrier(2)
        stalled = threading.Thread(target=request, args=(writer, LINGER_S * 3, False, authorised))
        stalled.start()
        authorised.wait(30)
        waited = durable_after(writer.submit(rows()))
        assert LINGER_S * 0.9 <= waited < LINGER_S * 2
        stalled.join(30)
        assert inserts(metrics) == (2, 2)


def test_stopping_inserts_what_is_queued_without_lingering(server: InProcessServer) -> None:
    metrics = IngestMetrics()
    writer = BatchWriter(server.runtime.store, metrics, linger_s=60)
    writer.start()
    future = writer.submit(rows())
    started = time.monotonic()
    stopper = threading.Thread(target=writer.stop)
    stopper.start()
    future.result(30)
    stopper.join(30)
    assert time.monotonic() - started < 10
    assert server.count("generations") == 3


def test_over_http_a_lone_client_waits_for_nobody(data_dir: Path) -> None:
    # The API marks a request arriving once authorised, and its rows as its own when it
    # submits them: were the two not linked, every insert would wait the whole linger.
    linger_s = 4.0
    env = {"KEPT_BATCH_LINGER_MS": str(int(linger_s * 1000))}
    with serve_process(data_dir, None, **env) as proc:
        started = time.monotonic()
        assert proc.post([generation()]).status == 202
        assert time.monotonic() - started >= linger_s * 0.9  # the first insert
        for _ in range(3):
            started = time.monotonic()
            assert proc.post([generation()]).status == 202
            assert time.monotonic() - started < linger_s / 2
