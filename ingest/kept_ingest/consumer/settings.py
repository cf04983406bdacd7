"""Configuration of `kept consume`, from `KEPT_*` environment variables.

The Kafka fields are KafkaSettings', shared with `kept serve`; the store fields mean
what they mean for the server (`KEPT_DATA`, `KEPT_DSN`, `KEPT_DATABASE`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from kept_ingest.kafka_settings import KafkaSettings
from kept_storage import chdb_dsn
from kept_storage.datadir import DataDir


class ConsumerSettings(KafkaSettings):
    """`kept consume`: Kafka in, ClickHouse out, metrics on their own port."""

    data: Path = Field(
        Path("kept-data"), description="Data directory of the embedded store (when no DSN)."
    )
    dsn: str | None = Field(
        None, description="ClickHouse DSN; default: the embedded store in <data>/clickhouse."
    )
    database: str = Field("kept", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    dedup_window_ids: int = Field(
        500_000, ge=0, description="Recently stored event ids kept in memory to skip replays."
    )
    metrics_host: str = Field("127.0.0.1", description="Address of the /metrics server.")
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="Port of the /metrics server (0: none)."
    )
    log_level: str = "info"

    def store_dsn(self, data_dir: DataDir) -> str:
        """The configured DSN, or the embedded store inside the data directory."""
        return self.dsn or chdb_dsn(data_dir.store_dir)


def consumer_settings(**overrides: object) -> ConsumerSettings:
    """The environment's settings with command-line values (those not None) on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    base = ConsumerSettings()
    return ConsumerSettings.model_validate(base.model_dump() | given) if given else base
