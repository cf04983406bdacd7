"""The spool policy: batches the sink keeps refusing wait on disk, and come back in order.

:class:`Spooling` wraps the worker's :class:`~kept.delivery.Retrying`. A live part that
keeps failing for ``SPOOL_AFTER`` seconds (at once when the queue is half full or the
client is closing) is written to the :class:`~kept.spool.Spool` instead of held in
memory. While the spool holds events, new parts go behind them, and the oldest spooled
segment is retried on the backoff schedule (at once on a flush); once the sink takes
it, the spool is sent oldest first. A spool left by an earlier run is sent the same way.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from .delivery import Context, Delivery, Retrying, retry_delay
from .spool import Spool
from .stats import Counter, LogLimiter, Stats
from .transports.base import Outcome, SendResult

SPOOL_AFTER = 5.0
"""Seconds a batch may keep failing before it goes to the spool."""


class SpoolingContext(Context, Protocol):
    """The worker as the spool policy sees it."""

    @property
    def urgent(self) -> bool:
        """True when a failing part should be spooled at once (closing, a crowded queue)."""
        ...

    def settle(self, n: int, counter: Counter) -> None:
        """Count ``n`` live events as settled."""
        ...

    def replayed(self) -> None:
        """A spooled segment was sent: wake waiting flushes, make room in a crowded queue."""
        ...


class Spooling:
    """Sends live parts through ``retrying``, diverting them to ``spool`` while the sink is down."""

    def __init__(
        self,
        spool: Spool,
        retrying: Retrying,
        delivery: Delivery,
        stats: Stats,
        limiter: LogLimiter,
        context: SpoolingContext,
        *,
        batch_size: int,
    ) -> None:
        self.spool = spool
        self._retrying = retrying
        self._delivery = delivery
        self._stats = stats
        self._limiter = limiter
        self._context = context
        self._batch_size = batch_size
        self.current: list[bytes] | None = None
        """The live part being sent, for close to spool when it gives up waiting."""
        self._seen = False  # looked for a spool left by an earlier run
        self._sink_down = False  # the last attempt failed and events wait in the spool
        self._replay_at = 0.0  # monotonic time of the next attempt to send spooled events
        self._replay_attempt = 0

    # --- live events ----------------------------------------------------------------

    def send(self, part: list[bytes]) -> SendResult | None:
        """Send a live part, or spool it (None): behind events already waiting, or when
        it fails for too long."""
        if self.spool.pending:
            self._spool_live(part)  # behind the events already waiting: keep the order
            return None
        self.current = part
        try:
            result = self._retrying.send(part, give_up=self._due)
            if result is None:
                self._spool_live(part)
                return None
        finally:
            self.current = None
        if result.outcome is not Outcome.RETRY:
            self._sink_down = False
        return result

    def holds(self, spooled_is_settled: bool) -> bool:
        """True while events wait in the spool that a flush should still wait for; with
        ``spooled_is_settled`` (close) not while the sink is down."""
        return self.spool.pending and not (spooled_is_settled and self._sink_down)

    def idle_wait(self, interval: float) -> float:
        """How long the idle worker may sleep: until the next replay attempt at the most."""
        if self.spool.pending:
            return max(0.0, min(interval, self._replay_at - time.monotonic()))
        return interval

    def _due(self, failing_since: float) -> bool:
        if self._context.abandoned:
            return False
        due = self._context.urgent or time.monotonic() - failing_since >= SPOOL_AFTER
        return due and self.spool.open()

    def _spool_live(self, part: list[bytes]) -> None:
        """Write a live part to the spool; what does not fit is dropped and counted."""
        settle = self._context.settle
        try:
            written = self.spool.append(part)
        except OSError as exc:
            written = 0
            self._limiter.log(logging.ERROR, "spool", "kept: cannot write the spool (%s)", exc)
        settle(written, "spooled")
        if written < len(part):
            settle(len(part) - written, "dropped_spool_full")
            self._limiter.log(
                logging.WARNING,
                "spool_full",
                "kept: the spool at %s is full (%d bytes); new events are dropped",
                self.spool.directory,
                self.spool.max_bytes,
            )
        if not self._sink_down:
            self._sink_failed(None)

    # --- spooled events -------------------------------------------------------------

    def replay(self, forced: bool) -> None:
        """Send spooled segments oldest first while the sink takes them; unless ``forced``
        (a flush), only once the backoff pause after the last failure is over."""
        spool = self.spool
        if self._context.abandoned:
            return
        if not self._seen:  # a spool left by an earlier run is replayed at start
            self._seen = True
            if spool.directory.is_dir():
                spool.open()
        if not spool.pending or (not forced and time.monotonic() < self._replay_at):
            return
        try:
            self._replay_segments()
        except Exception as exc:  # a bug or a disk error here must not kill the thread
            self._stats.add("errors")
            self._limiter.log(
                logging.ERROR, "replay", "kept: cannot replay the spool (%s)", type(exc).__name__
            )
            self._sink_failed(None)

    def _replay_segments(self) -> None:
        spool, size = self.spool, self._batch_size
        while not self._context.abandoned and (segment := spool.oldest()) is not None:
            events = segment.events
            for start in range(0, len(events), size):
                part = events[start : start + size]
                if not self._delivery.deliver(part, self._send_spooled, self._count):
                    return
            spool.remove(segment)
            self._sink_down = False
            self._replay_attempt = 0
            self._context.replayed()

    def _send_spooled(self, part: list[bytes]) -> SendResult:
        """One attempt: spooled events stay on disk until the sink takes them."""
        result = self._retrying.send_once(part)
        if result.outcome is Outcome.RETRY:
            self._sink_failed(result)
        return result

    def _sink_failed(self, result: SendResult | None) -> None:
        """Spooled events wait: schedule the next attempt on the backoff curve."""
        self._sink_down = True
        self._replay_attempt += 1
        self._replay_at = time.monotonic() + retry_delay(self._replay_attempt)
        if result is not None:
            self._stats.add("retries")
            self._limiter.log(
                logging.WARNING,
                "replay",
                "kept: the sink is unavailable (%s); %d bytes wait in the spool",
                result.detail,
                self.spool.bytes,
            )

    def _count(self, n: int, counter: Counter) -> None:
        """Count replayed events: they were settled when they were spooled."""
        if n:
            self._stats.add(counter, n)
