"""The SDK's Kafka transport against a real broker: acks, keys, project, limits, outages."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict

import pytest

from kept import Client
from kept.transports import Outcome
from kept.transports.kafka import KafkaTransport
from kept_wire.kafka import KafkaEndpoint
from tests.kafka.broker import Broker, read_events, unique


def test_batches_arrive_as_array_messages_in_order_with_the_project(broker: Broker) -> None:
    topic = unique("sdk")
    with Client(endpoint=broker.endpoint(topic), project="shop", debug=True) as client:
        gids = [client.log_generation(model="m", output=f"o{i}") for i in range(20)]
        for gid in gids:
            client.vote(gid, 1)
            client.accept(gid)
        assert client.flush(timeout=30)
        assert client.stats()["sent"] == 60
    found = read_events(broker, topic, 60)
    assert {event["project"] for _, event in found} == {"shop"}
    assert all(record.key is None for record, _ in found)  # the producer spreads them
    by_message: dict[tuple[int, int], list[dict[str, object]]] = defaultdict(list)
    for record, event in found:
        by_message[(record.partition, record.offset)].append(event)
    assert len(by_message) < 60  # batches, not one message per event
    # Within a message, the events are in the order the app logged them.
    logged = [(g, "generation") for g in gids]
    logged += [(g, kind) for g in gids for kind in ("vote", "action")]
    for events in by_message.values():
        places = [logged.index((str(e["generation_id"]), str(e["type"]))) for e in events]
        assert places == sorted(places)
    assert {str(e["generation_id"]) for _, e in found} == set(gids)


def test_send_reports_sent_only_after_the_broker_acknowledged(broker: Broker) -> None:
    topic = unique("acks")
    transport = KafkaTransport(KafkaEndpoint.parse(broker.endpoint(topic)), timeout=30)
    try:
        events = [json.dumps({"generation_id": f"g{i}", "n": i}).encode() for i in range(500)]
        assert transport.send(events).outcome is Outcome.SENT
        # Acknowledged with acks=all means readable now, without waiting.
        found = read_events(broker, topic, 500, 10)
        assert [event["n"] for _, event in found] == list(range(500))
    finally:
        transport.close()


def test_an_event_over_the_message_limit_is_rejected_alone(broker: Broker) -> None:
    topic = unique("big")
    url = broker.endpoint(topic) + "&max_message_bytes=2000"
    transport = KafkaTransport.from_endpoint(url, timeout=30)
    try:
        events = [b'{"generation_id":"a"}', b'{"generation_id":"b","x":"' + b"y" * 3000 + b'"}']
        result = transport.send(events)
        assert result.outcome is Outcome.REJECTED
        assert [r.index for r in result.rejections] == [1]
        assert transport.send(events[:1]).outcome is Outcome.SENT
    finally:
        transport.close()


def test_an_unreachable_broker_is_a_retry_within_the_timeout() -> None:
    from tests.helpers import free_port

    transport = KafkaTransport.from_endpoint(f"kafka://127.0.0.1:{free_port()}", timeout=1.0)
    started = time.monotonic()
    result = transport.send([b'{"generation_id":"g"}'])
    assert result.outcome is Outcome.RETRY
    assert time.monotonic() - started < 5
    threads = threading.active_count()
    for _ in range(3):  # the worker retries while the brokers are down: nothing piles up
        assert transport.send([b'{"generation_id":"g"}']).outcome is Outcome.RETRY
    assert threading.active_count() <= threads
    transport.close()


def test_client_without_a_project_drops_and_says_why(
    broker: Broker, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEPT_PROJECT", raising=False)
    client = Client(endpoint=broker.endpoint("x"))
    assert client.vote("g", 1) is False
    assert client.stats()["dropped_no_transport"] == 1
    assert "needs a project" in caplog.text
    client.close()


def test_kept_kafka_and_kept_project_configure_the_sdk(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = unique("env")
    monkeypatch.delenv("KEPT_ENDPOINT", raising=False)
    monkeypatch.setenv("KEPT_KAFKA", broker.bootstrap)
    monkeypatch.setenv("KEPT_KAFKA_TOPIC", topic)
    monkeypatch.setenv("KEPT_PROJECT", "from-env")
    with Client() as client:
        client.log_generation(model="m")
        assert client.flush(timeout=30)
    ((_, event),) = read_events(broker, topic, 1)
    assert event["project"] == "from-env"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_its_own_producer(broker: Broker) -> None:
    topic = unique("fork")
    client = Client(endpoint=broker.endpoint(topic), project="p", spool_dir=False)
    client.log_generation(model="parent-1")
    assert client.flush(timeout=30)  # the parent's producer exists and is connected
    pid = os.fork()
    if pid == 0:  # child: must not run anything of pytest's
        code = 1
        try:
            client.log_generation(model="child")
            code = 0 if client.flush(timeout=30) else 2
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    client.log_generation(model="parent-2")
    assert client.flush(timeout=30)
    client.close()
    models = sorted(str(event["model"]) for _, event in read_events(broker, topic, 3))
    assert models == ["child", "parent-1", "parent-2"]


def test_endpoint_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEPT_KAFKA_COMPRESSION", raising=False)
    endpoint = KafkaEndpoint.parse("kafka://a:9092,b:9093?topic=t.x&compression=LZ4")
    assert endpoint.bootstrap == ("a:9092", "b:9093")
    assert (endpoint.topic, endpoint.compression) == ("t.x", "lz4")
    assert KafkaEndpoint.parse("kafka://a").bootstrap == ("a:9092",)
    assert KafkaEndpoint.parse("kafka://a").compression == "auto"
    monkeypatch.setenv("KEPT_KAFKA_COMPRESSION", "gzip")  # the server's variable, too
    assert KafkaEndpoint.parse("kafka://a").compression == "gzip"
    assert KafkaEndpoint.parse("kafka://a?compression=none").compression == "none"
    for bad in (
        "kafka://",
        "kafka://a:x",
        "kafka://a:9092?topic=a b",
        "kafka://a?bogus=1",
        "kafka://a?api_version=0.9",  # gone: kafka-python asks the brokers
        "kafka://a?compression=snappy",
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - each says what is wrong
            KafkaEndpoint.parse(bad)
