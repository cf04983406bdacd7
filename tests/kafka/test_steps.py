"""The consumer's pure steps: decode, batch, dead-letter payloads, the invalid-share limit."""

from __future__ import annotations

import json
import uuid

import pytest

from kept_ingest.consumer.batching import Batcher
from kept_ingest.consumer.deadletter import (
    ERROR_HEADER_MAX_BYTES,
    InvalidShare,
    TooManyInvalid,
    dead_letter,
    dead_letter_headers,
)
from kept_ingest.consumer.decode import Invalid, Message, decode_message
from kept_ingest.contract import Vote
from tests.helpers import feedback, generation


def message(value: bytes | None, offset: int = 0, partition: int = 0) -> Message:
    return Message("events", partition, offset, value, b"key")


def encoded(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- decode -----------------------------------------------------------------------------


def test_a_valid_event_with_its_project_decodes() -> None:
    result = decode_message(message(encoded(feedback("vote", "g1", value=1, project="shop"))))
    assert isinstance(result, Vote)
    assert result.project == "shop"


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (None, "empty", "no value"),
        (b"", "empty", "no value"),
        (b"{not json", "not_json", "not JSON"),
        (b"[1, 2]", "not_object", "got list"),
        (b'"text"', "not_object", "got str"),
        (encoded({"type": "vote", "value": 3, "project": "p"}), "invalid_event", "value"),
        (encoded(generation(project="p", latency=5)), "invalid_event", "latency: unknown field"),
        (encoded(generation()), "no_project", "project"),
        (encoded(generation(project="not a project!")), "invalid_event", "project"),
    ],
)
def test_invalid_messages_say_why(value: bytes | None, reason: str, detail: str) -> None:
    result = decode_message(message(value))
    assert isinstance(result, Invalid)
    assert result.reason == reason
    assert detail in result.error


def test_a_message_over_the_size_limit_is_not_parsed() -> None:
    result = decode_message(message(b"{" + b" " * 100 + b"}"), max_bytes=50)
    assert isinstance(result, Invalid)
    assert (result.reason, result.error) == ("too_large", "102 bytes; at most 50")


def test_error_details_are_bounded() -> None:
    event = generation(project="p", model="m" * 300, **{f"x{i}": i for i in range(200)})
    result = decode_message(message(encoded(event)))
    assert isinstance(result, Invalid)
    assert len(result.error) <= 1000


# --- batching ---------------------------------------------------------------------------


def vote(i: int) -> Vote:
    return Vote(
        type="vote", event_id=uuid.uuid4(), generation_id=f"g{i}", ts="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        value=1, project="p",
    )  # fmt: skip


def test_batch_is_ready_by_count() -> None:
    batcher = Batcher(max_events=3, max_bytes=10**9, max_age_s=60, clock=Clock())
    for i in range(2):
        batcher.add(message(b"{}", offset=i), [vote(i)])
    assert not batcher.ready()
    batcher.add(message(b"{}", offset=2), [])  # a dead-lettered message counts too
    assert batcher.ready()
    batch = batcher.take()
    assert (batch.messages, len(batch.events)) == (3, 2)
    assert batch.offsets == {("events", 0): 3}  # one past the last message, valid or not
    assert len(batcher) == 0 and not batcher.ready()


def test_batch_is_ready_by_bytes() -> None:
    batcher = Batcher(max_events=1000, max_bytes=100, max_age_s=60, clock=Clock())
    batcher.add(message(b"x" * 60), [vote(0)])
    assert not batcher.ready()
    batcher.add(message(b"x" * 40, offset=1), [vote(1)])  # 100 value bytes + 2 * 3 key bytes
    assert batcher.ready()


def test_batch_is_ready_by_age() -> None:
    clock = Clock()
    batcher = Batcher(max_events=1000, max_bytes=10**9, max_age_s=0.5, clock=clock)
    assert batcher.time_left() == 0.5 and not batcher.ready()
    batcher.add(message(b"{}"), [vote(0)])
    clock.now += 0.3
    assert not batcher.ready()
    assert batcher.time_left() == pytest.approx(0.2)
    clock.now += 0.2
    assert batcher.ready()
    assert batcher.time_left() == 0


