"""The background sender: a bounded in-memory queue drained by one daemon thread.

The app's thread only appends to the queue. The worker thread takes batches, encodes
them, hands them to the :class:`~kept.transport.Transport` and applies the retry policy:
exponential backoff with jitter for transient failures, dropping exactly the events the
sink rejects, halving batches that are too large. Every event ends up counted: sent,
spooled or dropped with a reason.

With a :class:`~kept.spool.Spool`, a batch that keeps failing for ``SPOOL_AFTER`` seconds
(at once when the queue is half full or the client is closing) is written to disk
instead of held in memory. While the spool holds events, new batches go behind them, and
the oldest spooled segment is retried on the backoff schedule (at once on a flush); once
the sink takes it, the spool is drained oldest first.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kept_wire.backoff import BACKOFF_BASE, BACKOFF_CAP, backoff_delay

from .events import RedactionError
from .spool import Spool
from .stats import Counter, LogLimiter, Stats, start_daemon
from .transport import Outcome, SendResult, Transport

logger = logging.getLogger("kept")

R = TypeVar("R")

SPOOL_AFTER = 5.0
"""Seconds a batch may keep failing before it goes to the spool."""


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
        max_queue_bytes: int = 2**62,
        batch_size: int,
        flush_interval: float,
        shutdown_timeout: float,
        spool: Spool | None = None,
    ) -> None:
        self._transport = transport
        self._spool = spool
        self._encode = encode
        self._stats = stats
        self._limiter = limiter
        self._max_queue_size = max_queue_size
        self._max_queue_bytes = max_queue_bytes
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
        self._sizes: deque[int] = deque()  # the estimated bytes of each queued record
        self._queued_bytes = 0
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
        self._current: list[bytes] | None = None  # the part being sent, for close to spool
        self._spool_seen = False  # the worker looked for a spool left by an earlier run
        self._sink_down = False  # the last attempt failed and events wait in the spool
        self._replay_at = 0.0  # monotonic time of the next attempt to send spooled events
        self._replay_attempt = 0

    # --- app side -------------------------------------------------------------------

    def put(self, record: R, size: int = 0) -> bool:
        """Enqueue ``record`` of about ``size`` bytes without blocking; False (and counted)
        when dropped: the queue holds at most ``max_queue_size`` records and
        ``max_queue_bytes`` bytes."""
        waiting = 0
        with self._lock:
            if self._closing:
                dropped: Counter | None = "dropped_closed"
            elif (
                len(self._queue) >= self._max_queue_size
                or self._queued_bytes + size > self._max_queue_bytes
            ):
                dropped = "dropped_queue_full"
            else:
                dropped = None
                self._queue.append(record)
                self._sizes.append(size)
                self._queued_bytes += size
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
        """Send everything enqueued so far and everything spooled; True when it all settled
        within ``timeout``."""
        return self._wait(timeout, spooled_is_settled=False)

    def _wait(self, timeout: float, *, spooled_is_settled: bool) -> bool:
        deadline = time.monotonic() + _seconds(timeout)
        if self._spool is not None and self._spool.directory.is_dir() and self._spool.open():
            self._start()  # replay what an earlier run left, even before the first event
        with self._lock:
            target = self._enqueued
            if self._done >= target and not self._spool_holds(spooled_is_settled):
                return True
        self._kick.set()
        self._wake.set()
        with self._settled:
            while self._done < target or self._spool_holds(spooled_is_settled):
                remaining = deadline - time.monotonic()
                if self._abandoned or remaining <= 0:
                    return False
                self._settled.wait(min(remaining, threading.TIMEOUT_MAX))
        return True

    def _spool_holds(self, spooled_is_settled: bool) -> bool:
        """True while events wait in the spool that a flush should still wait for."""
        spool = self._spool
        return spool is not None and spool.pending and not (spooled_is_settled and self._sink_down)

    def close(self, timeout: float) -> None:
        """Flush until ``timeout``, spool or count as ``dropped_shutdown`` what is left, stop.

        With a spool, events are safe once spooled: close returns when the sink is down
        and everything is on disk, without waiting for the deadline.
        """
        timeout = _seconds(timeout)
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._close_started:
                return
            self._close_started = self._closing = True
        _workers.discard(self)
        if not self._wait(timeout, spooled_is_settled=True):
            with self._lock:
                left, current = list(self._queue), self._current or []
                lost = len(self._queue) + self._inflight
                self._queue.clear()
                self._sizes.clear()
                self._queued_bytes = 0
                self._inflight = 0
                self._abandoned = True
                self._settled.notify_all()
            lost -= self._spool_leftovers(current, left) if lost else 0
            if lost > 0:
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
        if self._spool is not None and (thread is None or not thread.is_alive()):
            self._spool.close()

    def _spool_leftovers(self, current: list[bytes], records: list[R]) -> int:
        """At the close deadline: spool the part being sent and the queue; returns how many.

        The part being sent may still arrive from the worker thread too: the server stores
        a repeated event id once.
        """
        spool = self._spool
        if spool is None or not spool.open():
            return 0
        events = list(current)
        for record in records:
            event = self._encode_one(record, self._count)
            if event is not None:
                events.append(event)
        try:
            written = spool.append(events)
        except OSError as exc:
            logger.error("kept: cannot write to the spool (%s)", exc)
            return 0
        self._stats.add("spooled", written)
        return written + len(records) + len(current) - len(events)

    def release(self) -> None:
        """The owner is gone: let the thread exit once the queue is drained."""
        with self._lock:
            self._release = True
        self._wake.set()

    def start(self) -> None:
        """Start the sender thread now rather than with the first event (to replay the spool)."""
        if self._thread is None:
            self._start()

    def spool_bytes(self) -> int:
        """Bytes of events waiting in the spool."""
        return 0 if self._spool is None else self._spool.bytes

    def counts(self) -> tuple[int, int]:
        """``(enqueued, queued)``: records accepted so far and records not yet settled."""
        with self._lock:
            return self._enqueued, len(self._queue) + self._inflight

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._thread = start_daemon(
                self._run, "kept-sender", self._stats, self._limiter, "the sender thread"
            )

    # --- worker thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self._idle_wait())
                forced = self._kick.is_set()
                self._wake.clear()
                self._kick.clear()
                self._replay(forced)
                while (batch := self._pop_batch()) is not None:
                    self._deliver(batch)
                    self._replay(False)
                with self._lock:
                    if self._abandoned or ((self._closing or self._release) and not self._queue):
                        return
        finally:
            try:
                self._transport.close()
                if self._spool is not None:
                    self._spool.close()  # what is left stays on disk for the next client
            except Exception:
                logger.debug("kept: closing the transport failed", exc_info=True)

    def _pop_batch(self) -> list[R] | None:
        with self._lock:
            queue = self._queue
            if self._abandoned or not queue:
                return None
            n = min(len(queue), self._batch_size)
            self._inflight = n
            sizes = self._sizes
            self._queued_bytes -= sum(sizes.popleft() for _ in range(n))
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
        return [e for record in batch if (e := self._encode_one(record, self._settle)) is not None]

    def _encode_one(self, record: R, settle: Callable[[int, Counter], None]) -> bytes | None:
        """The event's JSON, or None (dropped and counted) when it cannot be made."""
        try:
            return self._encode(record)
        except RedactionError as exc:  # unredacted text must not leave the process
            settle(1, "dropped_redaction")
            self._limiter.log(logging.WARNING, "redact", "kept: %s; the event was dropped", exc)
        except Exception as exc:  # e.g. an input message that is not JSON
            settle(1, "dropped_invalid")
            self._limiter.log(
                logging.WARNING,
                "encode",
                "kept: an event could not be encoded as JSON (%s) and was dropped",
                type(exc).__name__,
            )
        return None

    def _deliver_parts(self, events: list[bytes], *, replay: bool = False) -> bool:
        """Send ``events`` until each is settled, splitting or trimming as the sink asks.

        Live events that keep failing go to the spool. A replay of spooled events gives
        up at the first failure (they stay on disk) and returns False.
        """
        settle = self._count if replay else self._settle
        parts = [events] if events else []
        while parts:
            part = parts.pop()
            if replay:
                result: SendResult | None = self._send_once(part)
                if result is not None and result.outcome is Outcome.RETRY:
                    self._sink_failed(result)
                    return False
            elif self._spool is not None and self._spool.pending:
                self._spool_part(part)  # behind the events already waiting: keep the order
                continue
            else:
                result = self._send_until_final(part)
            if result is None:  # spooled, or abandoned by close
                if self._abandoned:
                    return True
                continue
            if result.outcome is Outcome.SENT:
                settle(len(part), "sent")
            elif result.outcome is Outcome.REJECTED:
                rest = self._drop_rejected(part, result, settle)
                if rest:
                    parts.append(rest)
            elif result.outcome is Outcome.TOO_LARGE:
                if len(part) == 1:
                    settle(1, "dropped_invalid")
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
                settle(len(part), "dropped_unauthorized")
                if not self._unauthorized_logged:
                    self._unauthorized_logged = True
                    logger.error(
                        "kept: the sink refused the API key (%s); check KEPT_API_KEY. "
                        "Events are dropped while it is refused.",
                        result.detail,
                    )
            else:
                settle(len(part), "dropped_rejected")
                self._limiter.log(
                    logging.ERROR,
                    "fatal",
                    "kept: the sink refused a batch (%s); %d events dropped",
                    result.detail,
                    len(part),
                )
        return True

    def _drop_rejected(
        self, part: list[bytes], result: SendResult, settle: Callable[[int, Counter], None]
    ) -> list[bytes]:
        bad = {r.index for r in result.rejections if 0 <= r.index < len(part)}
        if not bad:  # nothing identifiable: resending the same batch would loop
            bad = set(range(len(part)))
        settle(len(bad), "dropped_invalid")
        for rejection in result.rejections[:3]:
            self._limiter.log(
                logging.WARNING,
                f"invalid:{rejection.field}",
                "kept: the sink rejected an event (field %r: %s); it was dropped",
                rejection.field,
                rejection.message[:200],
            )
        return [event for i, event in enumerate(part) if i not in bad]

    def _send_once(self, part: list[bytes]) -> SendResult:
        try:
            return self._transport.send(part)
        except Exception as exc:
            self._stats.add("errors")
            return SendResult(Outcome.RETRY, detail=f"transport error: {type(exc).__name__}")

    def _send_until_final(self, part: list[bytes]) -> SendResult | None:
        """Send ``part`` until the outcome is not RETRY; None once spooled or abandoned."""
        attempt = 0
        failing_since = time.monotonic()
        self._current = part
        try:
            while True:
                result = self._send_once(part)
                if result.outcome is not Outcome.RETRY:
                    self._sink_down = False
                    return result
                if self._should_spool(failing_since):
                    self._spool_part(part)
                    return None
                attempt += 1
                self._stats.add("retries")
                delay = backoff_delay(attempt, BACKOFF_BASE, BACKOFF_CAP)
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
        finally:
            self._current = None

    # --- spool ----------------------------------------------------------------------

    def _should_spool(self, failing_since: float) -> bool:
        spool = self._spool
        if spool is None or self._abandoned:
            return False
        due = (
            self._closing
            or time.monotonic() - failing_since >= SPOOL_AFTER
            or len(self._queue) >= self._max_queue_size / 2
        )
        return due and spool.open()

    def _spool_part(self, part: list[bytes]) -> None:
        """Write a live part to the spool; what does not fit is dropped and counted."""
        assert self._spool is not None
        try:
            written = self._spool.append(part)
        except OSError as exc:
            written = 0
            self._limiter.log(logging.ERROR, "spool", "kept: cannot write the spool (%s)", exc)
        self._settle(written, "spooled")
        if written < len(part):
            self._settle(len(part) - written, "dropped_spool_full")
            self._limiter.log(
                logging.WARNING,
                "spool_full",
                "kept: the spool at %s is full (%d bytes); new events are dropped",
                self._spool.directory,
                self._spool.max_bytes,
            )
        if not self._sink_down:
            self._sink_failed(None)

    def _sink_failed(self, result: SendResult | None) -> None:
        """Spooled events wait: schedule the next attempt on the backoff curve."""
        self._sink_down = True
        self._replay_attempt += 1
        self._replay_at = time.monotonic() + backoff_delay(
            self._replay_attempt, BACKOFF_BASE, BACKOFF_CAP
        )
        if result is not None:
            self._stats.add("retries")
            self._limiter.log(
                logging.WARNING,
                "replay",
                "kept: the sink is unavailable (%s); %d bytes wait in the spool",
                result.detail,
                self._spool.bytes if self._spool else 0,
            )

    def _replay(self, forced: bool) -> None:
        """Send spooled segments oldest first while the sink takes them."""
        spool = self._spool
        if spool is None or self._abandoned:
            return
        if not self._spool_seen:  # a spool left by an earlier run is replayed at start
            self._spool_seen = True
            if spool.directory.is_dir():
                spool.open()
        if not spool.pending or (not forced and time.monotonic() < self._replay_at):
            return
        try:
            self._replay_segments(spool)
        except Exception as exc:  # a bug or a disk error here must not kill the thread
            self._stats.add("errors")
            self._limiter.log(
                logging.ERROR, "replay", "kept: cannot replay the spool (%s)", type(exc).__name__
            )
            self._sink_failed(None)

    def _replay_segments(self, spool: Spool) -> None:
        while not self._abandoned and (segment := spool.oldest()) is not None:
            events, size = segment.events, self._batch_size
            for start in range(0, len(events), size):
                if not self._deliver_parts(events[start : start + size], replay=True):
                    return
            spool.remove(segment)
            self._sink_down = False
            self._replay_attempt = 0
            with self._settled:
                self._settled.notify_all()
            # Draining a large spool takes a while: keep the queue from filling up meanwhile.
            while len(self._queue) >= self._max_queue_size / 2 and (batch := self._pop_batch()):
                self._deliver(batch)

    def _idle_wait(self) -> float:
        spool = self._spool
        if spool is not None and spool.pending:
            return max(0.0, min(self._flush_interval, self._replay_at - time.monotonic()))
        return self._flush_interval

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

    def _count(self, n: int, counter: Counter) -> None:
        """Count replayed events: they were settled when they were spooled."""
        if n:
            self._stats.add(counter, n)

    def _after_fork_in_child(self) -> None:
        self._init_state()
        try:
            self._transport.reset()
            if self._spool is not None:
                self._spool.reset()
        except Exception:
            logger.debug("kept: resetting the transport after fork failed", exc_info=True)


def _seconds(timeout: float) -> float:
    """A usable timeout: negative or NaN means 0 (an infinite one is allowed)."""
    return timeout if timeout >= 0 else 0.0


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
