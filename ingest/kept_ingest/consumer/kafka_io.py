"""kafka-python behind a small interface: poll, pause, commit, lag and dead letters.

The only module of the consumer that touches kafka-python (which has no type stubs),
so the pipeline reads in terms of `Message` and `(topic, partition)` pairs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kept_ingest.consumer.batching import Partition
from kept_ingest.consumer.deadletter import DeadLetters
from kept_ingest.consumer.decode import MAX_MESSAGE_BYTES, Message
from kept_ingest.kafka_settings import KafkaSettings
from kept_wire.kafka import (
    KafkaEndpoint,
    broker_version,
    check_kafka_version,
    make_producer,
)

log = logging.getLogger("kept.consumer")

MEMBERSHIP_CHECK_S = 5.0
"""How often a consumer checks that the group still counts it a member (_left_behind)."""

STALL_S = 20.0
"""A consumer that holds partitions with records waiting and gets none for this long is
replaced (see KafkaIO._stalled)."""


class _Listener:
    """Rebalance callbacks (registered as a kafka ConsumerRebalanceListener).

    kafka-python 3 calls them on its network thread, where nothing may block: they only
    log and forget positions. The pipeline commits only partitions it holds at the time.
    """

    def __init__(self, io: KafkaIO) -> None:
        self._io = io

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._io.revoked({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._io.assigned({(tp.topic, tp.partition) for tp in assigned})


class KafkaIO:
    """The group consumer of the event topic and the producer of the dead-letter topic.

    Raises UnsupportedKafka when the brokers are older than kept supports (that will not
    pass by retrying), kafka-python's errors when they cannot be reached.
    """

    def __init__(self, settings: KafkaSettings, max_poll_records: int) -> None:
        from kafka import ConsumerRebalanceListener

        ConsumerRebalanceListener.register(_Listener)
        servers = settings.kafka_servers()
        timeout = settings.kafka_timeout_s
        self._settings, self._servers = settings, servers
        self._max_poll_records = max_poll_records
        self._last_records = self._last_check = time.monotonic()
        self._last_membership_check = time.monotonic()
        self._positions: dict[Partition, int] = {}
        self._held: set[Partition] = set()
        self._broker_down = False
        # Asked first, and the dead-letter producer made, before the consumer: a consumer
        # that cannot reach the brokers leaks a thread (see broker_version).
        self.version = broker_version(servers, timeout)
        check_kafka_version(self.version)
        endpoint = KafkaEndpoint(
            bootstrap=tuple(servers),
            topic=settings.kafka_dlq_topic,
            compression=settings.kafka_compression,
        )
        version = self.version
        self.dead_letters = DeadLetters(
            lambda: make_producer(endpoint, timeout, version),
            settings.kafka_dlq_topic,
            settings.kafka_dlq_max_original_bytes,
            timeout,
        )
        self._consumer: Any = None
        try:
            _await_topics(self.dead_letters.producer, [settings.kafka_topic, endpoint.topic])
            self._consumer = self._connect()
        except BaseException:
            self.dead_letters.discard()
            if self._consumer is not None:
                self._consumer.close(autocommit=False)
            raise

    def _connect(self) -> Any:
        """The group consumer of the event topic, subscribed (it joins at the first poll)."""
        from kafka import KafkaConsumer

        settings, servers = self._settings, self._servers
        timeout = settings.kafka_timeout_s
        session_ms = int(settings.kafka_session_timeout_s * 1000)
        consumer = KafkaConsumer(
            bootstrap_servers=servers,
            group_id=settings.kafka_group,
            client_id="kept-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # At least the largest message a broker takes, or consumption could stall;
            # a fetch of all partitions at most twice that, so that memory stays flat
            # however long the backlog (the default is 50 MiB, more once decompressed).
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=2 * MAX_MESSAGE_BYTES,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(min(3000, session_ms // 3), 100),
            bootstrap_timeout_ms=max(int(timeout * 1000), 1000),
            request_timeout_ms=max(int(timeout * 1000), 30_000),
            # New partitions, and a topic missed at the first join, seen within 30 s
            # (the default refresh is every 5 minutes).
            metadata_max_age_ms=30_000,
        )
        # The group's leader assigns partitions from its own consumer's metadata: learn
        # the topic's partitions before joining, or a join that outruns that fetch is
        # assigned nothing until the next refresh (kafka-python, seen under load).
        consumer.partitions_for_topic(settings.kafka_topic)
        consumer.subscribe([settings.kafka_topic], listener=_Listener(self))
        return consumer

    def poll(self, timeout_s: float) -> list[Message]:
        """Messages from the partitions not paused, in offset order per partition.

        While the broker is unreachable this returns nothing (after waiting out the
        timeout) instead of raising: the consumer holds its place and resumes when the
        broker is back; nothing was read, so nothing is lost or skipped.
        """
        from kafka.errors import KafkaError

        try:
            records = self._consumer.poll(
                timeout_ms=int(timeout_s * 1000), max_records=self._max_poll_records
            )
        except KafkaError as exc:
            if not self._broker_down:
                log.warning("Kafka unreachable (%s); waiting for it to come back", exc)
            self._broker_down = True
            time.sleep(max(timeout_s, 0.5))
            return []
        if self._broker_down:
            log.info("Kafka reachable again")
            self._broker_down = False
        messages = []
        for tp, batch in records.items():
            for r in batch:
                messages.append(Message(tp.topic, tp.partition, r.offset, r.value, r.key))
            if batch:
                self._positions[(tp.topic, tp.partition)] = batch[-1].offset + 1
        if messages:
            self._last_records = time.monotonic()
        if (not messages and self._stalled()) or self._left_behind():
            self._reconnect()
        return messages

    def _left_behind(self) -> bool:
        """Partitions held, yet no heartbeat answered for a whole session: the group has
        let this member go (and given its partitions to others) without kafka-python
        noticing, whose heartbeat loop then stays quiet (seen with 3.0.x in full test runs:
        two members of one group each holding every partition). Checked every
        MEMBERSHIP_CHECK_S; only while the brokers answer."""
        from kafka.errors import KafkaError

        now = time.monotonic()
        if now - self._last_membership_check < MEMBERSHIP_CHECK_S:
            return False
        self._last_membership_check = now
        heartbeat = getattr(getattr(self._consumer, "_coordinator", None), "heartbeat", None)
        if heartbeat is None or not self._consumer.assignment():
            return False
        last = max(getattr(heartbeat, "last_receive", now), getattr(heartbeat, "last_reset", now))
        if now - last <= self._settings.kafka_session_timeout_s:
            return False
        try:
            self._consumer.end_offsets(list(self._consumer.assignment()))
        except KafkaError:  # the brokers are away: heartbeats fail for that reason
            return False
        log.warning(
            "no heartbeat answered for %.0f s while holding %s: rejoining the group",
            now - last,
            _names(self.assignment()),
        )
        return True

    def _stalled(self) -> bool:
        """No record for STALL_S while a partition held and not paused has records
        waiting after its position: kafka-python stopped fetching (seen with 3.0.x right
        after a join; asking the positions, as `position` does, is checked first)."""
        from kafka.errors import KafkaError

        now = time.monotonic()
        if now - max(self._last_records, self._last_check) < STALL_S:
            return False
        self._last_check = now
        held = set(self._consumer.assignment()) - set(self._consumer.paused())
        if not held:
            return False
        try:
            ends = self._consumer.end_offsets(list(held))
            positions = {tp: self._consumer.position(tp, timeout_ms=5000) for tp in held}
        except KafkaError:  # the broker is away: not a stall of the client
            return False
        # No position after asking for one (the reset did not complete) counts as behind.
        waiting = {(tp.topic, tp.partition) for tp in held if (positions[tp] or 0) < ends[tp]}
        if waiting:
            log.warning(
                "no record for %.0f s though %s have records waiting: reconnecting",
                now - self._last_records,
                _names(waiting),
            )
        return bool(waiting)

    def _reconnect(self) -> None:
        """A new consumer in place of a stalled one: it rejoins the group and resumes from
        the committed offsets (nothing uncommitted is skipped)."""
        old, self._consumer = self._consumer, None
        try:
            old.close(autocommit=False)
        finally:
            self._held.clear()
            self._positions.clear()
            self._consumer = self._connect()
            self._last_records = time.monotonic()

    def pause(self) -> None:
        """Fetch nothing more until `resume` (the group membership stays alive)."""
        self._consumer.pause(*self._consumer.assignment())

    def resume(self) -> None:
        self._consumer.resume(*self._consumer.paused())

    def assignment(self) -> set[Partition]:
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def commit(self, offsets: dict[Partition, int]) -> None:
        """Commit `offsets` (the next offset to read, per partition); raises on failure."""
        from kafka import OffsetAndMetadata, TopicPartition

        if offsets:
            self._consumer.commit(
                {
                    TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                    for (t, p), o in offsets.items()
                }
            )

    def lag(self) -> dict[Partition, int]:
        """Messages not yet consumed per assigned partition (from the last fetch's watermark)."""
        from kafka import TopicPartition

        lags = {}
        for partition in self.assignment():
            position = self._positions.get(partition)
            try:
                highwater = self._consumer.highwater(TopicPartition(*partition))
            except Exception:  # reassigned meanwhile
                highwater = None
            if position is not None and highwater is not None:
                lags[partition] = max(highwater - position, 0)
        return lags

    def revoked(self, partitions: set[Partition]) -> None:
        for partition in partitions:
            self._positions.pop(partition, None)
        self._held -= partitions

    def assigned(self, partitions: set[Partition]) -> None:
        self._held |= partitions
        log.info("assigned %s; holding %s", _names(partitions), _names(self._held))

    def close(self) -> None:
        """Leave the group and disconnect (offsets are committed by the pipeline only)."""
        try:
            self.dead_letters.close()
        finally:
            self._consumer.close(autocommit=False)


def _names(partitions: set[Partition]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(partitions)) or "nothing"


def _await_topics(producer: Any, topics: list[str]) -> None:
    """Wait until `topics` exist (brokers that create topics on demand make them now).

    A group that subscribes to a topic that does not exist yet is assigned nothing and
    sees the topic only at its next metadata refresh (minutes); and the first dead letter
    must not wait for its topic. The caller retries what raises here.
    """
    from kafka.errors import KafkaTimeoutError

    for topic in topics:
        try:
            producer.partitions_for(topic)
        except KafkaTimeoutError:
            raise KafkaTimeoutError(
                f"topic {topic} does not exist and the brokers do not create topics on "
                "demand: create the topics with `kept kafka create-topics`"
            ) from None
