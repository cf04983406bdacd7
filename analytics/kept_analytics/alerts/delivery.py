"""Sends alert notifications to their receivers without ever holding up the evaluator.

Each receiver has its own bounded queue and worker thread, so a slow, failing or hanging
receiver delays only itself: `dispatch` appends and returns. A worker posts one
notification at a time, in order, retrying on connection errors, timeouts, 408, 425, 429
and 5xx with exponential backoff and jitter (kept_wire's curve) until it is delivered or
`give_up_after_s` has passed; any other answer is final. A full queue drops its oldest
notification.

Guarantee: at-least-once across restarts, deduplicated in-process. A dispatcher skips a
transition (alert fingerprint, episode `started_at`, state) that one receiver has been
sent or still has queued, so a transition emitted twice is sent once; one that failed
(gave up, refused, dropped) is tried again if emitted again, and after a restart the
evaluator may emit a transition again and it is sent again. Webhook receivers can dedupe on
`X-Kept-Notification-Id`; PagerDuty dedupes on `dedup_key` itself. Every notification
ends as one count of `kept_alert_notifications_total{receiver,outcome}`.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kept_analytics.alerts.notification import Notification
from kept_analytics.alerts.receivers import OutboundRequest, ReceiverConfig
from kept_wire.backoff import BACKOFF_BASE, BACKOFF_CAP, backoff_delay

log = logging.getLogger("kept.alerts")

DELIVERED = "delivered"
DUPLICATE = "duplicate"
REJECTED = "rejected"  # an answer that retrying cannot change (4xx), or a broken request
GAVE_UP = "gave_up"
DROPPED_FULL = "dropped_full"
DROPPED_CLOSED = "dropped_closed"
UNKNOWN_RECEIVER = "unknown_receiver"
RETRYABLE_STATUS = frozenset({408, 425, 429})
ANSWER_READ_MAX = 64 * 1024
"""Bytes of a receiver's answer read (and thrown away): the status is what counts."""
_USER_AGENT = "kept-alerts"


class DeliveryPolicy(BaseSettings):
    """How hard delivery tries (`KEPT_ALERT_*`)."""

    model_config = SettingsConfigDict(env_prefix="KEPT_ALERT_", extra="ignore")

    queue_size: int = Field(1000, ge=1, description="Notifications waiting per receiver.")
    give_up_after_s: float = Field(
        600.0, gt=0, description="Stop retrying a notification this long after its first try."
    )
    backoff_base_s: float = Field(BACKOFF_BASE, gt=0)
    backoff_cap_s: float = Field(BACKOFF_CAP, gt=0)
    dedupe_window: int = Field(
        100_000, ge=1, description="Transitions remembered per receiver for dedupe."
    )


