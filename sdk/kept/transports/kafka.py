"""The Kafka transport: ``kafka://host:9092,host2:9092?topic=kept.events``.

A batch travels as few messages as fit the broker's message limit: each value is a JSON
array of events (one event alone is sent as its object), each event with ``project``
since Kafka has no API key to say it. Messages have no key: the producer spreads them
over the partitions. (One message per event, keyed by generation, cost the consumer more
per event in the client library's record parsing than validating the event itself.)
``send`` returns SENT only once the brokers acknowledged every message (``acks=all``).

kafka-python is imported only when a kafka:// endpoint is used, and the producer is made
on the first send, once per process: a forked child makes its own. It is idempotent and
compresses with zstd unless the URL says otherwise (``?compression=lz4|gzip|none``);
brokers older than Kafka 2.1 are refused (the batch is dropped as FATAL, the log says
which version was found), and so is a codec whose library is missing. After a transient
failure the producer is replaced (kept_wire.kafka.discard_producer says why).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from kept_wire.encoding import pack_events
from kept_wire.kafka import (
    KafkaEndpoint,
    UnsupportedKafka,
    close_producer,
    discard_producer,
    make_producer,
)

from .base import Outcome, Rejection, SendResult


class KafkaTransport:
    """Produces each batch to Kafka and waits for every acknowledgement."""

    def __init__(self, endpoint: KafkaEndpoint, timeout: float = 10.0) -> None:
        import kafka  # noqa: F401 - fail now if missing

        self.endpoint = endpoint
        self._timeout = timeout
        self._producer: Any = None
        self._pid = 0

    @classmethod
    def from_endpoint(cls, url: str, timeout: float = 10.0) -> KafkaTransport:
        """A transport for a kafka:// URL; ValueError when the URL is malformed."""
        return cls(KafkaEndpoint.parse(url), timeout)

    def send(self, events: Sequence[bytes]) -> SendResult:
        """Produce ``events`` and wait until the brokers acknowledged all of them."""
        limit = self.endpoint.max_message_bytes
        oversized = tuple(
            Rejection(i, "", f"the event is {len(e)} bytes; Kafka takes at most {limit}")
            for i, e in enumerate(events)
            if len(e) > limit
        )
        if oversized:  # refused before anything is sent, so the rest can go as one batch
            return SendResult(Outcome.REJECTED, rejections=oversized, detail="event too large")
        deadline = time.monotonic() + self._timeout
        try:
            producer = self._get_producer()
            topic = self.endpoint.topic
            futures = [producer.send(topic, value=m) for m in pack_events(events, limit)]
            producer.flush(timeout=max(deadline - time.monotonic(), 0.001))
            for future in futures:
                future.get(timeout=max(deadline - time.monotonic(), 0.001))
        except Exception as exc:
            result = self._failure(exc)
            if result.outcome is Outcome.RETRY and self._pid == os.getpid():
                producer, self._producer = self._producer, None
                if producer is not None:
                    discard_producer(producer)
            return result
        return SendResult(Outcome.SENT)

    def reset(self) -> None:
        """In a forked child: forget the parent's producer (its threads are not here)."""
        self._producer = None
        self._pid = 0

    def close(self) -> None:
        """Send what the producer holds (within the timeout) and disconnect."""
        producer, self._producer = self._producer, None
        if producer is not None and self._pid == os.getpid():
            close_producer(producer, self._timeout)

    def _get_producer(self) -> Any:
        if self._producer is not None and self._pid == os.getpid():
            return self._producer
        self._producer = make_producer(self.endpoint, self._timeout)
        self._pid = os.getpid()
        return self._producer

    def _failure(self, exc: Exception) -> SendResult:
        from kafka import errors

        if isinstance(exc, UnsupportedKafka):
            return SendResult(Outcome.FATAL, detail=str(exc))
        detail = f"Kafka: {type(exc).__name__}"
        if isinstance(exc, (errors.MessageSizeTooLargeError, errors.RecordListTooLargeError)):
            return SendResult(Outcome.TOO_LARGE, detail=detail)
        if isinstance(
            exc,
            (
                errors.TopicAuthorizationFailedError,
                errors.ClusterAuthorizationFailedError,
                errors.SaslAuthenticationFailedError,
            ),
        ):
            return SendResult(Outcome.UNAUTHORIZED, detail=detail)
        if isinstance(exc, (errors.InvalidTopicError, errors.UnsupportedVersionError)):
            return SendResult(Outcome.FATAL, detail=detail)
        # Anything else may pass: broker down, leader moving, timeouts. The producer
        # reconnects by itself; records of this attempt that it still delivers are repeats
        # the server stores once.
        return SendResult(Outcome.RETRY, detail=detail)
