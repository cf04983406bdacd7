"""The long-lived parts of a running server, opened and closed together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kept.ingest.datadir import DataDir
from kept.ingest.keys import KeyRing, count_keys, create_key
from kept.ingest.metrics import IngestMetrics
from kept.ingest.settings import ServerSettings
from kept.ingest.storage import Store, migrate
from kept.ingest.writer import BatchWriter

log = logging.getLogger("kept.server")


@dataclass
class Runtime:
    settings: ServerSettings
    data_dir: DataDir
    store: Store
    keys: KeyRing
    writer: BatchWriter
    metrics: IngestMetrics
    admin_token: str
    demo_key: str | None
    """Set when this start created the `demo` project's key."""


def open_runtime(settings: ServerSettings, data_dir: DataDir) -> Runtime:
    """Own the data directory, open and migrate the store, start the writer."""
    if not data_dir.owned:
        data_dir.acquire()
    try:
        store = Store(settings.store_dir_dsn(data_dir), settings.database)
        try:
            for migration in migrate(store):
                log.info("applied migration %04d_%s", migration.version, migration.name)
            demo_key = None
            if settings.create_demo_key and count_keys(store) == 0:
                demo_key = create_key(store, "demo")
                data_dir.save_demo_key(demo_key)
            metrics = IngestMetrics()
            writer = BatchWriter(
                store,
                metrics,
                max_batch_rows=settings.batch_max_rows,
                max_pending_rows=settings.pending_max_rows,
                linger_s=settings.batch_linger_ms / 1000,
                recent_ids=settings.dedup_window_ids,
            )
            writer.start()
            return Runtime(
                settings=settings,
                data_dir=data_dir,
                store=store,
                keys=KeyRing(store),
                writer=writer,
                metrics=metrics,
                admin_token=settings.admin_token or data_dir.admin_token(),
                demo_key=demo_key,
            )
        except BaseException:
            store.close()
            raise
    except BaseException:
        data_dir.release()
        raise


def close_runtime(runtime: Runtime) -> None:
    """Insert what is queued, close the store, give up the data directory."""
    try:
        runtime.writer.stop()
    finally:
        runtime.store.close()
        runtime.data_dir.release()
