"""What the routes share: the long-lived parts of a running server, opened and closed
together (this module), the settings they are made from (`settings`) and what the store
holds (`status`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kept_analytics.outcomes import OutcomesJob
from kept_analytics.scheduler import AnalyticsMetrics, AnalyticsScheduler
from kept_ingest.consumer.service import ConsumerThread
from kept_ingest.keys import KeyRing, count_keys, create_key
from kept_ingest.metrics import IngestMetrics
from kept_ingest.sink import EventSink, KafkaSink
from kept_ingest.writer import BatchWriter
from kept_service.runtime.exports import ExportWorkers
from kept_service.runtime.settings import ServerSettings
from kept_service.runtime.status import InsertHealth
from kept_storage import Store, migrate
from kept_storage.datadir import DataDir

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
    feedback_secret: bytes
    """Signs and verifies feedback tokens (see feedback_tokens.py)."""
    demo_key: str | None
    """Set when this start created the `demo` project's key."""
    analytics: AnalyticsScheduler
    kafka_sink: KafkaSink | None = None
    """Set with KEPT_KAFKA: the intake produces to Kafka instead of writing to the store."""
    consumer: ConsumerThread | None = None
    """Set with KEPT_KAFKA: consumes the event topic into the store."""
    exports: ExportWorkers = field(init=False)
    """Runs exports, as many at once as the settings allow."""
    inserts: InsertHealth = field(init=False)
    """Whether the latest inserts into the store succeeded (for /readyz)."""

    def __post_init__(self) -> None:
        self.exports = ExportWorkers(self.settings.export_max_concurrent)
        self.inserts = InsertHealth(self.metrics.registry)

    @property
    def sink(self) -> EventSink:
        """Where the intake puts accepted events."""
        return self.kafka_sink if self.kafka_sink is not None else self.writer


def open_runtime(settings: ServerSettings, data_dir: DataDir) -> Runtime:
    """Own the data directory, open and migrate the store, start the writer."""
    if not data_dir.owned:
        data_dir.acquire()
    try:
        store = settings.open_store(data_dir)
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
            analytics = AnalyticsScheduler(
                OutcomesJob(store, settings.accept_actions, lag_s=settings.analytics_lag_s),
                settings.analytics_interval_s,
                AnalyticsMetrics(metrics.registry),
            )
            analytics.start()
            kafka_sink, consumer = start_kafka(settings, store, metrics)
            return Runtime(
                settings=settings,
                data_dir=data_dir,
                store=store,
                keys=KeyRing(store, settings.keys_reload_s),
                writer=writer,
                metrics=metrics,
                admin_token=settings.admin_token or data_dir.admin_token(),
                feedback_secret=_feedback_secret(settings, data_dir),
                demo_key=demo_key,
                analytics=analytics,
                kafka_sink=kafka_sink,
                consumer=consumer,
            )
        except BaseException:
            store.close()
            raise
    except BaseException:
        data_dir.release()
        raise


def _feedback_secret(settings: ServerSettings, data_dir: DataDir) -> bytes:
    shared_store = settings.kafka or (settings.dsn or "").startswith(("http://", "https://"))
    if settings.feedback_secret is None and shared_store:
        # Each replica would make its own secret, and a token minted by one would be
        # refused by the others behind the same address.
        log.warning(
            "KEPT_FEEDBACK_SECRET is not set: feedback tokens verify only on this replica; "
            "set the same secret on every kept serve that shares this store"
        )
    return settings.feedback_key(data_dir)


def close_runtime(runtime: Runtime) -> None:
    """Insert what is queued, close the store, give up the data directory."""
    try:
        stop_kafka(runtime)
        runtime.keys.close()
        runtime.analytics.stop()
        runtime.writer.stop()
    finally:
        runtime.store.close()
        runtime.data_dir.release()


def start_kafka(
    settings: ServerSettings, store: Store, metrics: IngestMetrics
) -> tuple[KafkaSink | None, ConsumerThread | None]:
    """With KEPT_KAFKA: the intake's Kafka sink, and the consumer thread (started)."""
    if not settings.kafka:
        return None, None
    consumer = ConsumerThread(settings, store, metrics, settings.dedup_window_ids)
    consumer.start()
    log.info("intake goes through Kafka topic %s at %s", settings.kafka_topic, settings.kafka)
    return KafkaSink(settings), consumer


def stop_kafka(runtime: Runtime) -> None:
    """Stop taking Kafka intake, then store and commit what the consumer holds."""
    if runtime.kafka_sink is not None:
        runtime.kafka_sink.close()
    if runtime.consumer is not None:
        runtime.consumer.stop()
