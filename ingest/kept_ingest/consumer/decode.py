"""The decode step: one Kafka message in, an event or the reason it is invalid out.

A pure function. It reuses the intake's contract and decoder, plus the one rule that is
Kafka's own: the message must say its `project` (there is no API key to say it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from kept_ingest.contract import Event
from kept_ingest.decode import InvalidEvents, decode_one

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""Larger messages are dead-lettered unread (a broker's default limit is about 1 MB)."""
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
    """Why a message cannot be stored: `reason` is a short label, `error` the details."""

    message: Message
    reason: str
    error: str


def decode_message(message: Message, max_bytes: int = MAX_MESSAGE_BYTES) -> Event | Invalid:
    """Validate one message against the event contract (and require its project)."""
    value = message.value
    if not value:
        return Invalid(message, "empty", "the message has no value")
    if len(value) > max_bytes:
        return Invalid(message, "too_large", f"{len(value)} bytes; at most {max_bytes}")
    try:
        event = decode_one(value)
    except InvalidEvents as exc:
        return _invalid(message, exc)
    if event.project is None:
        return Invalid(message, "no_project", "project: required on Kafka (no key says it)")
    return event


_NOT_AN_OBJECT = "Input should be an object"
_SCALARS = {
    ord("["): "list",
    ord('"'): "str",
    ord("t"): "bool",
    ord("f"): "bool",
    ord("n"): "NoneType",
}


def _invalid(message: Message, exc: InvalidEvents) -> Invalid:
    # Which kind of invalid, from the decoder's errors: parsing the message again could
    # cost as much as a hostile message makes it.
    errors = exc.errors
    if len(errors) == 1 and errors[0].field is None:
        text = errors[0].message
        if text.startswith("Invalid JSON"):
            return Invalid(message, "not_json", f"not JSON: {text}"[:_MAX_ERROR_CHARS])
        if text == _NOT_AN_OBJECT:
            value = (message.value or b"").lstrip()
            kind = _SCALARS.get(value[0]) if value else None
            if kind is None:
                kind = "float" if any(c in value for c in b".eE") else "int"
            return Invalid(message, "not_object", f"expected a JSON object, got {kind}")
    details = "; ".join(f"{e.field or 'event'}: {e.message}" for e in errors)
    return Invalid(message, "invalid_event", details[:_MAX_ERROR_CHARS])
