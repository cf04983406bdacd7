"""Running the consumer: `kept consume` as a process, or a thread inside `kept serve`."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from prometheus_client import CollectorRegistry, start_http_server

from kept_ingest.consumer.deadletter import TooManyInvalid
from kept_ingest.consumer.insert import InsertStep
from kept_ingest.consumer.kafka_io import KafkaIO
from kept_ingest.consumer.pipeline import Pipeline
from kept_ingest.consumer.settings import ConsumerSettings
from kept_ingest.gc_tuning import tune_gc
from kept_ingest.kafka_settings import KafkaSettings
from kept_ingest.metrics import ConsumerMetrics, IngestMetrics
from kept_storage import Store
from kept_storage.datadir import DataDir
from kept_wire.kafka import UnsupportedKafka, version_text

log = logging.getLogger("kept.consumer")

CONNECT_RETRY_CAP = 30.0


class ConsumerStopped(Exception):
    """The consumer stopped on its own (too many invalid messages); the message says why."""


def consume(
    settings: KafkaSettings,
    insert: InsertStep,
    metrics: ConsumerMetrics,
    stop: threading.Event,
) -> None:
    """Connect to Kafka (retrying while it is unreachable) and consume until `stop`.

    Raises ConsumerStopped when the brokers are older than kept supports, or when the
    invalid share passes its limit.
    """
    insert.prepare()
    delay = 1.0
    while not stop.is_set():
        try:
            io = KafkaIO(settings, max_poll_records=settings.kafka_batch_max_events)
        except UnsupportedKafka as exc:  # retrying will not make the brokers newer
            raise ConsumerStopped(f"cannot consume {settings.kafka_topic}: {exc}") from None
        except Exception as exc:
            log.warning("cannot reach Kafka at %s (%s); retrying", settings.kafka, exc)
            stop.wait(delay)
            delay = min(delay * 2, CONNECT_RETRY_CAP)
            continue
        log.info(
            "consuming %s as group %s (Kafka %s)",
            settings.kafka_topic,
            settings.kafka_group,
            version_text(io.version),
        )
        try:
            Pipeline(io, insert, settings, metrics, stop).run()
        except TooManyInvalid as exc:
            raise ConsumerStopped(
                f"stopped consuming {settings.kafka_topic}: {exc}. They are in the dead-letter "
                f"topic {settings.kafka_dlq_topic}; fix their producer, or raise "
                "KEPT_KAFKA_INVALID_MAX_SHARE."
            ) from None
        finally:
            io.close()
        return


def run_consume(settings: ConsumerSettings) -> None:
    """`kept consume`: run until SIGTERM/SIGINT, storing and committing the last batch."""
    if not settings.kafka:
        raise ConsumerStopped("KEPT_KAFKA is not set (bootstrap servers, host:9092,...)")
    stop = threading.Event()
    restore = _on_signals(stop)
    data_dir = DataDir(settings.data)
    if settings.dsn is None:  # the embedded store: own its directory, as kept serve does
        data_dir.acquire()
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    insert = InsertStep(
        lambda: settings.open_store(data_dir), IngestMetrics(registry), settings.dedup_window_ids
    )
    server = None
    tune_gc()
    try:
        if settings.metrics_port:
            server, _ = start_http_server(
                settings.metrics_port, settings.metrics_host, registry=registry
            )
            log.info(
                "metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port
            )
        consume(settings, insert, metrics, stop)
    finally:
        if server is not None:
            server.shutdown()
        insert.close()
        if data_dir.owned:
            data_dir.release()
        restore()
    log.info("stopped")


def _on_signals(stop: threading.Event) -> Callable[[], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s: finishing the batch in flight", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


class ConsumerThread:
    """The consumer inside `kept serve`, on the server's store and metrics registry."""

    def __init__(
        self, settings: KafkaSettings, store: Store, ingest_metrics: IngestMetrics, recent_ids: int
    ) -> None:
        self.metrics = ConsumerMetrics(ingest_metrics.registry)
        self._settings = settings
        self._insert = InsertStep(lambda: store, ingest_metrics, recent_ids, owned=False)
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="kept-consumer", daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Store and commit the batch in flight, then leave the group."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        started = time.monotonic()
        try:
            consume(self._settings, self._insert, self.metrics, self._stop)
        except ConsumerStopped as exc:
            self.error = str(exc)
            log.error("%s", exc)
        except Exception as exc:  # the server keeps serving; readiness reports it
            self.error = f"the consumer failed after {time.monotonic() - started:.0f} s: {exc}"
            log.exception("the Kafka consumer failed")
