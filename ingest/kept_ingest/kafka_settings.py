"""The Kafka settings that `kept serve` and `kept consume` share (`KEPT_KAFKA*`)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kept_wire.kafka import DEFAULT_TOPIC, TOPIC_PATTERN, parse_bootstrap, parse_compression


class KafkaSettings(BaseSettings):
    """Where events travel through Kafka, and how the consumer batches and judges them."""

    model_config = SettingsConfigDict(env_prefix="KEPT_", extra="ignore")

    kafka: str | None = Field(
        None,
        description="Kafka bootstrap servers (host:9092,host2:9092). Set, `kept serve` sends "
        "intake to Kafka and consumes it; `kept consume` needs it.",
    )
    kafka_topic: str = Field(DEFAULT_TOPIC, pattern=TOPIC_PATTERN, description="Event topic.")
    kafka_group: str = Field(
        "kept-ingest", min_length=1, description="Consumer group of the ingest consumers."
    )
    kafka_dlq_topic: str = Field(
        "kept.events.dlq", pattern=TOPIC_PATTERN, description="Topic for invalid messages."
    )
    kafka_compression: str = Field(
        "auto",
        description="How the server's producers compress: auto (zstd), zstd, lz4, gzip or none.",
    )
    kafka_timeout_s: float = Field(
        10.0, gt=0, description="How long to wait for the brokers to acknowledge a produce."
    )
    kafka_batch_max_events: int = Field(
        20_000, ge=1, description="Most events the consumer inserts at once."
    )
    kafka_batch_max_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Most message bytes the consumer inserts at once."
    )
    kafka_batch_max_ms: float = Field(
        500.0, gt=0, description="Longest a consumed event waits for its batch to fill."
    )
    kafka_invalid_max_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="The consumer stops when more than this share of the last "
        "`kafka_invalid_window` events were invalid.",
    )
    kafka_invalid_window: int = Field(
        1000, ge=1, description="Events over which the invalid share is measured."
    )
    kafka_shutdown_grace_s: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM, how long a batch the store refuses is still retried "
        "(then the consumer stops without committing it; it is read again later).",
    )
    kafka_dlq_max_original_bytes: int = Field(
        65_536, ge=0, description="Bytes of an invalid message copied into its dead letter."
    )
    kafka_session_timeout_s: float = Field(
        45.0,
        ge=1,
        le=1800,
        description="A consumer not heard of for this long leaves the group and its "
        "partitions go to the others (within the brokers' group.min/max.session.timeout.ms).",
    )
    # How `kept kafka create-topics` makes the topics (existing topics are only compared).
    kafka_partitions: int = Field(
        12, ge=1, description="Partitions of the event topic: the most consumers that share it."
    )
    kafka_dlq_partitions: int = Field(3, ge=1, description="Partitions of the dead-letter topic.")
    kafka_replication_factor: int = Field(
        3, ge=1, description="Copies of each partition, on as many brokers."
    )
    kafka_min_insync_replicas: int = Field(
        2,
        ge=1,
        description="Copies that must have a message before it is acknowledged (acks=all).",
    )
    kafka_retention_hours: float = Field(
        168, gt=0, description="How long the event topic keeps messages (7 days)."
    )
    kafka_dlq_retention_hours: float = Field(
        720, gt=0, description="How long the dead-letter topic keeps messages (30 days)."
    )

    @field_validator("kafka")
    @classmethod
    def _servers(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            parse_bootstrap(value)
            return value.strip()
        return None

    @field_validator("kafka_compression")
    @classmethod
    def _compression(cls, value: str) -> str:
        return parse_compression(value)

    def kafka_servers(self) -> list[str]:
        """The bootstrap servers as a list (empty when Kafka is not configured)."""
        return list(parse_bootstrap(self.kafka)) if self.kafka else []
