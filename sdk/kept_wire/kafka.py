"""Kafka plumbing that the SDK's transport and the server share: endpoints, producers and
the oldest broker kept works with.

kafka-python is imported only inside the functions that need it, so importing this
module costs nothing and needs nothing but the standard library; the SDK takes
kafka-python from the ``kafka`` extra, the server from ``server``.

kafka-python asks the brokers their version (ApiVersions) when it connects; nothing is
configured. kept needs Kafka 2.1 or newer (:data:`MIN_KAFKA_VERSION`) and refuses older
brokers with a message that says so, rather than quietly doing less.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_TOPIC = "kept.events"
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
"""A broker's default ``message.max.bytes`` is about 1 MB; larger events are refused."""
MIN_KAFKA_VERSION = (2, 1)
"""The oldest Kafka kept works with: what it always uses, the idempotent producer and
record headers (0.11) and zstd (2.1), is all there from 2.1 on. Tested: 4.1.1."""
CODECS = ("zstd", "lz4", "gzip", "none")
"""What producers may compress with; the server's consumer reads them all."""
COMPRESSIONS = ("auto", *CODECS)
"""``auto`` is zstd (gzip where the ``zstandard`` package is missing)."""
CODEC_PACKAGES = {"zstd": "zstandard", "lz4": "lz4"}
"""The Python package kafka-python needs for a codec (gzip is in the standard library)."""
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"
"""Kafka's own rule for topic names."""
_TOPIC = re.compile(TOPIC_PATTERN)


class UnsupportedKafka(Exception):
    """The brokers are older than kept supports, or a codec's library is missing."""


def version_text(version: Sequence[int]) -> str:
    """``(2, 1)`` → ``"2.1"``."""
    return ".".join(map(str, version))


def check_kafka_version(version: Sequence[int]) -> None:
    """Raise UnsupportedKafka when `version` (as kafka-python negotiated it) is too old."""
    if tuple(version) < MIN_KAFKA_VERSION:
        raise UnsupportedKafka(
            f"the Kafka brokers speak version {version_text(version)}; kept needs Kafka "
            f"{version_text(MIN_KAFKA_VERSION)} or newer (idempotent producer, record headers, "
            "zstd)"
        )


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


def parse_compression(value: str) -> str:
    """A compression setting, checked: one of COMPRESSIONS (any case)."""
    compression = value.strip().lower()
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)} (got {value!r})")
    return compression


@dataclass(frozen=True)
class KafkaEndpoint:
    """What a kafka:// URL says: servers, topic and producer options."""

    bootstrap: tuple[str, ...]
    topic: str = DEFAULT_TOPIC
    compression: str = "auto"
    linger_ms: int = 5
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    @classmethod
    def parse(cls, url: str) -> KafkaEndpoint:
        """Parse ``kafka://h:9092,h2:9092?topic=&compression=&linger_ms=&max_message_bytes=``.

        ``KEPT_KAFKA_TOPIC`` and ``KEPT_KAFKA_COMPRESSION`` apply when the URL does not say;
        they are the server's variables too.
        """
        parts = urlsplit(url.strip())
        if parts.scheme.lower() != "kafka" or not parts.netloc:
            raise ValueError("a Kafka endpoint looks like kafka://host:9092,host2:9092")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"topic", "compression", "linger_ms", "max_message_bytes"}
        if unknown:
            raise ValueError(f"unknown kafka:// option(s): {', '.join(sorted(unknown))}")
        topic = query.get("topic") or os.environ.get("KEPT_KAFKA_TOPIC") or DEFAULT_TOPIC
        if not _TOPIC.match(topic):
            raise ValueError("a Kafka topic is 1-249 letters, digits, '.', '_' or '-'")
        compression = parse_compression(
            query.get("compression") or os.environ.get("KEPT_KAFKA_COMPRESSION") or "auto"
        )
        try:
            linger_ms = int(query.get("linger_ms", "5"))
            max_bytes = int(query.get("max_message_bytes", str(DEFAULT_MAX_MESSAGE_BYTES)))
        except ValueError:
            raise ValueError("linger_ms and max_message_bytes must be integers") from None
        return cls(
            bootstrap=parse_bootstrap(parts.netloc),
            topic=topic,
            compression=compression,
            linger_ms=max(linger_ms, 0),
            max_message_bytes=max(max_bytes, 1024),
        )


