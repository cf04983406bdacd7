"""Storage errors that callers can act on, independent of the driver's exception types."""


class StorageError(Exception):
    """A ClickHouse operation failed."""


class StorageUnavailable(StorageError):
    """ClickHouse cannot be reached now; retrying later may succeed."""


class StorageLocked(StorageUnavailable):
    """The embedded store's directory is owned by another process."""
