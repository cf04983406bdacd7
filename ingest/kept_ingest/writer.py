"""Group commit: concurrent requests share one insert, and each learns when it is durable.

Requests hand their rows to one writer thread and wait on a future. While an insert
runs, new requests queue up; the next insert takes all of them (up to a row limit).
So latency stays low at low load and inserts grow large at high load, without a
timer. The queue is bounded in rows: past the bound, `submit` raises `Overloaded`
(the intake answers 429) instead of letting memory grow.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
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


class Overloaded(Exception):
    """Too many rows are waiting; the caller should retry after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"writer queue is full; retry after {retry_after:.0f}s")
        self.retry_after = retry_after


class WriterStopped(Exception):
    """The writer is shutting down and takes no new rows."""


@dataclass
class _Pending:
    rows: EventRows
    future: Future[None]


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
        self._inserter = Inserter(store, metrics, recent_ids)
        self._queue: deque[_Pending] = deque()
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._stopping = False
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

    def submit(self, rows: EventRows) -> Future[None]:
        """Queue rows for the next insert; the future resolves once they are durable."""
        future: Future[None] = Future()
        if len(rows) == 0:
            future.set_result(None)
            return future
        with self._cond:
            if self._stopping:
                raise WriterStopped("the server is shutting down")
            if self._pending_rows and self._pending_rows + len(rows) > self._max_pending_rows:
                raise Overloaded(retry_after=1.0)
            self._queue.append(_Pending(rows, future))
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
        if self._linger_s and not self._stopping:
            time.sleep(self._linger_s)
        with self._cond:
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
        return batch

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