def choose_codec(requested: str) -> str | None:
    """The kafka-python ``compression_type`` for a compression setting.

    ``auto`` is zstd (smaller than gzip, about as fast as lz4), or gzip where the
    ``zstandard`` package is not installed. A codec asked for by name whose library is
    missing raises UnsupportedKafka, naming the package to install.
    """
    from kafka.codec import has_lz4, has_zstd

    available = {"zstd": has_zstd(), "lz4": has_lz4(), "gzip": True, "none": True}
    requested = parse_compression(requested)
    if requested == "auto":
        requested = "zstd" if available["zstd"] else "gzip"
    if not available[requested]:
        package = CODEC_PACKAGES[requested]
        raise UnsupportedKafka(
            f"compression {requested} needs the {package} package: pip install {package}"
        )
    return None if requested == "none" else requested


def producer_config(endpoint: KafkaEndpoint, timeout: float) -> dict[str, Any]:
    """KafkaProducer settings: idempotent, ``acks=all``, bounded by `timeout`.

    Idempotence lets the producer retry within the timeout without repeating or
    reordering messages of a partition; what still fails is the worker's to resend.
    """
    timeout_ms = max(int(timeout * 1000), 1000)
    return {
        "bootstrap_servers": list(endpoint.bootstrap),
        "client_id": "kept",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": endpoint.linger_ms,
        "batch_size": 256 * 1024,
        "compression_type": choose_codec(endpoint.compression),
        "bootstrap_timeout_ms": timeout_ms,
        "max_block_ms": timeout_ms,
        "request_timeout_ms": timeout_ms,
        "delivery_timeout_ms": timeout_ms + endpoint.linger_ms + 1000,
        "max_request_size": max(endpoint.max_message_bytes + 1024, 1024 * 1024),
    }


def negotiated_version(client: Any) -> tuple[int, ...]:
    """The brokers' version as a kafka-python producer or consumer found it.

    Nothing configures it: the client asks (ApiVersions) while it bootstraps, in its
    constructor, and publishes the answer in its config under the name of the setting
    that could have pinned it.
    """
    return tuple(client.config["api_version"])


def broker_version(bootstrap: Sequence[str], timeout: float) -> tuple[int, ...]:
    """The version of the brokers at `bootstrap`, from a client made only to ask.

    A plain producer (neither idempotent nor compressing) asks and says the version
    whatever it is; a producer as kept configures it refuses an old broker with errors
    that do not. Not a consumer: kafka-python 3.0's consumer starts its network thread
    before it bootstraps and leaves it running when the brokers cannot be reached, one
    more thread per attempt while they are down.
    """
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
        return negotiated_version(probe)
    finally:
        close_producer(probe, 0)


def make_producer(
    endpoint: KafkaEndpoint, timeout: float, version: Sequence[int] | None = None
) -> Any:
    """A KafkaProducer for `endpoint` (kafka-python has no type stubs: Any).

    `version` is the brokers' version when the caller knows it already; else they are
    asked. Raises UnsupportedKafka when they are too old or the codec's library is
    missing, and kafka-python's errors when the brokers cannot be reached.
    """
    from kafka import KafkaProducer

    config = producer_config(endpoint, timeout)
    check_kafka_version(version or broker_version(endpoint.bootstrap, timeout))
    return KafkaProducer(**config)


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


def discard_producer(producer: Any) -> None:
    """Close a producer that failed, at once; its owner makes a new one for what follows.

    kafka-python 3.0's idempotent producer does not always recover by itself: when a
    batch it already sent expires unacknowledged (a broker died mid-request), it drops
    its producer id to be safe and then never asks for a new one (it asks only from its
    initial state), so every later send times out. A new producer gets a new id. What
    the old one still held is resent by the caller; a repeat is stored once.
    """
    close_producer(producer, 0)
