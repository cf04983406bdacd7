"""Dead letters: where invalid messages go, and the limit that stops a bad deploy.

A dead letter's value says everything: `{"reason", "error", "topic", "partition", "offset",
"index", "original", "original_bytes", "truncated"}`, the original as text, cut to a
bound: the whole message, or for one event of an array message that event (`index` is its
place in the array, else null). Its record headers say the same in brief (`kept.reason`,
`kept.origin.topic`, `kept.origin.partition`, `kept.origin.offset`, `kept.origin.index`
for an event of an array, `kept.error`), so tools can route and count dead letters
without parsing values; its key is the original's.

`InvalidShare` watches a sliding window of events: when too many are invalid, something
upstream is broken, and routing all traffic to the dead-letter topic would only hide it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kept_ingest.consumer.decode import Invalid
from kept_wire.kafka import close_producer, discard_producer

Headers = list[tuple[str, bytes]]
"""Record headers as kafka-python takes them."""
ERROR_HEADER_MAX_BYTES = 1024
"""The `kept.error` header is cut here (whole in the value)."""


def dead_letter(invalid: Invalid, max_original_bytes: int) -> bytes:
    """The dead-letter message value for an invalid message or event (a pure function)."""
    message = invalid.message
    original = invalid.original
    return json.dumps(
        {
            "reason": invalid.reason,
            "error": invalid.error,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "index": invalid.index,
            "original": original[:max_original_bytes].decode("utf-8", errors="replace"),
            "original_bytes": len(original),
            "truncated": len(original) > max_original_bytes,
        },
        ensure_ascii=False,
    ).encode()


def dead_letter_headers(invalid: Invalid) -> Headers:
    """The dead letter's record headers for an invalid message (a pure function)."""
    message = invalid.message
    error = invalid.error.encode()[:ERROR_HEADER_MAX_BYTES]
    headers = [
        ("kept.reason", invalid.reason.encode()),
        ("kept.origin.topic", message.topic.encode()),
        ("kept.origin.partition", str(message.partition).encode()),
        ("kept.origin.offset", str(message.offset).encode()),
        # A character cut in two is dropped: the header stays valid UTF-8.
        ("kept.error", error.decode(errors="ignore").encode()),
    ]
    if invalid.index is not None:
        headers.insert(4, ("kept.origin.index", str(invalid.index).encode()))
    return headers


class TooManyInvalid(Exception):
    """The invalid share of recent events passed the limit; the consumer must stop."""


class InvalidShare:
    """The share of invalid events among the last `window` ones (a message that cannot be
    read at all counts as one)."""

    def __init__(self, window: int, max_share: float) -> None:
        self.window = window
        self.max_share = max_share
        self._recent: deque[bool] = deque(maxlen=window)
        self._invalid = 0

    @property
    def share(self) -> float:
        return self._invalid / len(self._recent) if self._recent else 0.0

    def record_valid(self, count: int) -> None:
        """Count `count` valid events (the common case: cheap for a whole message)."""
        if self._invalid == 0 and len(self._recent) == self.window:
            return  # a full window of valid events stays one
        if count >= self.window:
            self._recent.extend([False] * self.window)
            self._invalid = 0
            return
        for _ in range(count):
            self.record(False)

    def record(self, invalid: bool) -> None:
        """Count one event; raises TooManyInvalid once a full window is over the limit."""
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
                f"{self._invalid} of the last {self.window} events "
                f"({self.share:.0%}) were invalid, more than the limit of {self.max_share:.0%}"
            )


class DeadLetters:
    """Produces dead letters and waits for them before offsets are committed.

    `make_producer` makes the producer now, and again after a flush failed: the failed
    producer is discarded (kept_wire.kafka.discard_producer says why).
    """

    def __init__(
        self,
        make_producer: Callable[[], Any],
        topic: str,
        max_original_bytes: int,
        timeout: float,
    ) -> None:
        self._make_producer = make_producer
        self.producer: Any = make_producer()
        self.topic = topic
        self._max_original = max_original_bytes
        self._timeout = timeout
        self._letters: list[_Letter] = []

    def __len__(self) -> int:
        return len(self._letters)

    def send(self, invalid: Invalid) -> None:
        """Produce the dead letter of `invalid` (keyed like the original message)."""
        letter = _Letter(
            dead_letter(invalid, self._max_original),
            invalid.message.key,
            dead_letter_headers(invalid),
        )
        # What fails here, flush produces again (and raises if that fails too).
        with contextlib.suppress(Exception):
            letter.future = self._produce(letter)
        self._letters.append(letter)

    def flush(self) -> None:
        """Wait until every dead letter is acknowledged; raises when one is not.

        The letters not acknowledged are produced again, by a new producer, on the next
        flush; a repeat in the dead-letter topic is harmless, a lost letter is not.
        """
        deadline = time.monotonic() + self._timeout
        try:
            for letter in self._letters:
                if letter.future is None:
                    letter.future = self._produce(letter)
            for letter in self._letters:
                letter.future.get(timeout=max(deadline - time.monotonic(), 0.001))
        except Exception:
            self._letters = [
                _Letter(x.value, x.key, x.headers)
                for x in self._letters
                if x.future is None or not x.future.succeeded()
            ]
            self.discard()
            raise
        self._letters = []

    def discard(self) -> None:
        """Close the producer at once (a new one is made when needed)."""
        producer, self.producer = self.producer, None
        if producer is not None:
            discard_producer(producer)

    def close(self) -> None:
        """Deliver what the producer holds (within the timeout) and close it."""
        producer, self.producer = self.producer, None
        if producer is not None:
            close_producer(producer, self._timeout)

    def _produce(self, letter: _Letter) -> Any:
        if self.producer is None:
            self.producer = self._make_producer()
        return self.producer.send(
            self.topic, value=letter.value, key=letter.key, headers=letter.headers
        )


@dataclass
class _Letter:
    """A dead letter, and the future of its produce (None: to be produced again)."""

    value: bytes
    key: bytes | None
    headers: Headers
    future: Any = None
