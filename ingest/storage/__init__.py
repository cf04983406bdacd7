"""ClickHouse storage: the Store, its errors and the schema migrations."""

from kept.ingest.storage.clickhouse import Store, chdb_dsn
from kept.ingest.storage.errors import StorageError, StorageLocked, StorageUnavailable
from kept.ingest.storage.migrate import migrate

__all__ = ["StorageError", "StorageLocked", "StorageUnavailable", "Store", "chdb_dsn", "migrate"]
