"""Bytes in, validated events or precise errors out: a pure function, no I/O.

Used by the HTTP intake (JSON array or NDJSON bodies), browser feedback and the Kafka
consumer (a message holds an event or an array of them), so all report the same
`{index, field, message}` errors under the same rules. Work is bounded before anything
is validated: the body's nesting depth and its number of events are checked on the
bytes, and only the first `max_errors` errors are kept (the rest are counted). The one
exception is msgspec's decoding of an array (`kept_ingest.fast_contract`), which the
typed schema bounds by itself: it runs first, and a body it refuses is checked as said.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from kept_ingest.contract import EVENT_ADAPTER, Event, Generation
from kept_ingest.fast_contract import FAST_CONTRACT_DEPTH, AnyEvent, decode_valid
from kept_ingest.jsonshape import (
    DuplicateKey,
    ShapeError,
    TooManyValues,
    array_spans,
    check_duplicates,
    check_shape,
    keys_written,
)
from kept_wire.contract import EVENT_TYPES

# Labels pydantic puts in an error location for the branch of a union it tried; they
# are not field names and would only confuse the client. (The event type that leads a
# location is dropped separately: `score` is both a type and a field.)
_UNION_LABELS = frozenset({"str", "int", "float", "bool", "none"})
_NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonlines")
_LINE = re.compile(rb"\S[^\r\n]*")
"""A non-blank NDJSON line, from its first non-space character."""
FAST_PATH_MAX_BYTES = 1 << 20
"""A JSON array up to this size (an SDK batch) is first validated in one call: by msgspec
(`kept_ingest.fast_contract`) when it can vouch for the body, else by pydantic, both
several times cheaper per event than item by item; each holds the GIL for milliseconds
and stops at the first error. A body with an error, and a larger body, go item by item,
so that errors stay bounded and no call holds the GIL for long."""
_FAST_LIST: TypeAdapter[list[Event]] = TypeAdapter(Annotated[list[Event], Field(fail_fast=True)])


@dataclass(frozen=True)
class DecodeLimits:
    """How much work one body may cost (settings of the server)."""

    max_events: int = 10_000
    max_errors: int = 100
    max_depth: int = 32


@dataclass(frozen=True)
class EventError:
    """What is wrong with one event of a request (index is None for the body as a whole)."""

    index: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class InvalidEvents(Exception):
    """The request or message holds at least one event that breaks the contract.

    `errors` are the first ones found; `omitted` counts those left out of the events
    checked, `unchecked` the events not checked once enough errors were found, `events`
    the events that fail, and `types` those events by type (for metrics).
    """

    def __init__(
        self,
        errors: Sequence[EventError],
        *,
        omitted: int = 0,
        unchecked: int = 0,
        events: int | None = None,
        types: Counter[str] | None = None,
    ) -> None:
        super().__init__("; ".join(f"{e.index}:{e.field}: {e.message}" for e in errors[:5]))
        self.errors = list(errors)
        self.omitted = omitted
        self.unchecked = unchecked
        self.events = len({e.index for e in errors}) if events is None else events
        self.types = types if types is not None else Counter({"unknown": self.events})


class TooManyEvents(Exception):
    """More events than one request may carry (counted before any is validated)."""

    def __init__(self, limit: int, message: str | None = None) -> None:
        super().__init__(message or f"more than {limit} events in one request; at most {limit}")
        self.limit = limit


@dataclass
class _Collector:
    """The first `limit` errors of a body; validation stops once there are that many."""

    limit: int
    errors: list[EventError] = field(default_factory=list)
    omitted: int = 0
    unchecked: int = 0
    types: Counter[str] = field(default_factory=Counter)

    @property
    def full(self) -> bool:
        return len(self.errors) >= self.limit

    def add(self, errors: list[EventError], kinds: dict[int | None, str]) -> None:
        room = max(self.limit - len(self.errors), 0)
        self.errors.extend(errors[:room])
        self.omitted += max(len(errors) - room, 0)
        self.types.update(kinds.values())

    def raise_any(self) -> None:
        if self.errors:
            raise InvalidEvents(
                self.errors,
                omitted=self.omitted,
                unchecked=self.unchecked,
                events=sum(self.types.values()),
                types=self.types,
            )


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
        return f"unknown event type {err.get('ctx', {}).get('tag')!r}; {expected}"
    if kind == "union_tag_not_found":
        return f"missing 'type'; {expected}"
    if kind == "extra_forbidden":
        return "unknown field (not in the event contract)"
    return msg.removeprefix("Value error, ")


def _translate(
    exc: ValidationError, index_offset: int | None
) -> tuple[list[EventError], dict[int | None, str]]:
    """The errors, merged per (event, field), and the type of each failing event."""
    merged: dict[tuple[int | None, str | None], list[str]] = {}
    kinds: dict[int | None, str] = {}
    for err in exc.errors(include_url=False, include_input=False):
        loc: tuple[int | str, ...] = tuple(err["loc"])
        if index_offset is None:
            index = loc[0] if loc and isinstance(loc[0], int) else None
            rest = loc[1:] if index is not None else loc
        else:
            index, rest = index_offset, loc
        # Known types only: a label per value a client makes up would grow the metrics.
        kind = rest[0] if rest and rest[0] in EVENT_TYPES else "unknown"
        if kinds.get(index, "unknown") == "unknown":
            kinds[index] = str(kind)
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
    return [EventError(i, f, " or ".join(m)) for (i, f), m in merged.items()], kinds


def _body_error(message: str) -> InvalidEvents:
    return InvalidEvents([EventError(None, None, message)])


def _no_duplicates(data: bytes | str, index: int) -> None:
    try:
        check_duplicates(data)
    except DuplicateKey as exc:
        field = ".".join(str(p) for p in exc.path)
        raise InvalidEvents([EventError(index, field, str(exc))]) from None
    except ValueError as exc:  # valid for pydantic, not for `json`: not expected
        raise InvalidEvents([EventError(index, None, f"Invalid JSON: {exc}")]) from None


def _shape(body: bytes, limits: DecodeLimits) -> None:
    try:
        check_shape(body, limits.max_depth)
    except ShapeError as exc:
        raise _body_error(str(exc)) from None
    except TooManyValues as exc:
        raise TooManyEvents(limits.max_events, str(exc)) from None


def _keys_read(event: Event) -> int:
    """How many object keys the event was written with, as validation read them (a
    repeated key is read once)."""
    # The attribute behind `model_fields_set` (a property: a Python call per event).
    keys = len(event.__pydantic_fields_set__)
    if type(event) is Generation:
        keys += len(event.metadata)
        if type(event.input) is list:
            keys += sum(len(message.__pydantic_fields_set__) for message in event.input)
    return keys


def _no_repeats(items: Sequence[bytes | str], body: bytes, events: list[Event]) -> None:
    """Refuse objects that repeat a key: cheap when the keys written add up to the keys
    read (the common case), else each item is parsed to find the repeat."""
    if keys_written(body) == sum(_keys_read(e) for e in events):
        return
    for index, item in enumerate(items):
        _no_duplicates(item, index)


def _validate_all(items: Sequence[bytes | str], limits: DecodeLimits) -> list[Event]:
    """Validate item by item, so that no single call holds the GIL for long; stop once
    `max_errors` errors are found (the events left are only counted)."""
    events: list[Event] = []
    collector = _Collector(limits.max_errors)
    for index, item in enumerate(items):
        if collector.full:
            collector.unchecked = len(items) - index
            break
        try:
            events.append(_validate_one(item, index))
        except InvalidEvents as exc:
            collector.add(exc.errors, {index: next(iter(exc.types), "unknown")})
    collector.raise_any()
    return events


def decode_json_array(body: bytes, limits: DecodeLimits | None = None) -> Sequence[AnyEvent]:
    """Validate a JSON array of events. Raises TooManyEvents or InvalidEvents."""
    limits = limits or DecodeLimits()
    if len(body) <= FAST_PATH_MAX_BYTES and limits.max_depth >= FAST_CONTRACT_DEPTH:
        # Before the shape checks: msgspec's typed decoding is bounded by the schema (a
        # container where the contract has none fails at once), so they are not needed
        # for a body it accepts, and a body it refuses gets them below.
        fast = decode_valid(body)
        if fast is not None:
            return _at_most(fast, limits)
    _shape(body, limits)
    if len(body) <= FAST_PATH_MAX_BYTES:
        events = _all_valid(body, limits)
        if events is not None:
            return events
    try:
        text = body.decode("utf-8")
        spans = array_spans(text, limits.max_events + 1)
    except ValueError as exc:  # UnicodeDecodeError too
        raise _body_error(str(exc)) from None
    if len(spans) > limits.max_events:
        raise TooManyEvents(limits.max_events)
    items = [text[start:end] for start, end in spans]
    events = _validate_all(items, limits)
    _no_repeats(items, body, events)
    return events


def _all_valid(body: bytes, limits: DecodeLimits) -> Sequence[AnyEvent] | None:
    """The events of a body that is valid as a whole, else None (the slow path then says
    precisely what is wrong)."""
    try:
        events = _FAST_LIST.validate_json(body)
    except ValidationError:
        return None
    if keys_written(body) != sum(_keys_read(e) for e in events):
        return None  # a repeated key: the slow path finds and names it
    return _at_most(events, limits)


def _at_most(events: Sequence[AnyEvent], limits: DecodeLimits) -> Sequence[AnyEvent]:
    if len(events) > limits.max_events:
        raise TooManyEvents(limits.max_events)
    return events


def _validate_one(data: bytes | str, index: int) -> Event:
    try:
        return EVENT_ADAPTER.validate_json(data)
    except ValidationError as exc:
        errors, kinds = _translate(exc, index)
        raise InvalidEvents(errors, types=Counter(kinds.values())) from None


def decode_one(data: bytes, index: int = 0, max_depth: int = DecodeLimits.max_depth) -> Event:
    """Validate a single JSON event (an NDJSON line, a Kafka message)."""
    try:
        check_shape(data, max_depth)
    except (ShapeError, TooManyValues) as exc:
        raise InvalidEvents([EventError(index, None, str(exc))]) from None
    event = _validate_one(data, index)
    _no_repeats([data], data, [event])
    return event


def _lines(body: bytes, limit: int) -> Iterator[bytes]:
    for count, match in enumerate(_LINE.finditer(body)):
        if count >= limit:
            raise TooManyEvents(limit)
        yield match[0]


def decode_ndjson(body: bytes, limits: DecodeLimits | None = None) -> list[Event]:
    """Validate newline-delimited JSON; blank lines are skipped and do not count as events."""
    limits = limits or DecodeLimits()
    lines = list(_lines(body, limits.max_events))
    _shape(body, limits)
    events = _validate_all(lines, limits)
    _no_repeats(lines, body, events)
    return events


def decode_body(
    body: bytes, content_type: str | None, limits: DecodeLimits | None = None
) -> Sequence[AnyEvent]:
    """Decode an intake body: NDJSON by content type, else a JSON array (or one object)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in _NDJSON_TYPES or body.lstrip()[:1] == b"{":
        return decode_ndjson(body, limits)
    return decode_json_array(body, limits)
