"""Dead letters: where invalid messages go, and the limit that stops a bad deploy.

Kafka 0.9 has no record headers, so a dead letter carries everything in its value:
`{"reason", "error", "topic", "partition", "offset", "original"}`, with the original
value as text, cut to a bound. `InvalidShare` watches a sliding window of messages:
when too many are invalid, something upstream is broken, and routing all traffic to the
dead-letter topic would only hide it.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from kept_ingest.consumer.decode import Invalid
from kept_wire.kafka import close_producer


def dead_letter(invalid: Invalid, max_original_bytes: int) -> bytes:
    """The dead-letter message value for an invalid message (a pure function)."""
    message = invalid.message
    original = message.value or b""
    return json.dumps(
        {
            "reason": invalid.reason,
            "error": invalid.error,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "original": original[:max_original_bytes].decode("utf-8", errors="replace"),
            "original_bytes": len(original),
            "truncated": len(original) > max_original_bytes,
        },
        ensure_ascii=False,
    ).encode()


class TooManyInvalid(Exception):
    """The invalid share of recent messages passed the limit; the consumer must stop."""


class InvalidShare:
    """The share of invalid messages among the last `window` ones."""

    def __init__(self, window: int, max_share: float) -> None:
        self.window = window
        self.max_share = max_share
        self._recent: deque[bool] = deque(maxlen=window)
        self._invalid = 0

    @property
    def share(self) -> float:
        return self._invalid / len(self._recent) if self._recent else 0.0

    def record(self, invalid: bool) -> None:
        """Count one message; raises TooManyInvalid once a full window is over the limit."""
        recent = self._recent
        full = len(recent) == self.window
        if full and recent[0]:
            self._invalid -= 1
        recent.append(invalid)
        if not invalid and full:
            return  # the share did not grow (the common case, kept cheap)
        self._invalid += invalid
        if len(recent) == self.window and self.share > self.max_share:
            raise TooManyInvalid(
                f"{self._invalid} of the last {self.window} messages "
                f"({self.share:.0%}) were invalid, more than the limit of {self.max_share:.0%}"
            )


class DeadLetters:
    """Produces dead letters and waits for them before offsets are committed."""

    def __init__(self, producer: Any, topic: str, max_original_bytes: int, timeout: float) -> None:
        self._producer = producer
        self.topic = topic
        self._max_original = max_original_bytes
        self._timeout = timeout
        # (value, key, future or None when it must be produced again)
        self._letters: list[tuple[bytes, bytes | None, Any]] = []

    def __len__(self) -> int:
        return len(self._letters)

    def send(self, invalid: Invalid) -> None:
        """Produce the dead letter of `invalid` (keyed like the original message)."""
        value, key = dead_letter(invalid, self._max_original), invalid.message.key
        try:
            future = self._producer.send(self.topic, value=value, key=key)
        except Exception:
            future = None  # flush produces it again, and raises if that fails too
        self._letters.append((value, key, future))

    def flush(self) -> None:
        """Wait until every dead letter is acknowledged; raises when one is not.

        A failed letter is produced again on the next flush; a repeat in the dead-letter
        topic is harmless, a lost one is not.
        """
        deadline = time.monotonic() + self._timeout
        for i, (value, key, future) in enumerate(self._letters):
            try:
                if future is None:
                    future = self._producer.send(self.topic, value=value, key=key)
                    self._letters[i] = (value, key, future)
                future.get(timeout=max(deadline - time.monotonic(), 0.001))
            except Exception:
                self._letters[i] = (value, key, None)
                raise
        self._letters = []

    def close(self) -> None:
        close_producer(self._producer, self._timeout)
