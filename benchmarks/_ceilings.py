"""Ceilings the ingest benchmarks compare kept with, measured in the same run.

This machine is shared, so an absolute events/s figure moves with the neighbours' load;
a ratio against a ceiling measured minutes apart on the same machine moves much less.
Two ceilings bound kept's ingest from above: what the Kafka client library alone reads
(kafka-python's fetch and record parsing, nothing decoded) and what the store alone
takes (the same rows kept would insert, made beforehand, inserted through the driver
with no validation, dedup or row building).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from kept_ingest.consumer.decode import MAX_MESSAGE_BYTES
from kept_ingest.contract import Event
from kept_ingest.rows import EventRows, to_rows
from kept_storage import Store, migrate

BATCH_EVENTS = 20_000
"""Events per insert: `kept consume`'s batch (KEPT_KAFKA_BATCH_MAX_EVENTS). The HTTP
writer's group commit takes at most what the clients have in flight at once."""


def fetch_rate(bootstrap: str, topic: str, messages: int) -> float:
    """Messages/s kafka-python alone reads `topic` from the start (with the fetch sizes
    `kept consume` uses), each record's value touched, nothing decoded."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        fetch_max_bytes=2 * MAX_MESSAGE_BYTES,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        consumer.poll(timeout_ms=0)  # connect and look up offsets off the clock
        started, seen, size = time.perf_counter(), 0, 0
        deadline = time.monotonic() + 600
        while seen < messages and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=BATCH_EVENTS).values():
                seen += len(batch)
                size += sum(len(r.value) for r in batch)
        elapsed = time.perf_counter() - started
    finally:
        consumer.close(autocommit=False)
    if seen < messages:
        raise SystemExit(f"the raw fetch read only {seen} of {messages} messages")
    return seen / elapsed


def batches(
    events: Sequence[Event], project: str | None = None, size: int = BATCH_EVENTS
) -> list[EventRows]:
    """The rows of `events`, a batch of `size` at a time (made before any clock)."""
    now = datetime.now(timezone.utc)
    return [to_rows(events[i : i + size], now, project) for i in range(0, len(events), size)]


def insert_rate(dsn: str, database: str, rows: Sequence[EventRows]) -> tuple[float, float]:
    """Rows/s the store takes `rows` through the driver (a fresh database, migrated), and
    this process's CPU µs per row meanwhile (the embedded store's work included; a
    server's not)."""
    store = Store(dsn, database)
    try:
        migrate(store)
        first = rows[0]  # warms the driver and the tables off the clock
        store.insert_columns("generations", first.generations.data)
        store.insert_columns("feedback", first.feedback.data)
        started, cpu = time.perf_counter(), time.process_time()
        for batch in rows:
            store.insert_columns("generations", batch.generations.data)
            store.insert_columns("feedback", batch.feedback.data)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        store.close()
    total = sum(len(b) for b in rows)
    return total / elapsed, cpu / total * 1e6


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, all threads) a process has used so far: per event, a
    figure that moves little with the load of the machine's other processes."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time so far of a process's threads by name, digits dropped (`ThreadPool`,
    `MergeMutate`, ...: the embedded store's threads are named; Python's are `python`)."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")].rstrip("0123456789")
        fields = stat.rsplit(")", 1)[1].split()
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return totals


def ratio(rate: float, ceiling: float) -> str:
    """`rate` as a share of `ceiling`, for the printed lines."""
    return f"{rate / ceiling:.0%}"