class DeliveryMetrics:
    """Delivery counters on the process's registry (create once per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "kept_alert_notifications",
            "Alert notifications by receiver and final outcome",
            ["receiver", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "kept_alert_notification_retries",
            "Failed delivery attempts that were retried",
            ["receiver"],
            registry=registry,
        )
        self.queued = Gauge(
            "kept_alert_notifications_queued",
            "Notifications waiting for their receiver",
            ["receiver"],
            registry=registry,
        )


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    retry_after: float | None
    detail: str

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUS or self.status >= 500


def _post(request: OutboundRequest, timeout: float, retry_after_cap: float) -> _Answer:
    # http.client rather than urllib: no redirects (urllib would turn a redirected POST
    # into a GET and call it delivered), no proxy surprises, one connection per attempt.
    parts = urlsplit(request.url)
    connection = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = connection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("POST", path, request.body, {**request.headers, "User-Agent": _USER_AGENT})
        response = conn.getresponse()
        response.read(ANSWER_READ_MAX)
        retry_after = _seconds(response.getheader("Retry-After"), retry_after_cap)
        return _Answer(response.status, retry_after, f"HTTP {response.status}")
    except (OSError, http.client.HTTPException) as exc:
        return _Answer(None, None, type(exc).__name__)
    finally:
        conn.close()


def _seconds(value: str | None, cap: float) -> float | None:
    """A delta-seconds `Retry-After` (what Slack and PagerDuty send), clamped to `cap`."""
    try:
        seconds = float(value or "")
    except ValueError:
        return None
    return min(max(seconds, 0.0), cap) if seconds == seconds else None


class _Worker:
    """One receiver's queue, dedupe memory and thread."""

    def __init__(
        self,
        receiver: ReceiverConfig,
        metrics: DeliveryMetrics,
        policy: DeliveryPolicy,
        abort: threading.Event,
    ) -> None:
        self.receiver = receiver
        self._policy = policy
        self._abort = abort
        self._outcomes = metrics.notifications
        self._retries = metrics.retries.labels(receiver.name)
        self._queued = metrics.queued.labels(receiver.name)
        self._queue: deque[Notification] = deque()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._cond = threading.Condition()
        self._closing = False
        self.thread = threading.Thread(
            target=self._run, name=f"kept-alerts-{receiver.name}", daemon=True
        )
        self.thread.start()

    def offer(self, notification: Notification) -> None:
        with self._cond:
            if self._closing:
                self._count(DROPPED_CLOSED)
                return
            key = notification.transition_id
            if key in self._seen:
                self._count(DUPLICATE)
                return
            self._seen[key] = None
            if len(self._seen) > self._policy.dedupe_window:
                self._seen.popitem(last=False)
            if len(self._queue) >= self._policy.queue_size:
                self._finish(self._queue.popleft(), DROPPED_FULL)
            self._queue.append(notification)
            self._queued.set(len(self._queue))
            self._cond.notify()

    def _count(self, outcome: str) -> None:
        self._outcomes.labels(self.receiver.name, outcome).inc()

    def stop_accepting(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()

    def drop_queued(self) -> None:
        with self._cond:
            while self._queue:
                self._finish(self._queue.popleft(), DROPPED_CLOSED)
            self._queued.set(0)

    def _finish(self, notification: Notification, outcome: str) -> None:
        # Only a delivered (or still queued) transition is a duplicate: one that failed
        # may be tried again if the evaluator emits it again. Caller holds the lock.
        if outcome != DELIVERED:
            self._seen.pop(notification.transition_id, None)
        self._count(outcome)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._abort.is_set():
                    return
                notification = self._queue.popleft()
                self._queued.set(len(self._queue))
            outcome = self._deliver(notification)
            with self._cond:
                self._finish(notification, outcome)

    def _deliver(self, notification: Notification) -> str:
        name = self.receiver.name
        policy = self._policy
        deadline = time.monotonic() + policy.give_up_after_s
        attempt = 0
        while True:
            attempt += 1
            try:
                request = self.receiver.request(notification, time.time())
            except Exception:
                log.exception("alert receiver %s: cannot build the request", name)
                return REJECTED
            answer = _post(request, self.receiver.timeout_s, policy.backoff_cap_s)
            if answer.status is not None and 200 <= answer.status < 300:
                return DELIVERED
            if not answer.retryable:
                log.warning(
                    "alert receiver %s refused %s: %s", name, notification.rule, answer.detail
                )
                return REJECTED
            delay = max(
                backoff_delay(attempt, policy.backoff_base_s, policy.backoff_cap_s),
                answer.retry_after or 0.0,
            )
            if time.monotonic() + delay > deadline:
                log.warning(
                    "alert receiver %s: gave up on %s after %d attempts (last: %s)",
                    name,
                    notification.rule,
                    attempt,
                    answer.detail,
                )
                return GAVE_UP
            self._retries.inc()
            if self._abort.wait(delay):
                return DROPPED_CLOSED


class Dispatcher:
    """Delivers notifications to the receivers they name (all when they name none)."""

    def __init__(
        self,
        receivers: Sequence[ReceiverConfig],
        metrics: DeliveryMetrics,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        names = [r.name for r in receivers]
        if len(set(names)) != len(names):
            raise ValueError("receiver names must be unique")
        self._metrics = metrics
        self._abort = threading.Event()
        self._closed = False
        policy = policy or DeliveryPolicy()
        self._workers = {r.name: _Worker(r, metrics, policy, self._abort) for r in receivers}

    def dispatch(self, notification: Notification) -> None:
        """Queue `notification` for its receivers and return at once; never raises for a
        receiver's sake."""
        for name in notification.receivers or tuple(self._workers):
            worker = self._workers.get(name)
            try:
                if worker is None:
                    log.warning("alert %s names no receiver called %s", notification.rule, name)
                    self._metrics.notifications.labels(name, UNKNOWN_RECEIVER).inc()
                else:
                    worker.offer(notification)
            except Exception:  # the evaluator's round must go on whatever happens here
                log.exception("alert receiver %s: cannot queue %s", name, notification.rule)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued within `timeout` seconds, then drop (and count) the rest.
        An attempt still in flight then ends within its receiver's `timeout_s` (per socket
        operation) and is counted when it does; the worker threads are daemons."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        workers = list(self._workers.values())
        for worker in workers:
            worker.stop_accepting()
        for worker in workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        self._abort.set()  # ends retry waits; what is still queued is dropped below
        for worker in workers:
            worker.drop_queued()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
