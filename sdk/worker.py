"""The background sender: a bounded in-memory queue drained by one daemon thread.

The app's thread only appends to the queue. The worker thread takes batches, encodes
them, hands them to the :class:`~kept.transport.Transport` and applies the retry policy:
exponential backoff with jitter for transient failures, dropping exactly the events the
sink rejects, halving batches that are too large. Every event ends up counted: sent or
dropped with a reason.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .stats import Counter, LogLimiter, Stats
from .transport import Outcome, SendResult, Transport

logger = logging.getLogger("kept")

R = TypeVar("R")

BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0


class Worker(Generic[R]):
    """Queues records of type ``R`` and sends them from a lazily started daemon thread.

    ``encode`` turns one record into the JSON bytes of one event; it runs on the worker
    thread, so the app's thread never pays for encoding.
    """

    def __init__(
        self,
        transport: Transport,
        encode: Callable[[R], bytes],
        stats: Stats,
        limiter: LogLimiter,
        *,
        max_queue_size: int,
        batch_size: int,
        flush_interval: float,
        shutdown_timeout: float,
    ) -> None:
        self._transport = transport
        self._encode = encode
        self._stats = stats
        self._limiter = limiter
        self._max_queue_size = max_queue_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self.shutdown_timeout = shutdown_timeout
        self._init_state()
        _workers.add(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._start_lock = threading.Lock()
        self._wake = threading.Event()  # data is waiting: leave the idle wait
        self._kick = threading.Event()  # flush or close: cut a backoff pause short
        self._queue: deque[R] = deque()
        self._thread: threading.Thread | None = None
        # Guarded by _lock:
        self._enqueued = 0  # records accepted since start (or fork)
        self._done = 0  # records of completely settled batches
        self._inflight = 0  # unsettled records of the batch being delivered
        self._closing = False  # refuse new records; exit once drained
        self._close_started = False
        self._abandoned = False  # close gave up: drop everything, settle nothing more
        self._release = False  # the client is gone: exit once drained
        self._unauthorized_logged = False

    # --- app side -------------------------------------------------------------------

    def put(self, record: R) -> bool:
        """Enqueue ``record`` without blocking; False (and counted) when dropped."""
        waiting = 0
        with self._lock:
            if self._closing:
                dropped: Counter | None = "dropped_closed"
            elif len(self._queue) >= self._max_queue_size:
                dropped = "dropped_queue_full"
            else:
                dropped = None
                self._queue.append(record)
                self._enqueued += 1
                waiting = len(self._queue)
        if dropped is not None:
            self._stats.add(dropped)
            return False
        if self._thread is None:
            self._start()
        if waiting >= self._batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    def flush(self, timeout: float) -> bool:
        """Send everything enqueued so far; True when it all settled within ``timeout``."""
        deadline = time.monotonic() + _seconds(timeout)
        with self._lock:
            target = self._enqueued
            if self._done >= target:
                return True
        self._kick.set()
        self._wake.set()
        with self._settled:
            while self._done < target:
                remaining = deadline - time.monotonic()
                if self._abandoned or remaining <= 0:
                    return False
                self._settled.wait(min(remaining, threading.TIMEOUT_MAX))
        return True

    def close(self, timeout: float) -> None:
        """Flush until ``timeout``, count what is left as ``dropped_shutdown``, stop."""
        timeout = _seconds(timeout)
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._close_started:
                return
            self._close_started = self._closing = True
        _workers.discard(self)
        if not self.flush(timeout):
            with self._lock:
                lost = len(self._queue) + self._inflight
                self._queue.clear()
                self._inflight = 0
                self._abandoned = True
                self._settled.notify_all()
            if lost:
                self._stats.add("dropped_shutdown", lost)
                self._limiter.log(
                    logging.WARNING,
                    "shutdown",
                    "kept: %d events could not be sent before the shutdown deadline",
                    lost,
                )
        self._kick.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            self._transport.close()
        elif thread is not threading.current_thread():
            thread.join(min(max(deadline - time.monotonic(), 0.0), threading.TIMEOUT_MAX))

    def release(self) -> None:
        """The owner is gone: let the thread exit once the queue is drained."""
        with self._lock:
            self._release = True
        self._wake.set()

    def counts(self) -> tuple[int, int]:
        """``(enqueued, queued)``: records accepted so far and records not yet settled."""
        with self._lock:
            return self._enqueued, len(self._queue) + self._inflight

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="kept-sender", daemon=True)
            try:
                thread.start()
            except RuntimeError as exc:  # interpreter shutting down, or out of threads
                self._stats.add("errors")
                self._limiter.log(
                    logging.ERROR, "start", "kept: cannot start the sender thread (%s)", exc
                )
                return
            self._thread = thread

    # --- worker thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self._flush_interval)
                self._wake.clear()
                self._kick.clear()
                while (batch := self._pop_batch()) is not None:
                    self._deliver(batch)
                with self._lock:
                    if self._abandoned or ((self._closing or self._release) and not self._queue):
                        return
        finally:
            try:
                self._transport.close()
            except Exception:
                logger.debug("kept: closing the transport failed", exc_info=True)

    def _pop_batch(self) -> list[R] | None:
        with self._lock:
            queue = self._queue
            if self._abandoned or not queue:
                return None
            n = min(len(queue), self._batch_size)
            self._inflight = n
            return [queue.popleft() for _ in range(n)]

    def _deliver(self, batch: list[R]) -> None:
        try:
            self._deliver_parts(self._encode_all(batch))
        except Exception as exc:  # a bug here must not kill the thread
            self._stats.add("errors")
            self._limiter.log(
                logging.ERROR, "bug", "kept: internal error while sending (%s)", type(exc).__name__
            )
        with self._lock:
            if not self._abandoned:
                self._done += len(batch)
                self._inflight = 0
                self._settled.notify_all()

    def _encode_all(self, batch: list[R]) -> list[bytes]:
        encoded: list[bytes] = []
        for record in batch:
            try:
                encoded.append(self._encode(record))
            except Exception as exc:  # e.g. an input message that is not JSON
                self._settle(1, "dropped_invalid")
                self._limiter.log(
                    logging.WARNING,
                    "encode",
                    "kept: an event could not be encoded as JSON (%s) and was dropped",
                    type(exc).__name__,
                )
        return encoded

    def _deliver_parts(self, events: list[bytes]) -> None:
        parts = [events] if events else []
        while parts:
            part = parts.pop()
            result = self._send_until_final(part)
            if result is None:
                return
            if result.outcome is Outcome.SENT:
                self._settle(len(part), "sent")
            elif result.outcome is Outcome.REJECTED:
                rest = self._drop_rejected(part, result)
                if rest:
                    parts.append(rest)
            elif result.outcome is Outcome.TOO_LARGE:
                if len(part) == 1:
                    self._settle(1, "dropped_invalid")
                    self._limiter.log(
                        logging.WARNING,
                        "too_large",
                        "kept: an event is too large for the sink (%s) and was dropped",
                        result.detail,
                    )
                else:
                    half = len(part) // 2
                    parts.append(part[half:])
                    parts.append(part[:half])
            elif result.outcome is Outcome.UNAUTHORIZED:
                self._settle(len(part), "dropped_unauthorized")
                if not self._unauthorized_logged:
                    self._unauthorized_logged = True
                    logger.error(
                        "kept: the sink refused the API key (%s); check KEPT_API_KEY. "
                        "Events are dropped while it is refused.",
                        result.detail,
                    )
            else:
                self._settle(len(part), "dropped_rejected")
                self._limiter.log(
                    logging.ERROR,
                    "fatal",
                    "kept: the sink refused a batch (%s); %d events dropped",
                    result.detail,
                    len(part),
                )

    def _drop_rejected(self, part: list[bytes], result: SendResult) -> list[bytes]:
        bad = {r.index for r in result.rejections if 0 <= r.index < len(part)}
        if not bad:  # nothing identifiable: resending the same batch would loop
            bad = set(range(len(part)))
        self._settle(len(bad), "dropped_invalid")
        for rejection in result.rejections[:3]:
            self._limiter.log(
                logging.WARNING,
                f"invalid:{rejection.field}",
                "kept: the sink rejected an event (field %r: %s); it was dropped",
                rejection.field,
                rejection.message[:200],
            )
        return [event for i, event in enumerate(part) if i not in bad]

    def _send_until_final(self, part: list[bytes]) -> SendResult | None:
        """Send ``part`` until the outcome is not RETRY; None when close abandoned it."""
        attempt = 0
        while True:
            try:
                result = self._transport.send(part)
            except Exception as exc:
                self._stats.add("errors")
                result = SendResult(Outcome.RETRY, detail=f"transport error: {type(exc).__name__}")
            if result.outcome is not Outcome.RETRY:
                return result
            attempt += 1
            self._stats.add("retries")
            delay = _backoff(attempt)
            if result.retry_after is not None:
                delay = max(delay, result.retry_after)
            self._limiter.log(
                logging.WARNING,
                "retry",
                "kept: the sink is unavailable (%s); retrying in %.1f s",
                result.detail,
                delay,
            )
            if not self._pause(delay, hard=result.retry_after is not None):
                return None

    def _pause(self, delay: float, *, hard: bool) -> bool:
        """Wait ``delay`` s; a flush cuts a soft pause short. False when abandoned."""
        deadline = time.monotonic() + delay
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return not self._abandoned
            kicked = self._kick.wait(remaining)
            if self._abandoned:
                return False
            if kicked:
                self._kick.clear()
                if not hard:
                    return True

    def _settle(self, n: int, counter: Counter) -> None:
        with self._lock:
            if self._abandoned:  # close already counted these as dropped_shutdown
                return
            self._inflight -= n
            self._stats.add(counter, n)

    def _after_fork_in_child(self) -> None:
        self._init_state()
        try:
            self._transport.reset()
        except Exception:
            logger.debug("kept: resetting the transport after fork failed", exc_info=True)


def _seconds(timeout: float) -> float:
    """A usable timeout: negative or NaN means 0 (an infinite one is allowed)."""
    return timeout if timeout >= 0 else 0.0


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about BACKOFF_BASE * 2**(attempt-1), capped."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** min(attempt - 1, 32))
    return delay * random.uniform(0.5, 1.0)


# Open workers, held weakly so that neither hook keeps a client's worker alive.
_workers: weakref.WeakSet[Worker[Any]] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    """Flush every open worker with its own deadline, all deadlines running together."""
    workers = list(_workers)
    start = time.monotonic()
    for worker in workers:
        worker._kick.set()
        worker._wake.set()
    for worker in workers:
        try:
            worker.close(max(worker.shutdown_timeout - (time.monotonic() - start), 0.0))
        except Exception:
            logger.debug("kept: closing at exit failed", exc_info=True)


def _after_fork_in_child() -> None:
    # The child must not resend the parent's queue, and must not touch the parent's
    # connection or locks; it starts its own worker on its first event.
    for worker in list(_workers):
        worker._after_fork_in_child()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
