"""What a modern broker has, used: the version floor, idempotent producers, compression.

The broker's own log segments (tests/kafka/logs.py) tell how each batch was compressed
and whether an idempotent producer wrote it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from collections import defaultdict
from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError

from kept import Client
from kept.transports import Outcome
from kept.transports.kafka import KafkaTransport
from kept_ingest.consumer.kafka_io import KafkaIO
from kept_ingest.decode import decode_one
from kept_ingest.kafka_settings import KafkaSettings
from kept_ingest.sink import KafkaSink
from kept_storage import chdb_dsn
from kept_wire.kafka import (
    CODECS,
    MIN_KAFKA_VERSION,
    KafkaEndpoint,
    UnsupportedKafka,
    broker_version,
    check_kafka_version,
    choose_codec,
)
from tests.helpers import free_port, generation
from tests.kafka.broker import Broker, consume_process, read_events, store_contents, unique
from tests.kafka.logs import Batch, log_batches


def batches(broker: Broker, topic: str) -> list[Batch]:
    return log_batches(broker.directory / "kafka-logs", topic)


# --- the version floor ------------------------------------------------------------------


@pytest.mark.parametrize("version", [(0, 9), (0, 10, 2), (0, 11), (1, 1), (2, 0)])
def test_brokers_older_than_2_1_are_refused_saying_both_versions(
    version: tuple[int, ...],
) -> None:
    found = ".".join(map(str, version))
    with pytest.raises(UnsupportedKafka, match=rf"speak version {found}; kept needs Kafka 2\.1 "):
        check_kafka_version(version)


@pytest.mark.parametrize("version", [(2, 1), (2, 1, 0), (2, 8), (3, 9), (4, 1), (5, 0)])
def test_brokers_from_2_1_are_accepted(version: tuple[int, ...]) -> None:
    check_kafka_version(version)


def test_the_real_broker_says_its_version_and_it_is_accepted(broker: Broker) -> None:
    version = broker_version([broker.bootstrap], timeout=30)
    assert version >= (4, 0)  # Apache Kafka 4.1.1, as kafka-python reads ApiVersions
    assert version >= MIN_KAFKA_VERSION
    check_kafka_version(version)


def test_a_consumer_retrying_unreachable_brokers_leaves_nothing_behind() -> None:
    settings = KafkaSettings(kafka=f"127.0.0.1:{free_port()}", kafka_timeout_s=1)
    threads = threading.active_count()
    for _ in range(3):  # `consume` retries like this while Kafka is down
        with pytest.raises(KafkaTimeoutError):
            KafkaIO(settings, max_poll_records=10)
    assert threading.active_count() <= threads


# --- compression ------------------------------------------------------------------------


def test_auto_is_zstd_and_each_codec_is_itself() -> None:
    assert choose_codec("auto") == "zstd"
    assert [choose_codec(c) for c in CODECS] == ["zstd", "lz4", "gzip", None]
    with pytest.raises(ValueError, match="compression must be one of"):
        choose_codec("snappy")


def test_a_missing_codec_library_is_refused_by_name_and_auto_falls_back_to_gzip() -> None:
    # A process where the codec packages cannot be imported, as in an install without them.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["zstandard"] = sys.modules["lz4"] = None
        from kept.transports.kafka import KafkaTransport
        from kept_wire.kafka import UnsupportedKafka, choose_codec
        print(choose_codec("auto"))
        for codec in ("zstd", "lz4"):
            try:
                choose_codec(codec)
            except UnsupportedKafka as exc:
                print(exc)
        transport = KafkaTransport.from_endpoint("kafka://127.0.0.1:9?compression=zstd")
        result = transport.send([b'{"generation_id":"g"}'])
        print(result.outcome.name, result.detail)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "gzip",
        "compression zstd needs the zstandard package: pip install zstandard",
        "compression lz4 needs the lz4 package: pip install lz4",
        # Refused before any broker is asked: retrying would not install the package.
        "FATAL compression zstd needs the zstandard package: pip install zstandard",
    ]


def test_every_codec_from_the_sdk_is_stored_by_kept_consume(broker: Broker, tmp_path: Path) -> None:
    """Each codec's events, SDK → Kafka → `kept consume` → store; the broker's log shows
    each client's batches compressed as asked, by an idempotent producer. The consumer's
    dead-letter producer follows KEPT_KAFKA_COMPRESSION."""
    topic, group = unique("codecs"), unique("g")
    counts = {"zstd": 20, "lz4": 21, "gzip": 22, "none": 23, "auto": 24}
    gids: list[str] = []
    for codec, count in counts.items():
        endpoint = f"{broker.endpoint(topic)}&compression={codec}"
        with Client(endpoint=endpoint, project="p", spool_dir=False) as client:
            gids += [client.log_generation(model=codec, output="x" * 500) for _ in range(count)]
            assert client.flush(timeout=60)
            assert client.stats()["sent"] == count
    broker.produce(topic, [b"not json"], [b"poison"])  # one dead letter
    dsn = chdb_dsn(tmp_path / "store")
    settings = {"KEPT_DSN": dsn, "KEPT_KAFKA_COMPRESSION": "lz4"}
    with consume_process(broker, topic, group, **settings) as consumer:
        consumer.wait_for(lambda: consumer.inserted() >= len(gids), "every event stored")
        consumer.wait_for(
            lambda: consumer.metric("kept_consumer_dead_lettered_total") == 1, "the dead letter"
        )
        assert consumer.stop() == 0
    assert "(Kafka 4." in consumer.log  # the version it found, accepted
    counts_stored = store_contents(dsn, tmp_path / "ids.txt")
    assert counts_stored["generations"] == {"rows": len(gids), "distinct": len(gids)}
    assert sorted((tmp_path / "ids.txt").read_text().split("\n")) == sorted(gids)

    by_producer: dict[int, set[str]] = defaultdict(set)
    for batch in batches(broker, topic):
        by_producer[batch.producer_id].add(batch.codec)
    poison_producer = by_producer.pop(-1)  # the test's own plain producer, not kept's
    assert poison_producer == {"none"}
    # One idempotent producer per client, each compressing only as it was asked to.
    assert all(len(codecs) == 1 for codecs in by_producer.values())
    assert sorted(codec for (codec,) in by_producer.values()) == sorted(
        "zstd" if codec == "auto" else codec for codec in counts
    )

    letters = batches(broker, topic + ".dlq")
    assert sum(b.records for b in letters) == 1
    assert {(b.codec, b.producer_id >= 0) for b in letters} == {("lz4", True)}


# --- idempotent producers ---------------------------------------------------------------


def test_the_sdk_transport_produces_idempotently(broker: Broker) -> None:
    topic = unique("idem")
    transport = KafkaTransport(KafkaEndpoint.parse(broker.endpoint(topic)), timeout=30)
    try:
        # Compressible: kafka-python sends a batch that compression does not shrink as it is.
        events = [
            json.dumps({"generation_id": f"g{i}", "x": "y" * 200}).encode() for i in range(50)
        ]
        assert transport.send(events).outcome is Outcome.SENT
        assert transport.send(events[:5]).outcome is Outcome.SENT
    finally:
        transport.close()
    found = batches(broker, topic)
    assert sum(b.records for b in found) == 2  # each send's events as one array message
    # One producer id, from the broker (InitProducerId): -1 would mean not idempotent.
    assert {b.producer_id >= 0 for b in found} == {True}
    assert len({b.producer_id for b in found}) == 1
    assert {b.codec for b in found} == {"zstd"}


def test_the_intake_sink_produces_idempotently_with_the_servers_codec(broker: Broker) -> None:
    topic = unique("sink")
    settings = KafkaSettings(kafka=broker.bootstrap, kafka_topic=topic, kafka_compression="gzip")
    events = [decode_one(json.dumps(generation(output="x" * 500)).encode()) for _ in range(30)]
    sink = KafkaSink(settings)
    try:
        asyncio.run(sink.write(events, "shop"))
    finally:
        sink.close()
    found = read_events(broker, topic, 30)
    assert {event["project"] for _, event in found} == {"shop"}
    assert len({record.offset for record, _ in found}) == 1  # one message: a JSON array
    written = batches(broker, topic)
    assert sum(b.records for b in written) == 1
    assert {(b.codec, b.producer_id >= 0) for b in written} == {("gzip", True)}
