"""Kafka plumbing that the SDK's transport and the server share: endpoints, producers.

kafka-python is imported only inside the functions that need it, so importing this
module costs nothing and needs nothing but the standard library; the SDK takes
kafka-python from the ``kafka`` extra, the server from ``server``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_TOPIC = "kept.events"
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
"""A broker's default ``message.max.bytes`` is about 1 MB; larger events are refused."""
COMPRESSIONS = ("auto", "none", "gzip", "snappy", "lz4", "zstd")
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"
"""Kafka's own rule for topic names."""
_TOPIC = re.compile(TOPIC_PATTERN)
_GENERATION_ID = re.compile(rb'"generation_id":"((?:[^"\\]|\\.)*)"')


def parse_api_version(value: str | None) -> tuple[int, ...] | None:
    """``"0.9"`` → ``(0, 9)``; empty or ``"auto"`` → None (ask the broker)."""
    text = (value or "").strip().lower()
    if text in ("", "auto"):
        return None
    try:
        version = tuple(int(part) for part in text.split("."))
    except ValueError:
        raise ValueError(
            f"api_version must look like 0.9 or 3.7, or be auto (got {value!r})"
        ) from None
    if not 1 <= len(version) <= 3:
        raise ValueError(f"api_version must look like 0.9 or 3.7 (got {value!r})")
    return version


def parse_bootstrap(servers: str) -> tuple[str, ...]:
    """``host:port,host2:port`` (a kafka:// prefix is allowed) → the servers, checked."""
    text = servers.strip()
    if "://" in text:
        text = text.partition("://")[2]
    found = []
    for server in text.split("/")[0].split("?")[0].split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep:
            host, port = server.strip(), "9092"
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("Kafka servers must look like host:9092,host2:9092")
        found.append(f"{host}:{port}")
    return tuple(found)


@dataclass(frozen=True)
class KafkaEndpoint:
    """What a kafka:// URL says: servers, topic and producer options."""

    bootstrap: tuple[str, ...]
    topic: str = DEFAULT_TOPIC
    api_version: tuple[int, ...] | None = None
    compression: str = "auto"
    linger_ms: int = 5
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    @classmethod
    def parse(cls, url: str) -> KafkaEndpoint:
        """Parse ``kafka://h:9092,h2:9092?topic=&api_version=&compression=&linger_ms=``.

        ``KEPT_KAFKA_TOPIC`` and ``KEPT_KAFKA_API_VERSION`` apply when the URL does not
        say; they are the server's variables too.
        """
        parts = urlsplit(url.strip())
        if parts.scheme.lower() != "kafka" or not parts.netloc:
            raise ValueError("a Kafka endpoint looks like kafka://host:9092,host2:9092")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {
            "topic",
            "api_version",
            "compression",
            "linger_ms",
            "max_message_bytes",
        }
        if unknown:
            raise ValueError(f"unknown kafka:// option(s): {', '.join(sorted(unknown))}")
        topic = query.get("topic") or os.environ.get("KEPT_KAFKA_TOPIC") or DEFAULT_TOPIC
        if not _TOPIC.match(topic):
            raise ValueError("a Kafka topic is 1-249 letters, digits, '.', '_' or '-'")
        compression = query.get("compression", "auto").lower()
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")
        try:
            linger_ms = int(query.get("linger_ms", "5"))
            max_bytes = int(query.get("max_message_bytes", str(DEFAULT_MAX_MESSAGE_BYTES)))
        except ValueError:
            raise ValueError("linger_ms and max_message_bytes must be integers") from None
        return cls(
            bootstrap=parse_bootstrap(parts.netloc),
            topic=topic,
            api_version=parse_api_version(
                query.get("api_version", os.environ.get("KEPT_KAFKA_API_VERSION"))
            ),
            compression=compression,
            linger_ms=max(linger_ms, 0),
            max_message_bytes=max(max_bytes, 1024),
        )


def choose_compression(requested: str, api_version: tuple[int, ...]) -> str | None:
    """The codec to use: as requested, or for ``auto`` the best the broker and the
    installed libraries both support (gzip always works)."""
    if requested == "none":
        return None
    if requested != "auto":
        return requested
    from kafka.codec import has_lz4, has_zstd

    if api_version >= (2, 1) and has_zstd():
        return "zstd"
    if api_version >= (0, 10) and has_lz4():
        return "lz4"
    return "gzip"


def generation_key(event: bytes) -> bytes | None:
    """The ``generation_id`` of an encoded event, as the message key (UTF-8)."""
    # encode_event puts generation_id near the start: no need to parse a large event.
    match = _GENERATION_ID.search(event, 0, 4096)
    if match is not None:
        raw = match.group(1)
        if b"\\" not in raw:
            return raw
        value: object = json.loads(b'"' + raw + b'"')
    else:
        try:
            value = json.loads(event).get("generation_id")
        except (ValueError, AttributeError):
            return None
    return value.encode() if isinstance(value, str) else None


def producer_config(
    endpoint: KafkaEndpoint, api_version: tuple[int, ...], timeout: float
) -> dict[str, Any]:
    """KafkaProducer settings for ``acks=all`` delivery that the worker can retry."""
    timeout_ms = max(int(timeout * 1000), 1000)
    idempotent = api_version >= (0, 11)
    config: dict[str, Any] = {
        "bootstrap_servers": list(endpoint.bootstrap),
        "client_id": "kept",
        "api_version": api_version,
        "acks": "all",
        "linger_ms": endpoint.linger_ms,
        "batch_size": 256 * 1024,
        "compression_type": choose_compression(endpoint.compression, api_version),
        "enable_idempotence": idempotent,
        "max_block_ms": timeout_ms,
        "request_timeout_ms": timeout_ms,
        "delivery_timeout_ms": timeout_ms + endpoint.linger_ms + 1000,
        "max_request_size": max(endpoint.max_message_bytes + 1024, 1024 * 1024),
    }
    if not idempotent:
        # Without idempotence a producer's own retry may reorder or repeat messages; the
        # worker resends the whole batch instead, in order.
        config["retries"] = 0
    return config


def probe_version(bootstrap: Sequence[str], timeout: float) -> tuple[int, ...]:
    """Ask the brokers which protocol version they speak (needs a 0.10+ broker)."""
    from kafka import KafkaProducer

    timeout_ms = max(int(timeout * 1000), 1000)
    probe = KafkaProducer(
        bootstrap_servers=list(bootstrap),
        client_id="kept-probe",
        enable_idempotence=False,
        bootstrap_timeout_ms=timeout_ms,
        max_block_ms=timeout_ms,
    )
    try:
        version: tuple[int, ...] = tuple(probe.config["api_version"])
    finally:
        close_producer(probe, 0)
    return version


def make_producer(endpoint: KafkaEndpoint, api_version: tuple[int, ...], timeout: float) -> Any:
    """A KafkaProducer for ``endpoint`` (kafka-python has no type stubs: Any)."""
    from kafka import KafkaProducer

    return KafkaProducer(**producer_config(endpoint, api_version, timeout))


def close_producer(producer: Any, timeout: float) -> None:
    """Close a KafkaProducer: deliver what it holds within `timeout`, then stop it.

    kafka-python 3.0's `close` gives up before stopping the producer's thread when records
    are still pending at the timeout (the broker is down): stop it then without them, or
    the thread lives on and the producer's finaliser raises.
    """
    try:
        producer.close(timeout=timeout)
    except Exception:
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
        producer._closed = True  # nothing left to close; keeps __del__ from trying again
