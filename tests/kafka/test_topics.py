"""`kept kafka create-topics`: topics made through the admin client as the settings say,
read back with the admin client; re-running is harmless; differences are reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from kept_ingest.kafka_settings import KafkaSettings
from kept_ingest.topics import TopicsError, TopicSpec, TopicState, differences, topic_specs
from tests.helpers import run_kept
from tests.kafka.broker import Broker, unique

HOUR_MS = 3_600_000


@pytest.fixture
def admin(broker: Broker) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        yield client
    finally:
        client.close()


def read_back(admin: KafkaAdminClient, topic: str) -> dict[str, Any]:
    """Partitions, replicas per partition and the two configs kept sets, from the broker."""
    (described,) = admin.describe_topics([topic])
    assert described["error_code"] == 0, f"{topic} does not exist"
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, ["min.insync.replicas", "retention.ms"])],
        config_filter="all",
    )["topic"][topic]
    return {
        "partitions": len(described["partitions"]),
        "replicas": {len(p["replica_nodes"]) for p in described["partitions"]},
        "min.insync.replicas": configs["min.insync.replicas"]["value"],
        "retention.ms": configs["retention.ms"]["value"],
    }


def create_topics(broker: Broker, topic: str, *flags: str, **env: str) -> Any:
    return run_kept(
        "kafka",
        "create-topics",
        "--kafka",
        broker.bootstrap,
        "--topic",
        topic,
        "--dlq-topic",
        topic + ".dlq",
        *flags,
        **{"KEPT_KAFKA_REPLICATION_FACTOR": "1", "KEPT_KAFKA_MIN_INSYNC_REPLICAS": "1", **env},
    )


def test_create_topics_makes_both_topics_as_the_settings_say_and_reruns_harmlessly(
    broker: Broker, admin: KafkaAdminClient
) -> None:
    topic = unique("made")
    env = {"KEPT_KAFKA_RETENTION_HOURS": "48", "KEPT_KAFKA_DLQ_PARTITIONS": "2"}
    first = create_topics(broker, topic, "--partitions", "6", **env)
    assert first.returncode == 0, first.stderr
    assert [line.split("\t")[:2] for line in first.stdout.splitlines()] == [
        [topic, "created"],
        [topic + ".dlq", "created"],
    ]
    assert read_back(admin, topic) == {
        "partitions": 6,
        "replicas": {1},
        "min.insync.replicas": "1",
        "retention.ms": str(48 * HOUR_MS),
    }
    assert read_back(admin, topic + ".dlq") == {
        "partitions": 2,
        "replicas": {1},
        "min.insync.replicas": "1",
        "retention.ms": str(720 * HOUR_MS),  # the dead letters' default: 30 days
    }

    again = create_topics(broker, topic, "--partitions", "6", "--format", "json", **env)
    assert again.returncode == 0, again.stderr
    assert [(t["topic"], t["status"], t["differences"]) for t in json.loads(again.stdout)] == [
        (topic, "exists", []),
        (topic + ".dlq", "exists", []),
    ]
    assert read_back(admin, topic)["partitions"] == 6  # untouched


def test_a_topic_that_differs_is_reported_not_changed(
    broker: Broker, admin: KafkaAdminClient
) -> None:
    topic = unique("differs")
    made = create_topics(broker, topic, "--partitions", "3")
    assert made.returncode == 0, made.stderr
    other = create_topics(
        broker,
        topic,
        "--partitions",
        "8",
        KEPT_KAFKA_RETENTION_HOURS="1",
        KEPT_KAFKA_DLQ_PARTITIONS="3",
    )
    assert other.returncode == 1
    lines = [line.split("\t") for line in other.stdout.splitlines()]
    assert lines[0][:2] == [topic, "differs"]
    assert "3 partitions, not 8" in lines[0][2]
    assert f"retention.ms={168 * HOUR_MS}, not {HOUR_MS}" in lines[0][2]
    assert lines[1][:2] == [topic + ".dlq", "exists"]
    assert f"{topic} differs from the settings; kept does not change existing" in other.stderr
    assert read_back(admin, topic)["partitions"] == 3
    assert read_back(admin, topic)["retention.ms"] == str(168 * HOUR_MS)


def test_a_replication_factor_the_cluster_cannot_hold_is_refused_clearly(
    broker: Broker, admin: KafkaAdminClient
) -> None:
    topic = unique("rf")
    done = create_topics(
        broker, topic, KEPT_KAFKA_REPLICATION_FACTOR="3", KEPT_KAFKA_MIN_INSYNC_REPLICAS="2"
    )
    assert done.returncode == 1
    assert "a replication factor of 3 needs 3 brokers, and the cluster has 1" in done.stderr
    assert topic not in admin.list_topics()


def test_unreachable_kafka_is_one_clear_line() -> None:
    from tests.helpers import free_port

    done = run_kept(
        "kafka", "create-topics", "--kafka", f"127.0.0.1:{free_port()}", KEPT_KAFKA_TIMEOUT_S="1"
    )
    assert done.returncode == 1
    assert done.stderr.startswith("kept: Kafka at 127.0.0.1:")
    assert len(done.stderr.strip().splitlines()) == 1


# --- the pure parts ---------------------------------------------------------------------


def test_specs_follow_the_settings_with_production_defaults() -> None:
    event, dlq = topic_specs(KafkaSettings(kafka_topic="t", kafka_dlq_topic="t.dlq"))
    assert event == TopicSpec(
        "t", 12, 3, {"min.insync.replicas": "2", "retention.ms": str(168 * HOUR_MS)}
    )
    assert dlq == TopicSpec(
        "t.dlq", 3, 3, {"min.insync.replicas": "2", "retention.ms": str(720 * HOUR_MS)}
    )
    half = topic_specs(KafkaSettings(kafka_retention_hours=0.5))[0]
    assert half.configs["retention.ms"] == "1800000"


def test_min_insync_replicas_above_the_replication_factor_is_refused() -> None:
    settings = KafkaSettings(kafka_replication_factor=1, kafka_min_insync_replicas=2)
    with pytest.raises(TopicsError, match="no message could ever be acknowledged"):
        topic_specs(settings)


def test_differences_name_each_mismatch() -> None:
    spec = TopicSpec("t", 12, 3, {"min.insync.replicas": "2", "retention.ms": "100"})
    same = TopicState(12, 3, {"min.insync.replicas": "2", "retention.ms": "100"})
    assert differences(spec, same) == ()
    other = TopicState(4, 1, {"min.insync.replicas": "1", "retention.ms": "100"})
    assert differences(spec, other) == (
        "4 partitions, not 12",
        "replication factor 1, not 3",
        "min.insync.replicas=1, not 2",
    )
