"""Several `kept consume` processes in one group, on one ClickHouse server: they share the
topic's partitions, rebalance when one joins, take over from one killed with SIGKILL, and
every event is stored once."""

from __future__ import annotations

import re
import signal
from contextlib import ExitStack
from pathlib import Path

import pytest

from kept import Client
from kept_ingest.kafka_settings import KafkaSettings
from kept_ingest.topics import ensure_topics
from tests.helpers import database_for, server_database
from tests.kafka.broker import Broker, ConsumeProcess, broker_done, consume_process, unique

pytestmark = pytest.mark.slow

PARTITIONS = 6
_HOLDING = re.compile(r"kept\.consumer: assigned .*; holding (.*)$")


def holding(consumer: ConsumeProcess) -> set[int] | None:
    """The partitions the consumer said it holds after its latest assignment (None: none
    yet)."""
    found = None
    for line in consumer.log.splitlines():
        match = _HOLDING.search(line)
        if match:
            found = {int(p) for p in re.findall(r"\[(\d+)\]", match.group(1))}
    return found


def shared_by(consumers: list[ConsumeProcess]) -> bool:
    """Every partition held by exactly one of `consumers`, and each holds some."""
    held = [holding(c) for c in consumers]
    if any(not h for h in held):
        return False
    every = [p for h in held for p in h or ()]
    return sorted(every) == list(range(PARTITIONS))


def produce(broker: Broker, topic: str, generations: int, tag: str) -> list[str]:
    # Small batches: the SDK sends a batch per message with no key, so each lands on a
    # partition of its own choosing; a few large ones could all miss a consumer's share.
    endpoint = broker.endpoint(topic)
    with Client(endpoint=endpoint, project="p", spool_dir=False, batch_size=25) as client:
        gids = [client.log_generation(model="m", output=f"{tag}{i}") for i in range(generations)]
        assert client.flush(timeout=120)
    return gids


def test_consumers_share_partitions_rebalance_and_take_over_from_a_killed_one(
    broker: Broker, clickhouse_url: str, tmp_path: Path
) -> None:
    topic, group = unique("group"), unique("g")
    settings = KafkaSettings(
        kafka=broker.bootstrap,
        kafka_topic=topic,
        kafka_dlq_topic=topic + ".dlq",
        kafka_partitions=PARTITIONS,
        kafka_replication_factor=1,
        kafka_min_insync_replicas=1,
    )
    assert [o.status for o in ensure_topics(settings)] == ["created", "created"]
    database = database_for(tmp_path)
    env = {
        "KEPT_DSN": clickhouse_url,
        "KEPT_DATABASE": database,
        # A killed consumer's partitions move after this long without its heartbeat.
        "KEPT_KAFKA_SESSION_TIMEOUT_S": "6",
        "KEPT_KAFKA_BATCH_MAX_EVENTS": "500",
    }
    with server_database(clickhouse_url, database) as store, ExitStack() as stack:
        a = stack.enter_context(consume_process(broker, topic, group, **env))
        a.wait_for(lambda: holding(a) == set(range(PARTITIONS)), "a alone holding everything")
        b = stack.enter_context(consume_process(broker, topic, group, **env))
        b.wait_for(lambda: shared_by([a, b]), "a and b sharing the partitions")
        gids = produce(broker, topic, 3000, "first-")
        a.wait_for(lambda: a.inserted() + b.inserted() >= 3000, "the first wave stored")
        assert a.inserted() > 0 and b.inserted() > 0  # both did part of the work
        before = {"a": holding(a), "b": holding(b)}

        c = stack.enter_context(consume_process(broker, topic, group, **env))
        c.wait_for(lambda: shared_by([a, b, c]), "a, b and c sharing the partitions")
        # The newcomer took partitions from those already there.
        assert len(holding(a) or ()) < len(before["a"] or ())
        assert len(holding(b) or ()) < len(before["b"] or ())

        inserted_by_b = b.inserted()
        gids += produce(broker, topic, 6000, "second-")
        b.wait_for(lambda: b.inserted() > inserted_by_b, "b storing part of the second wave")
        assert b.stop(signal.SIGKILL) == -signal.SIGKILL
        a.wait_for(lambda: shared_by([a, c]), "a and c taking over b's partitions", timeout=90)

        gids += produce(broker, topic, 3000, "third-")
        total = len(gids)
        a.wait_for(
            lambda: broker_done(broker, topic, group),
            "every message stored and committed",
            timeout=180,
        )
        assert c.inserted() > 0
        assert a.stop() == 0 and c.stop() == 0
        ((rows, distinct),) = store.rows("SELECT count(), uniqExact(event_id) FROM generations")
        stored = {r[0] for r in store.rows("SELECT DISTINCT generation_id FROM generations")}
    assert distinct == total  # each event once, whoever stored it
    assert stored == set(gids)
    # What b stored but had not committed was read again by its successors: repeats that
    # ReplacingMergeTree collapses (readers count distinct ids meanwhile).
    assert rows >= distinct
