"""The batch step: collect decoded messages until an event count, byte or age limit.

Pure apart from an injectable clock. A batch remembers, per partition, the offset to
commit once it is stored: one past its last message, whatever its events were (invalid
ones go to the dead-letter topic, which is flushed before the commit).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kept_ingest.consumer.decode import Message
from kept_ingest.fast_contract import AnyEvent

Partition = tuple[str, int]


@dataclass
class Batch:
    """Events to insert, and the offsets their storage makes committable."""

    events: list[AnyEvent] = field(default_factory=list)
    offsets: dict[Partition, int] = field(default_factory=dict)
    messages: int = 0
    size: int = 0
    started: float = 0.0


class Batcher:
    """Accumulates messages; `ready()` says when the batch should be stored."""

    def __init__(
        self,
        max_events: int,
        max_bytes: int,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._clock = clock
        self._batch = Batch()

    def __len__(self) -> int:
        return self._batch.messages

    def add(self, message: Message, events: Sequence[AnyEvent]) -> bool:
        """Add a consumed message with its valid events (none when all were dead-lettered).

        Returns True when the batch is full by events or bytes (cheap enough to ask after
        every message; `ready()` also asks the clock). A message is never split: a batch
        may pass the event limit by the events of its last message.
        """
        batch = self._batch
        if batch.messages == 0:
            batch.started = self._clock()
        batch.events.extend(events)
        batch.offsets[(message.topic, message.partition)] = message.offset + 1
        batch.messages += 1
        batch.size += message.size
        return self._full(batch)

    def _full(self, batch: Batch) -> bool:
        return max(len(batch.events), batch.messages) >= self.max_events or (
            batch.size >= self.max_bytes
        )

    def ready(self) -> bool:
        """True when the batch is full, or its oldest message has waited long enough."""
        batch = self._batch
        return batch.messages > 0 and (
            self._full(batch) or self._clock() - batch.started >= self.max_age_s
        )

    def time_left(self) -> float:
        """Seconds until the batch is due by age (the age limit when it is empty)."""
        if self._batch.messages == 0:
            return self.max_age_s
        return max(0.0, self.max_age_s - (self._clock() - self._batch.started))

    def take(self) -> Batch:
        """The batch so far; the batcher starts a new one."""
        batch, self._batch = self._batch, Batch()
        return batch

    def drop(self, partitions: set[Partition]) -> None:
        """Forget the offsets of partitions this consumer lost (their new owner reads them)."""
        for partition in partitions:
            self._batch.offsets.pop(partition, None)
