"""ClickHouse storage: the Store, its errors and the schema migrations."""

from kept_storage.clickhouse import Store, chdb_dsn, utc
from kept_storage.errors import StorageError, StorageLocked, StorageUnavailable
from kept_storage.migrate import migrate

__all__ = [
    "StorageError",
    "StorageLocked",
    "StorageUnavailable",
    "Store",
    "chdb_dsn",
    "migrate",
    "utc",
]
