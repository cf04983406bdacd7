"""The Kafka settings that `kept serve` and `kept consume` share (`KEPT_KAFKA*`)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kept_wire.kafka import DEFAULT_TOPIC, TOPIC_PATTERN, parse_api_version, parse_bootstrap


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
    kafka_api_version: str = Field(
        "auto", description="Broker protocol version, e.g. 0.9 (auto: ask the broker)."
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
        "`kafka_invalid_window` messages were invalid.",
    )
    kafka_invalid_window: int = Field(
        1000, ge=1, description="Messages over which the invalid share is measured."
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

    @field_validator("kafka")
    @classmethod
    def _servers(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            parse_bootstrap(value)
            return value.strip()
        return None

    @field_validator("kafka_api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        parse_api_version(value)
        return value

    def kafka_servers(self) -> list[str]:
        """The bootstrap servers as a list (empty when Kafka is not configured)."""
        return list(parse_bootstrap(self.kafka)) if self.kafka else []

    def kafka_version(self) -> tuple[int, ...] | None:
        """The configured protocol version, or None to ask the broker."""
        return parse_api_version(self.kafka_api_version)
