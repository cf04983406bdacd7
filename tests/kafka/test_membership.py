"""A consumer that the group let go without kafka-python noticing rejoins by itself.

The fault is injected into the client: its heartbeat loop is stopped, so the broker
drops the member after the session timeout and hands its partitions to the other, while
the client still believes it holds them (what two `kept serve` replicas once showed in a
full test run: each holding every partition)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from kept_ingest.consumer import kafka_io
from kept_ingest.consumer.batching import Partition
from kept_ingest.consumer.kafka_io import KafkaIO
from kept_ingest.kafka_settings import KafkaSettings
from kept_ingest.topics import ensure_topics
from tests.kafka.broker import Broker, unique
from tests.kafka.senders import wait_for

SESSION_S = 6.0
"""The broker's smallest session timeout (group.min.session.timeout.ms)."""


class Polling:
    """A KafkaIO polled on a thread of its own, as the pipeline polls it."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.io = KafkaIO(settings, max_poll_records=100)
        self.held: set[Partition] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.io.poll(0.2)
            self.held = self.io.assignment()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.io.close()


@contextmanager
def polling(settings: KafkaSettings) -> Iterator[Polling]:
    consumer = Polling(settings)
    try:
        yield consumer
    finally:
        consumer.stop()


def test_a_member_dropped_by_the_group_unknowingly_rejoins_and_shares_again(
    broker: Broker,
) -> None:
    topic = unique("membership")
    settings = KafkaSettings(
        kafka=broker.bootstrap,
        kafka_topic=topic,
        kafka_dlq_topic=topic + ".dlq",
        kafka_group=unique("g"),
        kafka_partitions=2,
        kafka_replication_factor=1,
        kafka_min_insync_replicas=1,
        kafka_session_timeout_s=SESSION_S,
    )
    ensure_topics(settings)
    both = {(topic, 0), (topic, 1)}
    with polling(settings) as a:
        wait_for(lambda: a.held == both, "a holding both partitions", 60)
        # The fault: a's heartbeat loop ends; the broker drops a after the session timeout.
        a.io._consumer._coordinator._close_heartbeat()
        with polling(settings) as b:
            # b is given both partitions once a is dropped; a finds out (no heartbeat
            # answered for a session) and rejoins, and they share again.
            wait_for(
                lambda: len(a.held) == len(b.held) == 1 and a.held | b.held == both,
                "a and b holding one partition each",
                SESSION_S + 3 * kafka_io.MEMBERSHIP_CHECK_S + 60,
            )
