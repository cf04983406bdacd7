"""The decode step: one Kafka message in, its events (or why each is invalid) out.

A message holds one event (a JSON object) or several (a JSON array of them: what kept's
own producers send, a batch per message, so that the consumer's per-message cost is paid
once per batch). Pure functions. They reuse the intake's contract and decoder, plus the
one rule that is Kafka's own: each event must say its `project` (there is no API key to
say it). An invalid event of an array is dead-lettered alone; the others are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from kept_ingest.decode import (
    DecodeLimits,
    InvalidEvents,
    TooManyEvents,
    decode_json_array,
    decode_one,
)
from kept_ingest.fast_contract import AnyEvent
from kept_ingest.jsonshape import array_spans
from kept_wire.contract import MAX_EVENTS_PER_MESSAGE

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""Larger messages are dead-lettered unread (a broker's default limit is about 1 MB)."""
_LIMITS = DecodeLimits(max_events=MAX_EVENTS_PER_MESSAGE)
"""An array message with more events is dead-lettered whole."""
_MAX_ERROR_CHARS = 1000


class Message(NamedTuple):
    """One consumed message, independent of the Kafka client library (a tuple: the
    consumer makes one per message)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.value or b"") + len(self.key or b"")


@dataclass(frozen=True)
class Invalid:
    """Why a message, or one event of an array message, cannot be stored: `reason` is a
    short label, `error` the details; `index` and `item` say which event of an array."""

    message: Message
    reason: str
    error: str
    index: int | None = None
    item: bytes | None = None

    @property
    def original(self) -> bytes:
        """The bytes that were refused: the array's event, else the whole message."""
        return self.item if self.item is not None else (self.message.value or b"")


_NO_PROJECT = "project: required on Kafka (no key says it)"


def decode_events(message: Message, max_bytes: int = MAX_MESSAGE_BYTES) -> list[AnyEvent | Invalid]:
    """The message's events in order, each validated (or the reason it is not)."""
    value = message.value
    if value and len(value) <= max_bytes and value.lstrip()[:1] == b"[":
        return _decode_array(message, value)
    return [decode_message(message, max_bytes)]


def decode_message(message: Message, max_bytes: int = MAX_MESSAGE_BYTES) -> AnyEvent | Invalid:
    """Validate a message of one event against the contract (and require its project)."""
    value = message.value
    if not value:
        return Invalid(message, "empty", "the message has no value")
    if len(value) > max_bytes:
        return Invalid(message, "too_large", f"{len(value)} bytes; at most {max_bytes}")
    return _decode_object(message, value, None)


def _decode_object(message: Message, data: bytes, index: int | None) -> AnyEvent | Invalid:
    item = None if index is None else data
    try:
        event = decode_one(data)
    except InvalidEvents as exc:
        return _invalid(message, exc, data, index, item)
    if event.project is None:
        return Invalid(message, "no_project", _NO_PROJECT, index, item)
    return event


def _decode_array(message: Message, value: bytes) -> list[AnyEvent | Invalid]:
    try:
        events = decode_json_array(value, _LIMITS)
    except TooManyEvents as exc:
        return [Invalid(message, "too_many_events", str(exc)[:_MAX_ERROR_CHARS])]
    except InvalidEvents:
        return _item_by_item(message, value)
    if all(e.project is not None for e in events):  # the common case: one call for all
        return list(events)
    return _item_by_item(message, value)  # so that each dead letter holds its event


def _item_by_item(message: Message, value: bytes) -> list[AnyEvent | Invalid]:
    """Each event of an array that is not valid as a whole, on its own: the valid ones
    are stored, the others dead-lettered one by one."""
    try:
        text = value.decode("utf-8")
        spans = array_spans(text, MAX_EVENTS_PER_MESSAGE)
    except ValueError as exc:  # UnicodeDecodeError too: the array itself is broken
        return [Invalid(message, "not_json", f"not JSON: {exc}"[:_MAX_ERROR_CHARS])]
    return [_decode_object(message, text[s:e].encode(), i) for i, (s, e) in enumerate(spans)]


_NOT_AN_OBJECT = "Input should be an object"
_SCALARS = {
    ord("["): "list",
    ord('"'): "str",
    ord("t"): "bool",
    ord("f"): "bool",
    ord("n"): "NoneType",
}


def _invalid(
    message: Message, exc: InvalidEvents, data: bytes, index: int | None, item: bytes | None
) -> Invalid:
    # Which kind of invalid, from the decoder's errors: parsing the message again could
    # cost as much as a hostile message makes it.
    errors = exc.errors
    if len(errors) == 1 and errors[0].field is None:
        text = errors[0].message
        if text.startswith("Invalid JSON"):
            error = f"not JSON: {text}"[:_MAX_ERROR_CHARS]
            return Invalid(message, "not_json", error, index, item)
        if text == _NOT_AN_OBJECT:
            value = data.lstrip()
            kind = _SCALARS.get(value[0]) if value else None
            if kind is None:
                kind = "float" if any(c in value for c in b".eE") else "int"
            error = f"expected a JSON object, got {kind}"
            return Invalid(message, "not_object", error, index, item)
    details = "; ".join(f"{e.field or 'event'}: {e.message}" for e in errors)
    return Invalid(message, "invalid_event", details[:_MAX_ERROR_CHARS], index, item)
