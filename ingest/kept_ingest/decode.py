"""Bytes in, validated events or precise errors out: a pure function, no I/O.

Used by the HTTP intake (JSON array or NDJSON bodies) and by the Kafka consumer (one
event per message), so both report the same `{index, field, message}` errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kept_ingest.contract import EVENT_ADAPTER, EVENT_LIST_ADAPTER, Event
from kept_wire.contract import EVENT_TYPES

# Labels pydantic puts in an error location for the branch of a union it tried; they
# are not field names and would only confuse the client. (The event type that leads a
# location is dropped separately: `score` is both a type and a field.)
_UNION_LABELS = frozenset({"str", "int", "float", "bool", "none"})


@dataclass(frozen=True)
class EventError:
    """What is wrong with one event of a request (index is None for the body as a whole)."""

    index: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class InvalidEvents(Exception):
    """The request or message holds at least one event that breaks the contract."""

    def __init__(self, errors: Sequence[EventError]) -> None:
        super().__init__("; ".join(f"{e.index}:{e.field}: {e.message}" for e in errors[:5]))
        self.errors = list(errors)


def _field_path(loc: Sequence[int | str]) -> str | None:
    parts = [
        str(p)
        for p in loc
        if not (isinstance(p, str) and (p in _UNION_LABELS or not p.replace("_", "").isalnum()))
    ]
    return ".".join(parts) or None


def _message(err: Any) -> str:
    kind, msg = err["type"], str(err["msg"])
    expected = f"expected one of {', '.join(EVENT_TYPES)}"
    if kind == "union_tag_invalid":
        return f"unknown event type {err['input'].get('type')!r}; {expected}"
    if kind == "union_tag_not_found":
        return f"missing 'type'; {expected}"
    if kind == "extra_forbidden":
        return "unknown field (not in the event contract)"
    return msg.removeprefix("Value error, ")


def _translate(exc: ValidationError, index_offset: int | None) -> list[EventError]:
    merged: dict[tuple[int | None, str | None], list[str]] = {}
    for err in exc.errors(include_url=False):
        loc: tuple[int | str, ...] = tuple(err["loc"])
        if index_offset is None:
            index = loc[0] if loc and isinstance(loc[0], int) else None
            rest = loc[1:] if index is not None else loc
        else:
            index, rest = index_offset, loc
        if rest and rest[0] in EVENT_TYPES:
            rest = rest[1:]
        key: tuple[int | None, str | None]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            key = (index, "type")
        else:
            key = (index, _field_path(rest))
        messages = merged.setdefault(key, [])
        message = _message(err)
        if message not in messages:
            messages.append(message)
    return [EventError(i, f, " or ".join(m)) for (i, f), m in merged.items()]


def decode_json_array(body: bytes) -> list[Event]:
    """Validate a JSON array of events. Raises InvalidEvents listing every problem."""
    try:
        return EVENT_LIST_ADAPTER.validate_json(body)
    except ValidationError as exc:
        raise InvalidEvents(_translate(exc, None)) from None


def decode_one(data: bytes, index: int = 0) -> Event:
    """Validate a single JSON event (an NDJSON line, a Kafka message)."""
    try:
        return EVENT_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise InvalidEvents(_translate(exc, index)) from None


def decode_ndjson(body: bytes) -> list[Event]:
    """Validate newline-delimited JSON; blank lines are skipped and do not count as events."""
    events: list[Event] = []
    errors: list[EventError] = []
    index = 0
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            events.append(decode_one(line, index))
        except InvalidEvents as exc:
            errors.extend(exc.errors)
        index += 1
    if errors:
        raise InvalidEvents(errors)
    return events


def decode_body(body: bytes, content_type: str | None) -> list[Event]:
    """Decode an intake body: NDJSON by content type, else a JSON array (or one object)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in ("application/x-ndjson", "application/ndjson", "application/jsonlines"):
        return decode_ndjson(body)
    if body.lstrip()[:1] == b"{":
        return decode_ndjson(body)
    return decode_json_array(body)
