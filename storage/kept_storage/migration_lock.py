"""One migrator at a time, whatever the number of processes that start at once.

ClickHouse has no transactions and no row locks, but an insert deduplication token gives
an atomic "first insert wins": the server keeps the first block carrying a token and
silently drops the others (`non_replicated_deduplication_window` on a MergeTree table;
through Keeper on a replicated one). So the lock is a sequence of epochs: taking epoch
N+1 inserts a `taken` row with the token `schema_migrations_lock:N+1`, and the process
that reads its own row back holds the lock. The holder says `alive` every `beat_s`
while it works and `released` at the end; a holder silent for `stale_s` (by the server's
clock) is presumed dead, and the next process takes the following epoch over. Before
each statement the holder checks that its epoch is still the newest (`check`), so a
holder presumed dead by mistake stops at its next statement.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kept_storage.clickhouse import Store, utc
from kept_storage.errors import StorageError

log = logging.getLogger("kept.storage")

LOCK_TABLE = "schema_migrations_lock"
LOCK_DDL = f"""CREATE TABLE IF NOT EXISTS {LOCK_TABLE}
(
    epoch  UInt64,
    event  Enum8('taken' = 1, 'alive' = 2, 'released' = 3),
    holder String,
    at     DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (epoch, at)
SETTINGS non_replicated_deduplication_window = 1000"""

_STATE = f"""
SELECT epoch, argMinIf(holder, at, event = 'taken'), max(at), max(event = 'released'),
    now64(3, 'UTC')
FROM {LOCK_TABLE} GROUP BY epoch ORDER BY epoch DESC LIMIT 1
"""


@dataclass(frozen=True)
class LockTiming:
    """How long to wait for another migrator, and when a silent one counts as dead."""

    wait_s: float = 900.0
    stale_s: float = 30.0
    beat_s: float = 5.0
    poll_s: float = 0.5


DEFAULT_TIMING = LockTiming()


class MigrationBusy(StorageError):
    """Another process kept applying migrations for longer than we would wait."""


class LockLost(StorageError):
    """A newer epoch was taken: another process presumed this one dead."""


class MigrationLock:
    """The migration lock of one store, as one process sees it."""

    def __init__(self, store: Store, timing: LockTiming) -> None:
        self._store = store
        self._timing = timing
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.epoch = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock meanwhile (waiting for it first); released however the body ends."""
        self.epoch = self._acquire()
        stop = threading.Event()
        beats = threading.Thread(target=self._beat, args=(stop,), name="kept-migrate-lock")
        beats.start()
        try:
            yield
        finally:
            stop.set()
            beats.join()
            try:
                self._mark("released")
            except StorageError:  # the lock goes stale and is taken over after stale_s
                log.warning("could not release the migration lock", exc_info=True)

    def check(self) -> None:
        """Raise LockLost when another process has taken a newer epoch."""
        newest = self._store.scalar(f"SELECT max(epoch) FROM {LOCK_TABLE}")
        # Lower than ours: a replica that has not fetched our claim yet, not a new holder.
        if int(newest or 0) > self.epoch:
            raise LockLost(
                f"another process took the migration lock over (epoch {newest}, ours "
                f"{self.epoch}): this one was silent for over {self._timing.stale_s:.0f}s"
            )

    def _acquire(self) -> int:
        deadline = time.monotonic() + self._timing.wait_s
        while True:
            rows = self._store.rows(_STATE)
            if not rows:
                epoch = 1
            else:
                last, holder, last_seen, released, now = rows[0]
                silent_s = (utc(now) - utc(last_seen)).total_seconds()
                if released:
                    epoch = int(last) + 1
                elif silent_s > self._timing.stale_s:
                    log.warning(
                        "migration lock holder %s silent for %.0fs: taking over", holder, silent_s
                    )
                    epoch = int(last) + 1
                elif time.monotonic() > deadline:
                    raise MigrationBusy(
                        f"{holder} has been applying migrations for a while; waited "
                        f"{self._timing.wait_s:.0f}s. Try again once it has finished."
                    )
                else:
                    time.sleep(self._timing.poll_s)
                    continue
            self._store.command(
                f"INSERT INTO {LOCK_TABLE} (epoch, event, holder, at) "
                "SELECT {e:UInt64}, 'taken', {h:String}, now64(3, 'UTC')",
                {"e": epoch, "h": self.holder},
                settings={"insert_deduplication_token": f"{LOCK_TABLE}:{epoch}"},
            )
            # Should deduplication ever let two claims in, every reader picks the same one.
            winner = self._store.scalar(
                f"SELECT holder FROM {LOCK_TABLE} WHERE epoch = {{e:UInt64}} "
                "AND event = 'taken' ORDER BY at, holder LIMIT 1",
                {"e": epoch},
            )
            if winner == self.holder:
                return epoch

    def _mark(self, event: str) -> None:
        # INSERT ... SELECT now64(): each block differs, so none is taken for a repeat.
        self._store.command(
            f"INSERT INTO {LOCK_TABLE} (epoch, event, holder, at) "
            "SELECT {e:UInt64}, {ev:String}, {h:String}, now64(3, 'UTC')",
            {"e": self.epoch, "ev": event, "h": self.holder},
        )

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self._timing.beat_s):
            try:
                self._mark("alive")
            except StorageError:
                log.warning("migration lock heartbeat failed", exc_info=True)
