"""Where the HTTP intake puts accepted events: straight into ClickHouse, or into Kafka.

Both sinks have the same `async write(events, project)`, which returns once the events
are durable (inserted, or acknowledged by every in-sync Kafka replica) and raises when
they are not; the intake answers 202 or 503 accordingly.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from kept_ingest.contract import Event
from kept_ingest.kafka_settings import KafkaSettings
from kept_wire.kafka import KafkaEndpoint, close_producer, make_producer, probe_version


class EventSink(Protocol):
    """Makes a request's validated events durable."""

    async def write(self, events: Sequence[Event], project: str) -> None:
        """Return once `events` of `project` are durable; raise when they are not."""
        ...


class SinkUnavailable(Exception):
    """The sink did not take the events; the client should retry later."""


def kafka_value(event: Event, project: str) -> bytes:
    """The event's JSON as a Kafka message value: the key's project travels with it."""
    body = event.model_dump_json(exclude_none=True).encode()
    if event.project is None:
        # The project name matches PROJECT_PATTERN: nothing in it needs escaping.
        body = b'{"project":"' + project.encode() + b'",' + body[1:]
    return body


class KafkaSink:
    """Produces events to the event topic, keyed by generation id.

    The producer is thread-safe: requests produce from worker threads concurrently and
    each waits only for its own messages' acknowledgements.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._endpoint = KafkaEndpoint(
            bootstrap=tuple(settings.kafka_servers()),
            topic=settings.kafka_topic,
            api_version=settings.kafka_version(),
        )
        self._timeout = settings.kafka_timeout_s
        self._producer: Any = None
        self._lock = threading.Lock()

    async def write(self, events: Sequence[Event], project: str) -> None:
        """Produce `events` and wait for every acknowledgement, off the event loop."""
        await asyncio.to_thread(self._produce, events, project)

    def close(self) -> None:
        """Deliver what is buffered (within the timeout) and disconnect."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            close_producer(producer, self._timeout)

    def _produce(self, events: Sequence[Event], project: str) -> None:
        deadline = time.monotonic() + self._timeout
        topic = self._endpoint.topic
        try:
            producer = self._get_producer()
            futures = [
                producer.send(topic, value=kafka_value(e, project), key=e.generation_id.encode())
                for e in events
            ]
            for future in futures:
                future.get(timeout=max(deadline - time.monotonic(), 0.001))
        except Exception as exc:
            raise SinkUnavailable(f"Kafka did not take the events ({type(exc).__name__})") from exc

    def _get_producer(self) -> Any:
        with self._lock:
            if self._producer is None:
                version = self._endpoint.api_version or probe_version(
                    self._endpoint.bootstrap, self._timeout
                )
                self._producer = make_producer(self._endpoint, version, self._timeout)
            return self._producer
