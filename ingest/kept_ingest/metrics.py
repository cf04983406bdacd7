"""Prometheus metrics of the intake, on a registry per app (tests run several apps), and
where the processes without an HTTP API of their own serve them."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kept_wire.contract import SPOOL_BYTES_HEADER

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE_BUCKETS = (1, 10, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000)
SPOOL_REPORT_WINDOW_S = 60
"""How long a client's spool report counts in `kept_client_spool_bytes`."""


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
        self.otlp_records = Counter(
            "kept_otlp_records",
            "OTLP spans and log records by signal (traces, logs) and outcome: stored (as an "
            "event), ignored (no GenAI model call or kept event) or rejected",
            ["signal", "outcome"],
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
        self.client_spools = ClientSpoolReports(r)


class ClientSpoolReports:
    """`kept_client_spool_bytes{project}`: the largest spool backlog that a client of the
    project reported in the last SPOOL_REPORT_WINDOW_S seconds (the SDK's HTTP transport
    sends its backlog with each batch while its spool holds events).

    A gauge of the latest report would flap between clients; the largest recent one shows
    the worst client and drops to nothing once every client has drained (they stop
    reporting). Per project, never per client, so the series stay as few as the projects.
    Memory: at most one (second, largest) pair per second of the window and project.
    """

    def __init__(
        self, registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._reports: dict[str, deque[list[int]]] = {}
        registry.register(self)

    def report(self, project: str, spool_bytes: int) -> None:
        """A client of `project` has `spool_bytes` bytes of events waiting on its disk."""
        second = int(self._clock())
        with self._lock:
            seconds = self._reports.setdefault(project, deque())
            if seconds and seconds[-1][0] == second:
                seconds[-1][1] = max(seconds[-1][1], spool_bytes)
            else:
                seconds.append([second, spool_bytes])
            self._expire(project, second)

    def largest(self) -> dict[str, int]:
        """The largest report of each project that reported within the window."""
        now = int(self._clock())
        with self._lock:
            for project in list(self._reports):
                self._expire(project, now)
            return {p: max(b for _, b in seconds) for p, seconds in self._reports.items()}

    def _expire(self, project: str, now: int) -> None:
        seconds = self._reports[project]
        while seconds and seconds[0][0] <= now - SPOOL_REPORT_WINDOW_S:
            seconds.popleft()
        if not seconds:
            del self._reports[project]

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for project, spool_bytes in sorted(self.largest().items()):
            family.add_metric([project], spool_bytes)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "kept_client_spool_bytes",
            "Largest spool backlog (bytes on disk) a client of the project reported in the "
            f"last {SPOOL_REPORT_WINDOW_S} s (request header {SPOOL_BYTES_HEADER})",
            labels=["project"],
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
