"""Runs the analytics jobs every few seconds in whichever process holds the lease.

Any number of runners may run against one store (`kept analytics run --every`, every
`kept serve` on a shared server): one thread per runner keeps trying to hold the lease
and renews it while held; another runs the outcomes job every `interval_s` while this
runner holds it, fenced by the term it holds (see lease.py).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kept_analytics.alerts.job import AlertJob
from kept_analytics.lease import Fence, Lease
from kept_analytics.outcomes import EPOCH, Deposed, OutcomesJob, RunResult
from kept_storage import StorageError

log = logging.getLogger("kept.analytics")

POLL_S = 0.25
"""How often a caller waiting for another holder's run looks at the watermark."""


class AnalyticsBusy(Exception):
    """Another process holds the analytics lease (and what was asked needs it)."""


class AnalyticsMetrics:
    """How the analytics runner is doing, on the process's registry."""

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
        self.held = Gauge(
            "kept_analytics_lease_held",
            "1 while this process holds the analytics lease (runs the jobs)",
            registry=registry,
        )
        self.alert_rounds = Counter(
            "kept_alert_rounds", "Alert evaluation rounds by outcome", ["outcome"],
            registry=registry,
        )  # fmt: skip
        self.alerts_firing = Gauge(
            "kept_alerts_firing", "Alerts firing after the last round", registry=registry
        )


class AnalyticsRunner:
    """Holds the lease when it can and runs the job every `interval_s` while it does
    (`start`); `run_now` runs it on demand. Runs never overlap within a process."""

    def __init__(
        self,
        job: OutcomesJob,
        lease: Lease,
        interval_s: float,
        metrics: AnalyticsMetrics,
        alerts: AlertJob | None = None,
    ) -> None:
        self._job = job
        self._alerts = alerts
        self._lease = lease
        self._interval_s = interval_s
        self._metrics = metrics
        self._run_lock = threading.Lock()
        self._lease_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._hold, name="kept-analytics-lease", daemon=True),
            threading.Thread(target=self._loop, name="kept-analytics", daemon=True),
        ]

    @property
    def lease(self) -> Lease:
        return self._lease

    @property
    def job(self) -> OutcomesJob:
        return self._job

    def start(self) -> None:
        if self._interval_s > 0:
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop running, wait for a run in progress, and hand the lease over."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        with self._run_lock, self._lease_lock:
            try:
                self._lease.release()
            except StorageError as exc:  # it expires by itself
                log.warning("could not release the analytics lease: %s", exc)
        self._metrics.held.set(0)
        if self._alerts is not None:
            self._alerts.close()

    def run_now(self, full: bool = False, wait_s: float = 60.0) -> RunResult | None:
        """Run the job now, including every event stored before the call.

        When another process holds the lease, wait (up to `wait_s`) for its next run to
        include them and return None; AnalyticsBusy when it does not in time, or when a
        full rebuild is asked (only the holder may truncate).
        """
        asked_at = datetime.now(timezone.utc)
        time.sleep(self._job.lag_s)  # inserts in flight
        with self._run_lock:
            fence = self._acquire()
            if fence is not None:
                try:
                    return self._run(fence, full)
                finally:
                    if self._interval_s <= 0 or self._stop.is_set():
                        with self._lease_lock:
                            self._lease.release()
        state = self._lease.state()
        holder = state.holder_name if state is not None else "another process"
        if full:
            raise AnalyticsBusy(
                f"the analytics runner {holder} holds the lease: stop it (or every runner) "
                "to rebuild, or wait for it to take the change into account"
            )
        deadline = time.monotonic() + wait_s
        while self._job.watermark() < asked_at:
            if time.monotonic() > deadline:
                raise AnalyticsBusy(
                    f"the analytics runner {holder} holds the lease and has not folded "
                    f"the events stored before {asked_at.isoformat()} within {wait_s:.0f}s"
                )
            time.sleep(POLL_S)
        return None

    def _acquire(self) -> Fence | None:
        with self._lease_lock:
            if self._lease.acquire() is None:
                self._metrics.held.set(0)
                return None
            self._metrics.held.set(1)
            return self._lease.fence()

    def _run(self, fence: Fence, full: bool = False) -> RunResult:
        started = time.perf_counter()
        try:
            result = self._job.run(fence, full=full)
        except Deposed:
            self._metrics.runs.labels("deposed").inc()
            raise
        except Exception:
            self._metrics.runs.labels("error").inc()
            raise
        self._metrics.runs.labels("ok").inc()
        self._metrics.seconds.observe(time.perf_counter() - started)
        self._metrics.generations.inc(result.generations)
        lag = datetime.now(timezone.utc) - result.until
        self._metrics.lag.set(max(0.0, lag.total_seconds()))
        if self._alerts is not None and not full:
            self._evaluate_alerts(fence)
        return result

    def _evaluate_alerts(self, fence: Fence) -> None:
        """The alert rules, on the outcomes just folded; a failure is logged and counted
        (the next round evaluates again), never the outcomes run's."""
        assert self._alerts is not None
        try:
            done = self._alerts.run(fence)
        except Deposed:
            self._metrics.alert_rounds.labels("deposed").inc()
            raise
        except Exception as exc:
            self._metrics.alert_rounds.labels("error").inc()
            log.error("alert evaluation failed: %s", exc)
            return
        self._metrics.alert_rounds.labels("ok").inc()
        self._metrics.alerts_firing.set(done.firing)

    def _hold(self) -> None:
        """Acquire the lease when free, renew it while held: every quarter lease."""
        while True:
            try:
                with self._lease_lock:
                    held = self._lease.renew() or self._lease.acquire() is not None
                self._metrics.held.set(1 if held else 0)
            except StorageError as exc:  # the store is down: the lease may lapse
                log.warning("analytics lease: %s", exc)
            if self._stop.wait(self._lease.lease_s / 4):
                return

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            fence = self._lease.fence()
            if fence is None:
                continue
            with self._run_lock:
                try:
                    self._run(fence)
                except Deposed as exc:
                    log.warning("outcomes run stopped: %s", exc)
                except Exception as exc:  # keep scheduling: the next run repairs this one
                    log.error("outcomes job failed: %s", exc)


def run_once(job: OutcomesJob, lease: Lease, full: bool = False) -> RunResult:
    """Run the job once in this process under the lease, then hand the lease back;
    AnalyticsBusy when another process holds it."""
    if lease.acquire() is None:
        raise AnalyticsBusy("another process holds the analytics lease")
    fence = lease.fence()
    assert fence is not None
    try:
        return job.run(fence, full=full)
    finally:
        lease.release()


def analytics_status(lease: Lease, job: OutcomesJob) -> dict[str, Any]:
    """Who holds the analytics lease and how far the outcomes have folded (JSON-ready)."""
    state = lease.state()
    watermark = job.watermark()
    now = state.now if state is not None else datetime.now(timezone.utc)
    live = state is not None and not state.expired
    return {
        "holder": state.holder_name if state is not None and live else None,
        "term": state.term if state is not None else None,
        "renewed_s_ago": round(state.age_s, 3) if state is not None else None,
        "lease_s": state.lease_s if state is not None else lease.lease_s,
        "expired": not live,
        "watermark": None if watermark <= EPOCH else watermark.isoformat(),
        "lag_s": None if watermark <= EPOCH else round((now - watermark).total_seconds(), 3),
    }
