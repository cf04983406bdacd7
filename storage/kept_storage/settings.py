"""The settings of a process that writes to the store: `kept serve` and `kept consume`
both extend StoreSettings (`KEPT_DATA`, `KEPT_DSN`, `KEPT_DATABASE`,
`KEPT_DEDUP_WINDOW_IDS`, `KEPT_LOG_LEVEL`)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kept_storage.clickhouse import Store, chdb_dsn
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
    dedup_window_ids: int = Field(
        500_000,
        ge=0,
        description="Recently stored event ids kept in memory to skip retries and replays "
        "(~90 bytes each).",
    )
    log_level: str = "info"

    def store_dsn(self, data_dir: DataDir) -> str:
        """The configured DSN, or the embedded store inside the data directory."""
        return self.dsn or chdb_dsn(data_dir.store_dir)

    def open_store(self, data_dir: DataDir) -> Store:
        """A Store on the configured database (the caller owns `data_dir` when embedded)."""
        return Store(self.store_dsn(data_dir), self.database)


def with_overrides(base: Settings, **overrides: object) -> Settings:
    """`base` with command-line values (those not None) on top, validated again."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return type(base).model_validate(base.model_dump() | given) if given else base
