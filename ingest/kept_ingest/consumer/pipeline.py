"""The consumer loop: poll → decode → dead-letter or batch → insert → commit offsets.

Offsets are committed only after a batch's events are stored and its dead letters are
acknowledged, so a crash anywhere replays messages instead of losing them. A replayed
event id is skipped by the inserter's recent-id window (seeded from the store at start)
or collapsed by ReplacingMergeTree; readers count distinct event ids meanwhile.

Backpressure: while a batch cannot be stored (ClickHouse slow or down), the partitions
are paused and polls only keep the group membership alive; the batch is retried with
backoff, nothing more is read, offsets wait and nothing is skipped.

Overlap: a full batch is stored on a thread of its own while the next one is read and
decoded; at most one batch is in flight, so memory holds two batches at most and offsets
are committed in order (a batch is handed over only once the one before is stored). What
overlaps is the store's own work (the engine's, or the server's round trip), which runs
without the GIL: timed per thread, about half of an insert's time.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from kept_ingest.consumer.batching import Batch, Batcher, Partition
from kept_ingest.consumer.deadletter import InvalidShare, TooManyInvalid
from kept_ingest.consumer.decode import Invalid, Message, decode_events
from kept_ingest.consumer.insert import InsertStep
from kept_ingest.consumer.kafka_io import KafkaIO
from kept_ingest.kafka_settings import KafkaSettings
from kept_ingest.metrics import ConsumerMetrics
from kept_wire.backoff import backoff_delay

log = logging.getLogger("kept.consumer")


@dataclass(frozen=True)
class _InFlight:
    """A batch being stored on the insert thread."""

    batch: Batch
    stored: Future[int]
    started: float


class Pipeline:
    """Runs the steps over one KafkaIO until `stop` is set or the invalid limit trips."""

    def __init__(
        self,
        io: KafkaIO,
        insert: InsertStep,
        settings: KafkaSettings,
        metrics: ConsumerMetrics,
        stop: threading.Event,
    ) -> None:
        self._io = io
        self._insert = insert
        self._metrics = metrics
        self._stop = stop
        self._batcher = Batcher(
            settings.kafka_batch_max_events,
            settings.kafka_batch_max_bytes,
            settings.kafka_batch_max_ms / 1000,
        )
        self._invalid = InvalidShare(
            settings.kafka_invalid_window, settings.kafka_invalid_max_share
        )
        self._grace_s = settings.kafka_shutdown_grace_s
        self._backlog: list[Message] = []
        self._uncommitted: dict[Partition, int] = {}  # stored, commit failed: retried
        self._commit_retry_at = 0.0
        self._committed: dict[Partition, int] = {}
        self._commit_failing = False
        self._last_dead_letter_log = 0.0
        self._in_flight: _InFlight | None = None
        self._inserting = ThreadPoolExecutor(1, thread_name_prefix="kept-insert")

    def run(self) -> None:
        """Consume until stopped; the last batch is stored and committed before returning.

        Raises TooManyInvalid (after storing what came before the message that tripped it).
        """
        try:
            self._consume()
            self._store()
            self._finish()
        finally:
            self._inserting.shutdown(wait=True)
        if self._uncommitted:
            self._commit({})

    def _consume(self) -> None:
        while not self._stop.is_set():
            messages, self._backlog = self._backlog, []
            messages = messages or self._io.poll(min(self._batcher.time_left(), 0.5))
            if messages:
                self._metrics.consumed.inc(len(messages))
            for message in messages:
                if self._handle(message):
                    self._store()
            if self._batcher.ready():
                self._store()
            elif self._in_flight is not None and self._in_flight.stored.done():
                self._finish()  # commit without waiting for the next batch
            elif self._uncommitted and time.monotonic() >= self._commit_retry_at:
                self._commit({})
            for (topic, partition), lag in self._io.lag().items():
                self._metrics.lag.labels(topic, str(partition)).set(lag)

    def _handle(self, message: Message) -> bool:
        """Decode one message's events into the batch (the invalid ones into the
        dead-letter topic); True when the batch is full."""
        results = decode_events(message)
        events = [r for r in results if not isinstance(r, Invalid)]
        if len(events) == len(results):
            self._invalid.record_valid(len(events))
            return self._batcher.add(message, events)
        for result in results:
            try:
                self._invalid.record(isinstance(result, Invalid))
            except TooManyInvalid:
                self._store()  # what came before the message that tripped the limit
                self._finish()
                raise
            if isinstance(result, Invalid):
                self._dead_letter(result)
        return self._batcher.add(message, events)

    def _dead_letter(self, invalid: Invalid) -> None:
        self._io.dead_letters.send(invalid)
        self._metrics.dead_lettered.labels(invalid.reason).inc()
        now = time.monotonic()
        if now - self._last_dead_letter_log >= 10:  # a flood must not flood the log too
            self._last_dead_letter_log = now
            message = invalid.message
            log.warning(
                "dead-lettered %s[%d]@%d%s: %s (%s)",
                message.topic,
                message.partition,
                message.offset,
                "" if invalid.index is None else f" event {invalid.index}",
                invalid.reason,
                invalid.error[:200],
            )

    def _store(self) -> None:
        """Hand the batch to the insert thread, once the one before it is stored."""
        if not len(self._batcher):
            return
        batch = self._batcher.take()
        if not self._finish():
            # The batch before could not be stored before a stop ran out of grace: this
            # one must not be stored (and committed) past it. Both are read again later.
            return
        stored = self._inserting.submit(self._insert.insert, batch.events)
        self._in_flight = _InFlight(batch, stored, time.perf_counter())

    def _finish(self) -> bool:
        """Wait for the batch in flight to be stored (retrying with backoff while paused
        if it failed), then commit its offsets. False when a stop request ran out of grace
        before it was stored."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return True
        batch = in_flight.batch
        try:
            self._metrics.inserted.inc(in_flight.stored.result())
            self._io.dead_letters.flush()
        except Exception as exc:
            self._metrics.insert_failures.inc()
            if not self._store_with_retries(batch, exc):
                return False
        self._metrics.batch_events.observe(batch.messages)
        self._metrics.insert_latency.observe(time.perf_counter() - in_flight.started)
        self._commit(batch.offsets)
        return True

    def _store_with_retries(self, batch: Batch, error: Exception) -> bool:
        """Retry a batch whose insert failed with `error`, consumption paused meanwhile.

        True once stored; False when a stop request ran out of grace first.
        """
        self._io.pause()
        self._metrics.paused.set(1)
        try:
            attempt, gave_up_at = 0, None
            while True:
                attempt += 1
                delay = backoff_delay(attempt)
                if self._stop.is_set():
                    gave_up_at = gave_up_at or time.monotonic() + self._grace_s
                    if time.monotonic() >= gave_up_at:
                        log.error(
                            "stopping with %d messages not stored (%s); their offsets are "
                            "not committed, so they will be consumed again",
                            batch.messages,
                            error,
                        )
                        return False
                    delay = min(delay, gave_up_at - time.monotonic())
                log.warning(
                    "cannot store a batch of %d messages (%s); consumption paused, "
                    "retry %d in %.1f s",
                    batch.messages,
                    error,
                    attempt,
                    delay,
                )
                self._wait(delay)
                try:
                    self._metrics.inserted.inc(self._insert.insert(batch.events))
                    self._io.dead_letters.flush()
                    return True
                except Exception as exc:
                    self._metrics.insert_failures.inc()
                    error = exc
        finally:
            self._io.resume()
            self._metrics.paused.set(0)

    def _wait(self, delay: float) -> None:
        # Polls with every partition paused return nothing but keep the group membership.
        # A rebalance meanwhile may assign partitions that are not paused yet: whatever
        # they return waits in the backlog, in order, for after this batch.
        deadline = time.monotonic() + delay
        stopping = self._stop.is_set()
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stop.is_set() and not stopping:
                return  # retry at once: the grace period after a stop request starts now
            self._io.pause()
            self._backlog.extend(self._io.poll(min(remaining, 1.0)))

    def _commit(self, offsets: dict[Partition, int]) -> None:
        """Commit offsets of stored messages; what fails is retried with the next commit.

        Only partitions this consumer holds now: after a rebalance, the new owner of the
        others reads them again from the last commit (the stored ids make that harmless).
        An offset here only ever covers stored messages, so committing it late is safe.
        """
        for partition, offset in offsets.items():
            self._uncommitted[partition] = max(offset, self._uncommitted.get(partition, 0))
        held = self._io.assignment()
        # Messages read again after a rebalance must not move a commit backwards.
        pending = {
            p: o
            for p, o in self._uncommitted.items()
            if p in held and o > self._committed.get(p, -1)
        }
        self._uncommitted = {}
        try:
            self._io.commit(pending)
        except Exception as exc:
            # Typically a rebalance in progress (polling completes it) or the broker away.
            self._uncommitted = pending
            self._commit_retry_at = time.monotonic() + 1.0
            self._metrics.commits.labels("failed").inc()
            if not self._commit_failing:
                log.warning("offset commit failed (%s); retrying", exc)
            self._commit_failing = True
            return
        self._committed.update(pending)
        if self._commit_failing:
            log.info("offsets committed again")
        self._commit_failing = False
        self._metrics.commits.labels("ok").inc()
