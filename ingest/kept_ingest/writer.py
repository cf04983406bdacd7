"""Group commit: concurrent requests share one insert, and each learns when it is durable.

Requests hand their rows to one writer thread and wait on a future. While an insert
runs, new requests queue up; the next insert takes all of them (up to a row limit).
The queue is bounded in rows: past the bound, `submit` raises `Overloaded` (the intake
answers 429) instead of letting memory grow.

Each insert costs the store a part per table (and merges of those parts later) whatever
its size: measured with 4 clients posting 1000 events, inserting whatever had queued
(1–2 requests) cost twice the store CPU per event of inserting the 4 requests together.
So an insert waits, at most `linger_s` after the oldest queued request arrived, for the
requests it can expect: those on their way (authorised, see `arriving`, but still reading
or decoding their bodies), and as many as the largest of the last inserts carried (the
clients just answered, whose next requests are not authorised yet). A lone client's
request has no one to wait for; under load an insert takes the request of every client
that is sending. Either alone falls short: on their way only, two pairs of clients
settle into alternate inserts (each pair queued while the other's insert runs); the last
inserts only, the writer never learns that more clients send than it saw at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone

from kept_ingest.fast_contract import AnyEvent
from kept_ingest.inserter import Inserter
from kept_ingest.metrics import IngestMetrics
from kept_ingest.rows import EventRows, to_rows
from kept_storage import Store

log = logging.getLogger("kept.writer")
_ROWS_ON_LOOP = 200
"""Requests with up to this many events make their rows on the event loop (a few ms at
most); larger ones on a worker thread."""
_RECENT_INSERTS = 16
"""Inserts whose sizes (in requests) the linger goes by."""


class Overloaded(Exception):
    """Too many rows are waiting; the caller should retry after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"writer queue is full; retry after {retry_after:.0f}s")
        self.retry_after = retry_after


class WriterStopped(Exception):
    """The writer is shutting down and takes no new rows."""


class _Arrival:
    """An intake request on its way to `submit` (one per request, in its context)."""

    def __init__(self, writer: BatchWriter) -> None:
        self.writer = writer
        self.pending = True


_ARRIVAL: ContextVar[_Arrival | None] = ContextVar("kept_writer_arrival", default=None)


@dataclass
class _Pending:
    rows: EventRows
    future: Future[None]
    arrived: float
    """time.monotonic() when it was queued."""


class BatchWriter:
    """Owns the thread that makes rows durable in ClickHouse, with dedup by event_id."""

    def __init__(
        self,
        store: Store,
        metrics: IngestMetrics,
        *,
        max_batch_rows: int = 50_000,
        max_pending_rows: int = 200_000,
        linger_s: float = 0.0,
        recent_ids: int = 500_000,
    ) -> None:
        self._metrics = metrics
        self._max_batch_rows = max_batch_rows
        self._max_pending_rows = max_pending_rows
        self._linger_s = linger_s
        self._inserter = Inserter(store, metrics, recent_ids, tables_at_once=True)
        self._queue: deque[_Pending] = deque()
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._arriving = 0
        """Requests `arriving` that have not submitted (nor ended) yet."""
        # Before the first insert nothing is known of the load: it lingers the whole
        # time (the overload tests hold rows pending with it).
        self._recent_requests: deque[int] = deque(maxlen=_RECENT_INSERTS)
        self._thread = threading.Thread(target=self._run, name="kept-writer", daemon=True)

    def start(self) -> None:
        """Remember recently stored ids (so replays after a restart are skipped), then run."""
        self._inserter.seed()
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def stop(self, timeout: float = 30.0) -> None:
        """Insert what is queued, then stop; waits at most `timeout` seconds."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._inserter.close()

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Around an intake request from the moment it is authorised: until it submits
        its rows (or ends without), inserts wait for it, at most `linger_s`."""
        arrival = _Arrival(self)
        with self._cond:
            self._arriving += 1
        # Never reset: the request's context ends with it, and a reset from another
        # context (where a framework may run the exit) would raise.
        _ARRIVAL.set(arrival)
        try:
            yield
        finally:
            with self._cond:
                self._arrived()

    def _arrived(self) -> None:
        """The current request's rows are queued, or it ends: no insert waits for it
        any longer (holding the condition)."""
        arrival = _ARRIVAL.get()
        if arrival is not None and arrival.writer is self and arrival.pending:
            arrival.pending = False
            self._arriving -= 1
            self._cond.notify()

    def submit(self, rows: EventRows) -> Future[None]:
        """Queue rows for the next insert; the future resolves once they are durable."""
        future: Future[None] = Future()
        if len(rows) == 0:
            with self._cond:
                self._arrived()
            future.set_result(None)
            return future
        with self._cond:
            self._arrived()
            if self._stopping:
                raise WriterStopped("the server is shutting down")
            if self._pending_rows and self._pending_rows + len(rows) > self._max_pending_rows:
                raise Overloaded(retry_after=1.0)
            self._queue.append(_Pending(rows, future, time.monotonic()))
            self._pending_rows += len(rows)
            self._metrics.pending_rows.set(self._pending_rows)
            self._cond.notify()
        return future

    async def write(self, events: Sequence[AnyEvent], project: str) -> None:
        """Store `events` of `project`; returns, without blocking the event loop, once
        they are durable (the EventSink interface)."""
        now = datetime.now(timezone.utc)
        if len(events) <= _ROWS_ON_LOOP:
            rows = to_rows(events, now, project)
        else:
            # Making rows costs about 10 µs an event: thousands would hold the loop.
            rows = await asyncio.to_thread(to_rows, events, now, project)
        return await asyncio.wrap_future(self.submit(rows))

    def _take(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:
                return None
            self._linger()
            batch: list[_Pending] = []
            rows = 0
            while self._queue and (
                not batch or rows + len(self._queue[0].rows) <= self._max_batch_rows
            ):
                item = self._queue.popleft()
                batch.append(item)
                rows += len(item.rows)
            self._pending_rows -= rows
            self._metrics.pending_rows.set(self._pending_rows)
            self._recent_requests.append(len(batch))
        return batch

    def _linger(self) -> None:
        """Wait (holding the condition) while requests are arriving or fewer are queued
        than the last inserts carried, until a full batch is queued, the oldest has
        waited `linger_s`, or the writer stops."""
        deadline = self._queue[0].arrived + self._linger_s
        expected = max(self._recent_requests, default=self._max_pending_rows)
        while (
            not self._stopping
            and (self._arriving > 0 or len(self._queue) < expected)
            and self._pending_rows < self._max_batch_rows
        ):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._flush(batch)
            except Exception as exc:
                self._metrics.insert_batches.labels("error").inc()
                log.error("insert of %d requests failed: %s", len(batch), exc)
                for item in batch:
                    item.future.set_exception(exc)
                continue
            self._metrics.insert_batches.labels("ok").inc()
            for item in batch:
                item.future.set_result(None)

    def _flush(self, batch: list[_Pending]) -> None:
        merged = EventRows()
        for item in batch:
            merged.extend(item.rows)
        self._inserter.insert(merged)
        self._metrics.batch_requests.observe(len(batch))
