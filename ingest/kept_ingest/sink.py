"""Where the HTTP intake puts accepted events: straight into ClickHouse, or into Kafka.

Both sinks have the same `async write(events, project)`, which returns once the events
are durable (inserted, or acknowledged by every in-sync Kafka replica) and raises when
they are not; the intake answers 202 or 503 accordingly.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from kept_ingest.fast_contract import AnyEvent, event_json
from kept_ingest.kafka_settings import KafkaSettings
from kept_wire.encoding import pack_events
from kept_wire.kafka import (
    KafkaEndpoint,
    UnsupportedKafka,
    close_producer,
    discard_producer,
    make_producer,
)

log = logging.getLogger("kept.intake")


class EventSink(Protocol):
    """Makes a request's validated events durable."""

    async def write(self, events: Sequence[AnyEvent], project: str) -> None:
        """Return once `events` of `project` are durable; raise when they are not."""
        ...


class SinkUnavailable(Exception):
    """The sink did not take the events; the client should retry later."""


def kafka_value(event: AnyEvent, project: str) -> bytes:
    """The event's JSON as a Kafka message value: the key's project travels with it."""
    body = event_json(event)
    if event.project is None:
        # The project name matches PROJECT_PATTERN: nothing in it needs escaping.
        body = b'{"project":"' + project.encode() + b'",' + body[1:]
    return body


class KafkaSink:
    """Produces a request's events to the event topic, packed as the SDK packs them
    (kept_wire.encoding.pack_events: JSON arrays up to the message limit, no key).

    The producer is thread-safe: requests produce from worker threads concurrently and
    each waits only for its own messages' acknowledgements. It is made on the first
    request (and again after a failure to make it): brokers older than kept supports
    are refused then, with a 503 and an error in the log.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._endpoint = KafkaEndpoint(
            bootstrap=tuple(settings.kafka_servers()),
            topic=settings.kafka_topic,
            compression=settings.kafka_compression,
        )
        self._timeout = settings.kafka_timeout_s
        self._producer: Any = None
        self._lock = threading.Lock()
        self._refusal = ""

    async def write(self, events: Sequence[AnyEvent], project: str) -> None:
        """Produce `events` and wait for every acknowledgement, off the event loop."""
        await asyncio.to_thread(self._produce, events, project)

    def close(self) -> None:
        """Deliver what is buffered (within the timeout) and disconnect."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            close_producer(producer, self._timeout)

    def _produce(self, events: Sequence[AnyEvent], project: str) -> None:
        deadline = time.monotonic() + self._timeout
        topic = self._endpoint.topic
        producer = None
        try:
            producer = self._get_producer()
            values = [kafka_value(e, project) for e in events]
            limit = self._endpoint.max_message_bytes
            futures = [producer.send(topic, value=m) for m in pack_events(values, limit)]
            for future in futures:
                future.get(timeout=max(deadline - time.monotonic(), 0.001))
        except UnsupportedKafka as exc:
            if str(exc) != self._refusal:  # once, not per request
                self._refusal = str(exc)
                log.error("cannot produce to Kafka: %s", exc)
            raise SinkUnavailable(f"Kafka did not take the events ({exc})") from exc
        except Exception as exc:
            if producer is not None:
                self._discard(producer)
            raise SinkUnavailable(f"Kafka did not take the events ({type(exc).__name__})") from exc

    def _get_producer(self) -> Any:
        with self._lock:
            if self._producer is None:
                self._producer = make_producer(self._endpoint, self._timeout)
            return self._producer

    def _discard(self, producer: Any) -> None:
        """Replace a producer that failed (kept_wire.kafka.discard_producer says why).

        Requests still waiting on it fail too, and their clients retry; only the first
        request to see it fail replaces it.
        """
        with self._lock:
            if self._producer is not producer:
                return
            self._producer = None
        discard_producer(producer)
