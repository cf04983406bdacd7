"""The event and dead-letter topics, made through Kafka's admin API as the settings say.

`kept kafka create-topics` runs this once per deployment, as `kept migrate` does for the
store: it creates the topics that are missing, with the partitions, replication factor,
`min.insync.replicas` and retention of the settings, and compares those that exist. It
never changes an existing topic (partitions cannot shrink, and adding some moves keys to
other partitions): a difference is reported, for a person to decide. `kept serve` and
`kept consume` do not create topics, so they need no rights to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from kept_ingest.kafka_settings import KafkaSettings
from kept_wire.kafka import broker_version, check_kafka_version

HOUR_MS = 3_600_000
MIN_INSYNC_REPLICAS = "min.insync.replicas"
RETENTION_MS = "retention.ms"
CHECKED_CONFIGS = (MIN_INSYNC_REPLICAS, RETENTION_MS)
"""The topic configs kept sets and compares."""

Status = Literal["created", "exists", "differs"]


class TopicsError(Exception):
    """The topics cannot be made as the settings say; the message says why."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic as kept wants it."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicState:
    """A topic as the cluster has it."""

    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicOutcome:
    """What create-topics found or did for one topic."""

    spec: TopicSpec
    status: Status
    differences: tuple[str, ...] = ()


def topic_specs(settings: KafkaSettings) -> list[TopicSpec]:
    """The event topic and the dead-letter topic, from the settings (a pure function)."""
    replicas = settings.kafka_replication_factor
    min_insync = settings.kafka_min_insync_replicas
    if min_insync > replicas:
        raise TopicsError(
            f"KEPT_KAFKA_MIN_INSYNC_REPLICAS={min_insync} is more than "
            f"KEPT_KAFKA_REPLICATION_FACTOR={replicas}: no message could ever be acknowledged"
        )

    def spec(name: str, partitions: int, retention_hours: float) -> TopicSpec:
        configs = {
            MIN_INSYNC_REPLICAS: str(min_insync),
            RETENTION_MS: str(round(retention_hours * HOUR_MS)),
        }
        return TopicSpec(name, partitions, replicas, configs)

    return [
        spec(settings.kafka_topic, settings.kafka_partitions, settings.kafka_retention_hours),
        spec(
            settings.kafka_dlq_topic,
            settings.kafka_dlq_partitions,
            settings.kafka_dlq_retention_hours,
        ),
    ]


def differences(spec: TopicSpec, state: TopicState) -> tuple[str, ...]:
    """How an existing topic differs from what kept wants (a pure function)."""
    found = []
    if state.partitions != spec.partitions:
        found.append(f"{state.partitions} partitions, not {spec.partitions}")
    if state.replication_factor != spec.replication_factor:
        found.append(
            f"replication factor {state.replication_factor}, not {spec.replication_factor}"
        )
    for name, wanted in sorted(spec.configs.items()):
        actual = state.configs.get(name)
        if actual != wanted:
            found.append(f"{name}={actual}, not {wanted}")
    return tuple(found)


def ensure_topics(settings: KafkaSettings) -> list[TopicOutcome]:
    """Create the missing topics and compare the others; one outcome per topic.

    Raises TopicsError for what the settings cannot get (too few brokers, brokers too
    old) and kafka-python's errors when the cluster cannot be reached or refuses.
    """
    specs = topic_specs(settings)
    with admin_client(settings) as admin:
        states = describe(admin, [s.name for s in specs])
        missing = [s for s in specs if s.name not in states]
        created: set[str] = set()
        if missing:
            _check_brokers(admin, missing)
            created = _create(admin, missing, settings.kafka_timeout_s)
            # Made meanwhile by someone else: compared like any existing topic.
            states.update(describe(admin, [s.name for s in missing if s.name not in created]))
        outcomes = []
        for spec in specs:
            if spec.name in created:
                outcomes.append(TopicOutcome(spec, "created"))
            elif spec.name in states:
                found = differences(spec, states[spec.name])
                outcomes.append(TopicOutcome(spec, "differs" if found else "exists", found))
            else:
                raise TopicsError(f"{spec.name} was neither created nor found")
        return outcomes


@contextmanager
def admin_client(settings: KafkaSettings) -> Iterator[Any]:
    """A KafkaAdminClient on the configured brokers, once they are known new enough."""
    from kafka import KafkaAdminClient

    servers = settings.kafka_servers()
    if not servers:
        raise TopicsError("KEPT_KAFKA is not set (bootstrap servers, host:9092,...)")
    check_kafka_version(broker_version(servers, settings.kafka_timeout_s))
    admin = KafkaAdminClient(
        bootstrap_servers=servers,
        client_id="kept-admin",
        request_timeout_ms=max(int(settings.kafka_timeout_s * 1000), 1000),
    )
    try:
        yield admin
    finally:
        admin.close()


def describe(admin: Any, names: Sequence[str]) -> dict[str, TopicState]:
    """The topics of `names` that exist, with their partitions, replicas and configs."""
    from kafka.admin import ConfigResource, ConfigResourceType

    found = {t["name"]: t for t in admin.describe_topics(list(names)) if t["error_code"] == 0}
    if not found:
        return {}
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, list(CHECKED_CONFIGS)) for name in found
    ]
    configs = admin.describe_configs(resources, config_filter="all")["topic"]
    states = {}
    for name, topic in found.items():
        partitions = topic["partitions"]
        states[name] = TopicState(
            partitions=len(partitions),
            # The smallest replica set: a partition short of copies is what matters.
            replication_factor=min((len(p["replica_nodes"]) for p in partitions), default=0),
            configs={key: entry["value"] for key, entry in configs.get(name, {}).items()},
        )
    return states


def _check_brokers(admin: Any, specs: Sequence[TopicSpec]) -> None:
    brokers = len(admin.describe_cluster()["brokers"])
    wanted = max(s.replication_factor for s in specs)
    if wanted > brokers:
        raise TopicsError(
            f"a replication factor of {wanted} needs {wanted} brokers, and the cluster has "
            f"{brokers}: set KEPT_KAFKA_REPLICATION_FACTOR (and KEPT_KAFKA_MIN_INSYNC_REPLICAS) "
            "to what it can hold"
        )


def _create(admin: Any, specs: Sequence[TopicSpec], timeout_s: float) -> set[str]:
    """Create `specs`; the names created (another create-topics may have been first)."""
    from kafka.errors import TopicAlreadyExistsError, for_code

    timeout_ms = max(int(timeout_s * 1000), 1000)
    result = admin.create_topics(
        {
            s.name: {
                "num_partitions": s.partitions,
                "replication_factor": s.replication_factor,
                "configs": dict(s.configs),
            }
            for s in specs
        },
        timeout_ms=timeout_ms,
        raise_errors=False,
    )
    created = set()
    for topic in result["topics"]:
        error = for_code(topic["error_code"])
        if topic["error_code"] == 0:
            created.add(topic["name"])
        elif error is not TopicAlreadyExistsError:
            raise TopicsError(
                f"Kafka did not create {topic['name']}: {error.__name__}: "
                f"{topic.get('error_message') or ''}".rstrip(": ")
            )
    if created:
        admin.wait_for_topics(sorted(created), timeout_ms=timeout_ms)
    return created
