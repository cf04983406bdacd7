"""Runs the outcomes job every few seconds inside `kept serve`, and on demand."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kept_analytics.outcomes import OutcomesJob, RunResult

log = logging.getLogger("kept.analytics")


class AnalyticsMetrics:
    """How the analytics job is doing, on the server's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "kept_analytics_runs", "Outcomes job runs by outcome", ["outcome"], registry=registry
        )
        self.seconds = Histogram(
            "kept_analytics_run_seconds",
            "Duration of one outcomes job run",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.generations = Counter(
            "kept_analytics_generations", "Generation outcomes recomputed", registry=registry
        )
        self.lag = Gauge(
            "kept_analytics_lag_seconds",
            "Age of the newest event the outcomes already include",
            registry=registry,
        )


class AnalyticsScheduler:
    """One thread that runs the job every `interval_s`; runs never overlap."""

    def __init__(self, job: OutcomesJob, interval_s: float, metrics: AnalyticsMetrics) -> None:
        self._job = job
        self._interval_s = interval_s
        self._metrics = metrics
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kept-analytics", daemon=True)

    def start(self) -> None:
        if self._interval_s > 0:
            self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_now(self, full: bool = False) -> RunResult:
        """Run the job now, including every event stored before the call: waits out the
        job's lag (inserts in flight) and any scheduled run in progress."""
        time.sleep(self._job.lag_s)
        return self._run(full)

    def _run(self, full: bool = False) -> RunResult:
        with self._lock:
            started = time.perf_counter()
            try:
                result = self._job.run(full=full)
            except Exception:
                self._metrics.runs.labels("error").inc()
                raise
            self._metrics.runs.labels("ok").inc()
            self._metrics.seconds.observe(time.perf_counter() - started)
            self._metrics.generations.inc(result.generations)
            lag = datetime.now(timezone.utc) - result.until
            self._metrics.lag.set(max(0.0, lag.total_seconds()))
            return result

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._run()
            except Exception as exc:  # keep scheduling: the next run repairs this one
                log.error("outcomes job failed: %s", exc)
