"""Prometheus metrics of the intake, on a registry per app (tests run several apps), and
where the processes without an HTTP API of their own serve them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE_BUCKETS = (1, 10, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000)


class MetricsSettings(BaseSettings):
    """Where `kept consume` and `kept analytics run --every` serve /metrics."""

    model_config = SettingsConfigDict(env_prefix="KEPT_", extra="ignore")

    metrics_host: str = Field("127.0.0.1", description="Address of the /metrics server.")
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="Port of the /metrics server (0: none)."
    )


class IngestMetrics:
    """The intake's counters and histograms, all prefixed `kept_`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_accepted = Counter(
            "kept_events_accepted", "Events stored, by type", ["type"], registry=r
        )
        self.events_rejected = Counter(
            "kept_events_rejected",
            "Events refused, by type (unknown when unreadable) and reason",
            ["type", "reason"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "kept_events_duplicate", "Events skipped because their event_id was stored", registry=r
        )
        self.requests = Counter(
            "kept_http_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "kept_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "kept_insert_batch_rows", "Rows per insert batch", buckets=_SIZE_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "kept_insert_batch_requests",
            "Requests grouped into one insert batch",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.insert_latency = Histogram(
            "kept_insert_duration_seconds",
            "Time to make one batch durable (dedup lookup and inserts)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.insert_batches = Counter(
            "kept_insert_batches", "Insert batches by outcome", ["outcome"], registry=r
        )
        self.pending_rows = Gauge(
            "kept_writer_pending_rows", "Rows waiting to be inserted", registry=r
        )


class ConsumerMetrics:
    """The Kafka consumer's metrics, `kept_consumer_*`, on the registry it is given."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter("kept_consumer_messages", "Messages consumed", registry=r)
        self.inserted = Counter(
            "kept_consumer_events_inserted",
            "Events the consumer stored (repeats of stored event ids not counted)",
            registry=r,
        )
        self.dead_lettered = Counter(
            "kept_consumer_dead_lettered",
            "Messages sent to the dead-letter topic, by reason",
            ["reason"],
            registry=r,
        )
        self.lag = Gauge(
            "kept_consumer_lag",
            "Messages in the partition not consumed yet (high watermark - position)",
            ["topic", "partition"],
            registry=r,
        )
        self.batch_events = Histogram(
            "kept_consumer_batch_messages",
            "Messages per consumer batch",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.insert_latency = Histogram(
            "kept_consumer_insert_duration_seconds",
            "Time to store one batch, retries included",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.insert_failures = Counter(
            "kept_consumer_insert_failures",
            "Failed insert attempts (each is retried; offsets wait)",
            registry=r,
        )
        self.commits = Counter(
            "kept_consumer_commits", "Offset commits by outcome", ["outcome"], registry=r
        )
        self.paused = Gauge(
            "kept_consumer_paused", "1 while consumption is paused for a slow store", registry=r
        )
