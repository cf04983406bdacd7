"""What the routes share: the long-lived parts of a running server, opened and closed
together (this module), the settings they are made from (`settings`) and what the store
holds (`status`)."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from kept_analytics.alerts.delivery import DeliveryMetrics, Dispatcher
from kept_analytics.alerts.job import AlertJob
from kept_analytics.alerts.rules import load_rules
from kept_analytics.lease import Lease
from kept_analytics.outcomes import OutcomesJob
from kept_analytics.runner import AnalyticsMetrics, AnalyticsRunner
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
    analytics: AnalyticsRunner
    """Runs the outcomes job while this process holds the analytics lease."""
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
    with ExitStack() as undo:  # what is started is stopped again if a later step fails
        undo.callback(data_dir.release)
        store = settings.open_store(data_dir)
        undo.callback(store.close)
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
        undo.callback(writer.stop)
        analytics = analytics_runner(settings, store, metrics.registry)
        analytics.start()
        undo.callback(analytics.stop)
        kafka_sink, consumer = start_kafka(settings, store, metrics, undo)
        runtime = Runtime(
            settings=settings,
            data_dir=data_dir,
            store=store,
            keys=KeyRing(store, settings.keys_reload_s),
            writer=writer,
            metrics=metrics,
            admin_token=settings.admin_key(data_dir),
            feedback_secret=_feedback_secret(settings, data_dir),
            demo_key=demo_key,
            analytics=analytics,
            kafka_sink=kafka_sink,
            consumer=consumer,
        )
        undo.pop_all()
        return runtime
    raise AssertionError("unreachable")  # mypy: ExitStack may swallow exceptions


def analytics_runner(
    settings: ServerSettings, store: Store, registry: CollectorRegistry
) -> AnalyticsRunner:
    """The analytics runner of a process (not started): `kept serve`'s, or the role's."""
    alerts = None
    if settings.alert_rules is not None:
        rules = load_rules(settings.alert_rules)  # RuleError: refuse to start
        dispatcher = Dispatcher(rules.receivers, DeliveryMetrics(registry))
        alerts = AlertJob(store, rules, dispatcher)
    return AnalyticsRunner(
        OutcomesJob(store, settings.accept_actions, lag_s=settings.analytics_lag_s),
        Lease(store, settings.analytics_lease_s),
        settings.analytics_interval_s,
        AnalyticsMetrics(registry),
        alerts,
    )


def _feedback_secret(settings: ServerSettings, data_dir: DataDir) -> bytes:
    # Kafka mode refuses to start without the shared secrets (settings.REPLICA_SECRETS);
    # one server on a ClickHouse server is legitimate, so there they are only advised.
    unshared = settings.unshared_secrets()
    if unshared and (settings.dsn or "").startswith(("http://", "https://")):
        log.warning(
            "%s not set: this server made its own in its data directory, valid on it only; "
            "set the same values on every kept serve that shares this store",
            " and ".join(unshared),
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
    settings: ServerSettings, store: Store, metrics: IngestMetrics, undo: ExitStack
) -> tuple[KafkaSink | None, ConsumerThread | None]:
    """With KEPT_KAFKA: the intake's Kafka sink, and the consumer thread (started; its
    stop registered on `undo`)."""
    if not settings.kafka:
        return None, None
    consumer = ConsumerThread(settings, store, metrics, settings.dedup_window_ids)
    consumer.start()
    undo.callback(consumer.stop)
    log.info("intake goes through Kafka topic %s at %s", settings.kafka_topic, settings.kafka)
    return KafkaSink(settings), consumer


def stop_kafka(runtime: Runtime) -> None:
    """Stop taking Kafka intake, then store and commit what the consumer holds."""
    if runtime.kafka_sink is not None:
        runtime.kafka_sink.close()
    if runtime.consumer is not None:
        runtime.consumer.stop()
