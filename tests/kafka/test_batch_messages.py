"""Batch messages: producers pack events into JSON arrays, the consumer unpacks them and
dead-letters an invalid event of an array alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kept_ingest.consumer.batching import Batcher
from kept_ingest.consumer.decode import Invalid, Message, decode_events
from kept_ingest.contract import Event, Generation, Vote
from kept_wire.contract import MAX_EVENTS_PER_MESSAGE
from kept_wire.encoding import pack_events
from tests.helpers import feedback, generation
from tests.kafka.broker import Broker, consume_process, store_contents, unique


def encoded(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode()


def unpacked(messages: list[bytes]) -> list[object]:
    out: list[object] = []
    for m in messages:
        value = json.loads(m)
        out.extend(value if isinstance(value, list) else [value])
    return out


def message(value: bytes) -> Message:
    return Message("events", 0, 7, value)


# --- pack_events ------------------------------------------------------------------------


def test_events_pack_into_arrays_under_the_byte_limit_in_order() -> None:
    events = [encoded({"n": i, "pad": "x" * (i % 7)}) for i in range(200)]
    messages = pack_events(events, max_bytes=300)
    assert len(messages) > 1
    assert all(len(m) <= 300 for m in messages)
    assert unpacked(messages) == [json.loads(e) for e in events]


def test_an_event_alone_is_sent_as_the_object_it_is() -> None:
    big = encoded({"text": "y" * 500})
    messages = pack_events([encoded({"a": 1}), big, encoded({"b": 2})], max_bytes=100)
    assert messages == [encoded({"a": 1}), big, encoded({"b": 2})]
    assert pack_events([], max_bytes=100) == []


def test_arrays_hold_at_most_the_events_limit() -> None:
    events = [b"{}"] * (2 * MAX_EVENTS_PER_MESSAGE + 1)
    messages = pack_events(events, max_bytes=10**9)
    assert [len(json.loads(m)) if m.startswith(b"[") else 1 for m in messages] == [
        MAX_EVENTS_PER_MESSAGE,
        MAX_EVENTS_PER_MESSAGE,
        1,
    ]


# --- decode_events ----------------------------------------------------------------------


def test_an_array_message_decodes_to_its_events_in_order() -> None:
    events = [generation(project="shop"), feedback("vote", "g1", value=1, project="shop")]
    results = decode_events(message(json.dumps(events).encode()))
    assert [r.type for r in results if not isinstance(r, Invalid)] == ["generation", "vote"]
    assert [str(r.event_id) for r in results if not isinstance(r, Invalid)] == [
        e["event_id"] for e in events
    ]


def test_an_invalid_event_of_an_array_is_refused_alone_with_its_bytes() -> None:
    good = generation(project="shop")
    no_project = feedback("vote", "g1", value=1)
    bad_vote = feedback("vote", "g1", value=3, project="shop")
    body = json.dumps([good, no_project, bad_vote, 17]).encode()
    results = decode_events(message(body))
    assert isinstance(results[0], Generation)
    reasons = [(r.reason, r.index) for r in results[1:] if isinstance(r, Invalid)]
    assert reasons == [("no_project", 1), ("invalid_event", 2), ("not_object", 3)]
    second = results[1]
    assert isinstance(second, Invalid)
    assert json.loads(second.original) == no_project  # the event, not the whole message


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"[{}, ", "not_json"),
        (b"[" + b",".join([b"{}"] * (MAX_EVENTS_PER_MESSAGE + 1)) + b"]", "too_many_events"),
    ],
)
def test_a_broken_array_is_refused_whole(value: bytes, reason: str) -> None:
    results = decode_events(message(value))
    assert len(results) == 1
    assert isinstance(results[0], Invalid)
    assert (results[0].reason, results[0].index, results[0].original) == (reason, None, value)


def test_an_empty_array_has_no_events() -> None:
    assert decode_events(message(b"[]")) == []


# --- batching ---------------------------------------------------------------------------


def test_a_batch_is_full_by_events_not_by_messages() -> None:
    batcher = Batcher(max_events=5, max_bytes=10**9, max_age_s=60)
    votes: list[Event] = [
        Vote.model_validate(feedback("vote", "g", value=1, project="p")) for _ in range(3)
    ]
    assert not batcher.add(message(b"[...]"), votes)
    assert batcher.add(Message("events", 0, 8, b"[...]"), votes)  # 6 events, 2 messages
    batch = batcher.take()
    assert (batch.messages, len(batch.events), batch.offsets) == (2, 6, {("events", 0): 9})


# --- against the broker -----------------------------------------------------------------


def test_an_array_message_is_stored_but_its_invalid_event_dead_lettered_alone(
    broker: Broker, tmp_path: Path
) -> None:
    topic, group, data = unique("array"), unique("g"), tmp_path / "data"
    good = [generation(project="shop"), generation(project="shop")]
    bad = feedback("vote", good[0]["generation_id"], value=7, project="shop")
    broker.produce(topic, [json.dumps([good[0], bad, good[1]]).encode()], [b"k"])
    with consume_process(broker, topic, group, KEPT_DATA=str(data)) as consumer:
        consumer.wait_for(lambda: consumer.inserted() >= 2, "the valid events stored")
        consumer.wait_for(
            lambda: consumer.metric("kept_consumer_dead_lettered_total") == 1, "the dead letter"
        )
        assert consumer.stop() == 0
    (record,) = broker.read_all(topic + ".dlq", 1)
    letter = json.loads(record.value)
    assert (letter["reason"], letter["index"], json.loads(letter["original"])) == (
        "invalid_event",
        1,
        bad,
    )
    assert dict(record.headers)["kept.origin.index"] == b"1"
    counts = store_contents(str(data), tmp_path / "ids.txt")
    assert counts["generations"] == {"rows": 2, "distinct": 2}
    assert counts["feedback"]["rows"] == 0


def test_kafka_python_checksums_record_batches_in_c() -> None:
    # Kafka 2+ record batches carry a CRC-32C; without the crc32c package kafka-python
    # computes it in pure Python, which alone cut consumption to a few thousand a second.
    from kafka.record import util

    assert util.crc32c_c is not None
