"""Configuration of `kept consume`, from `KEPT_*` environment variables.

The Kafka fields are KafkaSettings' and the store's StoreSettings' (`KEPT_DATA`,
`KEPT_DSN`, `KEPT_DATABASE`, ...), both shared with `kept serve`.
"""

from __future__ import annotations

from pydantic import Field

from kept_ingest.kafka_settings import KafkaSettings
from kept_storage.settings import StoreSettings, with_overrides


class ConsumerSettings(KafkaSettings, StoreSettings):
    """`kept consume`: Kafka in, ClickHouse out, metrics on their own port."""

    metrics_host: str = Field("127.0.0.1", description="Address of the /metrics server.")
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="Port of the /metrics server (0: none)."
    )


def consumer_settings(**overrides: object) -> ConsumerSettings:
    """The environment's settings with command-line values (those not None) on top."""
    return with_overrides(ConsumerSettings(), **overrides)
