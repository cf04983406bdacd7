"""Prometheus metrics of the intake, on a registry per app (tests run several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE_BUCKETS = (1, 10, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000)


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
