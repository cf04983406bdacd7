"""The settings of a process that writes to the store: `kept serve` and `kept consume`
both extend StoreSettings (`KEPT_DATA`, `KEPT_DSN`, `KEPT_DATABASE`,
`KEPT_CLICKHOUSE_CLUSTER`, `KEPT_CLICKHOUSE_REPLICATED`, `KEPT_DEDUP_WINDOW_IDS`,
`KEPT_LOG_LEVEL`)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kept_storage.clickhouse import Store, chdb_dsn
from kept_storage.cluster import Cluster
from kept_storage.datadir import DataDir

Settings = TypeVar("Settings", bound=BaseSettings)


class StoreSettings(BaseSettings):
    """Where the store is, and what a writer to it remembers."""

    model_config = SettingsConfigDict(env_prefix="KEPT_", extra="ignore")

    data: Path = Field(
        Path("kept-data"), description="Data directory (embedded store, keys, lock)."
    )
    dsn: str | None = Field(
        None,
        description="ClickHouse DSN: chdb:///abs/dir or http(s)://user:pass@host:8123. "
        "Default: the embedded store in <data>/clickhouse.",
    )
    database: str = Field("kept", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    clickhouse_cluster: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$",
        description="A cluster of the servers' <remote_servers>: the schema is spread over "
        "it (local tables per shard, Distributed tables under kept's table names). Unset: "
        "one server, ClickHouse Cloud or the embedded store.",
    )
    clickhouse_replicated: bool = Field(
        True,
        description="With a cluster: Replicated*MergeTree engines and ON CLUSTER DDL (both "
        "need ClickHouse Keeper). false: shards without replicas or Keeper, whose DDL runs "
        "node by node (run `kept migrate` with the KEPT_DSN of every node).",
    )
    dedup_window_ids: int = Field(
        500_000,
        ge=0,
        description="Recently stored event ids kept in memory to skip retries and replays "
        "(~90 bytes each).",
    )
    log_level: str = "info"

    @model_validator(mode="after")
    def _cluster_needs_a_server(self) -> StoreSettings:
        if self.clickhouse_cluster and (not self.dsn or self.dsn.startswith("chdb:")):
            raise ValueError("KEPT_CLICKHOUSE_CLUSTER needs KEPT_DSN: a server of the cluster")
        return self

    def cluster(self) -> Cluster | None:
        if self.clickhouse_cluster is None:
            return None
        return Cluster(self.clickhouse_cluster, self.clickhouse_replicated)

    def store_dsn(self, data_dir: DataDir) -> str:
        """The configured DSN, or the embedded store inside the data directory."""
        return self.dsn or chdb_dsn(data_dir.store_dir)

    def open_store(self, data_dir: DataDir) -> Store:
        """A Store on the configured database (the caller owns `data_dir` when embedded)."""
        return Store(self.store_dsn(data_dir), self.database, self.cluster())


def with_overrides(base: Settings, **overrides: object) -> Settings:
    """`base` with command-line values (those not None) on top, validated again."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return type(base).model_validate(base.model_dump() | given) if given else base