def test_offsets_per_partition_and_dropping_lost_partitions() -> None:
    batcher = Batcher(max_events=100, max_bytes=10**9, max_age_s=60, clock=Clock())
    batcher.add(message(b"{}", offset=7, partition=0), [vote(0)])
    batcher.add(message(b"{}", offset=4, partition=1), [vote(1)])
    batcher.add(message(b"{}", offset=8, partition=0), [vote(2)])
    batcher.drop({("events", 1)})
    assert batcher.take().offsets == {("events", 0): 9}


# --- dead letters and the limit ------------------------------------------------------------


def test_dead_letter_carries_everything_in_its_value() -> None:
    invalid = Invalid(Message("events", 2, 41, "héllo wörld".encode(), b"k"), "not_json", "bad")
    letter = json.loads(dead_letter(invalid, max_original_bytes=7))
    assert letter == {
        "reason": "not_json",
        "error": "bad",
        "topic": "events",
        "partition": 2,
        "offset": 41,
        "index": None,  # the whole message (an event of an array message has its index)
        "original": "héllo ",  # cut at 7 bytes; a broken character is dropped
        "original_bytes": 13,
        "truncated": True,
    }
    whole = json.loads(dead_letter(invalid, max_original_bytes=100))
    assert (whole["original"], whole["truncated"]) == ("héllo wörld", False)


def test_dead_letter_headers_say_why_and_where_from() -> None:
    invalid = Invalid(Message("events", 2, 41, b"{", b"k"), "not_json", "not JSON: bad")
    assert dict(dead_letter_headers(invalid)) == {
        "kept.reason": b"not_json",
        "kept.origin.topic": b"events",
        "kept.origin.partition": b"2",
        "kept.origin.offset": b"41",
        "kept.error": b"not JSON: bad",
    }
    event = Invalid(Message("events", 2, 41, b"[{}]", b"k"), "invalid_event", "e", 3, b"{}")
    assert dict(dead_letter_headers(event))["kept.origin.index"] == b"3"
    letter = json.loads(dead_letter(event, 100))
    assert (letter["index"], letter["original"], letter["original_bytes"]) == (3, "{}", 2)
    text = "x" + "é" * 1000  # 2,001 bytes
    long = Invalid(Message("events", 0, 0, b"{}", None), "invalid_event", text)
    error = dict(dead_letter_headers(long))["kept.error"]
    # Cut to the bound, and still UTF-8: the character the cut split in two is dropped.
    assert error.decode() == "x" + "é" * 511
    assert len(error) == ERROR_HEADER_MAX_BYTES - 1
    assert json.loads(dead_letter(long, 10))["error"] == text  # whole in the value


def test_invalid_share_trips_only_over_a_full_window() -> None:
    share = InvalidShare(window=10, max_share=0.2)
    for _ in range(5):
        share.record(True)  # 100% invalid, but the window is not full yet
    for _ in range(4):
        share.record(False)
    with pytest.raises(TooManyInvalid, match=r"5 of the last 10 events \(50%\)"):
        share.record(False)


def test_invalid_share_counts_valid_events_in_bulk() -> None:
    share = InvalidShare(window=10, max_share=0.2)
    share.record(True)
    share.record_valid(3)
    assert share.share == 0.25
    share.record_valid(10)  # a whole window of valid events: the invalid one slid out
    assert share.share == 0.0
    for _ in range(2):
        share.record(True)
    share.record_valid(2)
    with pytest.raises(TooManyInvalid):
        share.record(True)  # 3 of the last 10


def test_invalid_share_slides() -> None:
    share = InvalidShare(window=10, max_share=0.2)
    for i in range(100):
        share.record(i % 5 == 0)  # steady 20%: at the limit, not over it
    assert share.share == pytest.approx(0.2)
    share.record(True)
    assert share.share == pytest.approx(0.2)  # one in, one (valid) out... then
    with pytest.raises(TooManyInvalid):
        share.record(True)
