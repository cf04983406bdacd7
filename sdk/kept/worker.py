"""The background sender: a bounded in-memory queue drained by one daemon thread.

The app's thread only appends to the queue. The worker thread takes batches, encodes
them and hands them to its delivery policy: :class:`~kept.delivery.Retrying` and
:class:`~kept.delivery.Delivery`, wrapped by :class:`~kept.spooling.Spooling` when the
client has a disk spool. Every event ends up counted: sent, spooled or dropped with a
reason. This module owns the queue, the thread, flush and close deadlines, and what
happens at exit and in a forked child.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kept_wire.encoding import RedactionError

from .delivery import Delivery, Retrying, Send
from .process_hooks import after_fork_in_child, at_exit
from .spool import Spool
from .spooling import Spooling
from .stats import Counter, LogLimiter, Stats, start_daemon
from .transports.base import Transport

logger = logging.getLogger("kept")

R = TypeVar("R")

ENCODE_SLICE = 32
"""Events the sender encodes between two looks at the clock."""
MAX_HOLD = 0.002
"""Seconds the sender encodes before it pauses for the app's threads (see _encode_batch)."""
SLICE_PAUSE = 0.0001
"""Seconds of each pause: long enough for the app's thread, waiting for the GIL, to take it."""


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
        if spool is not None:
            _report_backlog(transport, spool)
        self._init_state()
        _workers.add(self)
        _exit_hook.ensure()
        _fork_hook.ensure()

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
        # The delivery policy, composed: fresh after a fork, like the rest of the state.
        self._retrying = Retrying(self._transport, self._stats, self._limiter, self)
        self._delivery = Delivery(self._stats, self._limiter, self)
        self._spooling: Spooling | None = None
        self._send: Send = self._retrying.send
        if self._spool is not None:
            self._spooling = Spooling(
                self._spool,
                self._retrying,
                self._delivery,
                self._stats,
                self._limiter,
                self,
                batch_size=self._batch_size,
            )
            self._send = self._spooling.send

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
        spooling = self._spooling
        return spooling is not None and spooling.holds(spooled_is_settled)

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
            spooling = self._spooling
            with self._lock:
                left = list(self._queue)
                current = (spooling.current if spooling is not None else None) or []
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
        spooling = self._spooling
        try:
            while True:
                idle = self._flush_interval
                self._wake.wait(idle if spooling is None else spooling.idle_wait(idle))
                forced = self._kick.is_set()
                self._wake.clear()
                self._kick.clear()
                if spooling is not None:
                    spooling.replay(forced)
                while (batch := self._pop_batch()) is not None:
                    self._deliver(batch)
                    if spooling is not None:
                        spooling.replay(False)
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
            if n == len(queue):  # the whole queue (the usual case): no per-record pops
                batch = list(queue)
                queue.clear()
                sizes.clear()
                self._queued_bytes = 0
                return batch
            self._queued_bytes -= sum(sizes.popleft() for _ in range(n))
            return [queue.popleft() for _ in range(n)]

    def _deliver(self, batch: list[R]) -> None:
        try:
            events = self._encode_batch(batch)
            self._delivery.deliver(events, self._send, self.settle)
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

    def _encode_batch(self, batch: list[R]) -> list[bytes]:
        """The batch's events, encoded in slices, with a short sleep whenever the sender
        has held the GIL for ``MAX_HOLD`` seconds.

        Encoding holds the GIL, and a busy app's thread gets it back only at each forced
        switch (every 5 ms, ``sys.getswitchinterval()``): its requests wait meanwhile,
        which showed in the app's p99 when the standard library encoded a batch of 500
        (benchmarks/sdk_busy_app.py). With msgspec a typical batch takes about a
        millisecond and goes in one hold: each pause is a hand-off of the GIL there and
        back, and sixteen of them a batch cost the app more than they saved it. A slow
        redaction hook still gets its pauses. A sleep, unlike ``time.sleep(0)``, lasts
        long enough for a waiting thread to take the GIL; the app then runs until it
        waits for I/O or its own switch interval ends. When the client is closing,
        nothing waits: no pauses.
        """
        encode, encode_one, settle = self._encode, self._encode_one, self.settle
        events: list[bytes] = []
        held_since = time.perf_counter()
        for start in range(0, len(batch), ENCODE_SLICE):
            if start and not self._closing and time.perf_counter() - held_since > MAX_HOLD:
                time.sleep(SLICE_PAUSE)
                held_since = time.perf_counter()
            part = batch[start : start + ENCODE_SLICE]
            try:  # the usual case, without a call and a try per event
                events += list(map(encode, part))
            except Exception:  # one of them cannot be encoded: find it, count it
                # (the others of the slice are encoded again: new event ids, and the
                # redaction hook called once more; none of them was sent yet)
                for record in part:
                    event = encode_one(record, settle)
                    if event is not None:
                        events.append(event)
        return events

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

    def _count(self, n: int, counter: Counter) -> None:
        """Count events that were settled before (at close: they were in no batch)."""
        if n:
            self._stats.add(counter, n)

    # --- the delivery policy's view (kept.spooling.SpoolingContext) -----------------

    @property
    def abandoned(self) -> bool:
        """True once close gave up: drop everything, settle nothing more."""
        return self._abandoned

    @property
    def urgent(self) -> bool:
        """Closing, or the queue half full: a failing part should be spooled at once."""
        return self._closing or len(self._queue) >= self._max_queue_size / 2

    def pause(self, delay: float, *, hard: bool) -> bool:
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

    def settle(self, n: int, counter: Counter) -> None:
        """Count ``n`` events of the batch in flight as settled."""
        with self._lock:
            if self._abandoned:  # close already counted these as dropped_shutdown
                return
            self._inflight -= n
            self._stats.add(counter, n)

    def replayed(self) -> None:
        """A spooled segment was sent: wake flushes; keep the queue from filling meanwhile."""
        with self._settled:
            self._settled.notify_all()
        while len(self._queue) >= self._max_queue_size / 2 and (batch := self._pop_batch()):
            self._deliver(batch)

    # --- exit and fork --------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        self._init_state()
        try:
            self._transport.reset()
            if self._spool is not None:
                self._spool.reset()
        except Exception:
            logger.debug("kept: resetting the transport after fork failed", exc_info=True)


def _report_backlog(transport: Transport, spool: Spool) -> None:
    """Let a transport that can report the spool's backlog to the sink do so (the HTTP
    transport's ``report_backlog``; an app's own transport may offer it too)."""
    report = getattr(transport, "report_backlog", None)
    if callable(report):
        try:
            report(lambda: spool.bytes)
        except Exception:  # an app's transport: its hook must not cost the client
            logger.debug("kept: the transport's report_backlog failed", exc_info=True)


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


_exit_hook = at_exit(_close_all_at_exit)
_fork_hook = after_fork_in_child(_after_fork_in_child)
