"""Configuration of `kept consume`, from `KEPT_*` environment variables.

The Kafka fields are KafkaSettings' and the store's StoreSettings' (`KEPT_DATA`,
`KEPT_DSN`, `KEPT_DATABASE`, ...), both shared with `kept serve`.
"""

from __future__ import annotations

from kept_ingest.kafka_settings import KafkaSettings
from kept_ingest.metrics import MetricsSettings
from kept_storage.settings import StoreSettings, with_overrides


class ConsumerSettings(KafkaSettings, StoreSettings, MetricsSettings):
    """`kept consume`: Kafka in, ClickHouse out, metrics on their own port."""


def consumer_settings(**overrides: object) -> ConsumerSettings:
    """The environment's settings with command-line values (those not None) on top."""
    return with_overrides(ConsumerSettings(), **overrides)
