"""The event contract compiled to msgspec Structs: a fast path for batches that are valid.

pydantic (`kept_ingest.contract`) is the contract's one definition and the only source of
error messages. These Structs restate it for msgspec, which decodes and checks a batch
in C at about a third of pydantic's cost, and are used only when they can say yes: a
batch they refuse, or that a check here cannot vouch for, goes to pydantic, which
decides (and says precisely what is wrong). So the fast path must accept a subset of
what pydantic accepts and give the same values; `tests/server/test_fast_contract.py`
checks that difference by difference, and against the contract's own cases.

Where msgspec is more lenient than pydantic, a check below narrows it:
- timestamps: msgspec also takes `+0100` offsets and rounds fractions past microseconds
  where pydantic truncates, so each event's `ts` must be a strict RFC 3339 string;
- a repeated key: msgspec keeps the last value, so the keys decoded must add up to the
  keys written (an explicit `null` also makes them differ: pydantic then decides);
- `supplement: false`, the time range, the project's pattern and the event id's form,
  which msgspec cannot state or would check at a higher cost.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from datetime import datetime
from operator import attrgetter
from typing import Annotated, Any, ClassVar, Literal, Union

import msgspec
from msgspec import Meta, Struct

from kept_ingest.contract import EARLIEST_TS, MAX_FUTURE_SKEW, Event
from kept_ingest.jsonshape import keys_written, unescaped
from kept_wire.contract import (
    MAX_COMMENT_CHARS,
    MAX_ID_CHARS,
    MAX_MESSAGES,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    PROJECT_PATTERN,
)

Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_CHARS)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS)]
Text = Annotated[str, Meta(max_length=MAX_TEXT_CHARS)]
Comment = Annotated[str, Meta(max_length=MAX_COMMENT_CHARS)]
_PROJECT = re.compile(PROJECT_PATTERN.removesuffix("$") + r"\Z")
"""Checked once per distinct project of a body, not by msgspec once per event: a search
per event cost a tenth of the decoding, and its match objects woke the garbage collector.
(`\\Z`: the end of the text only, as the contract's `$` means for pydantic's regex.)"""
Moment = Annotated[datetime, Meta(tz=True)]
Count = Annotated[int, Meta(ge=0, le=2**31)]
Finite = Annotated[float, Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)]

CanonicalUuid = Annotated[str, Meta(min_length=36, max_length=36)]
"""Kept as text here: msgspec makes a `uuid.UUID` in Python, a sixth of the decoding
(and objects the collector tracks); rows carry the id's number, read from the text."""
_UUIDS = re.compile(
    r"(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\n)*"
)
"""A body's event ids, one per line, each in the canonical form (which pydantic reads as
the same UUID): checked in one regex call, not one per event."""
_EVENT_ID = attrgetter("event_id")
_TS_KEY = b'"ts":'
_STRICT_TS = re.compile(
    rb'"ts":[ \t\n\r]*"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:[Zz]|[+-]\d\d:\d\d)"'
)
"""A `ts` key and its value as strict RFC 3339 (both decoders read such a string alike),
looked for in the body without its escaped quotes (`jsonshape.unescaped`): a quote left
opens or closes a string, so these are keys, not text inside a value. (A body with a
space before a colon has its keys counted otherwise, and goes to pydantic.)"""


# gc=False: the garbage collector does not track these (they hold strings, numbers, UUIDs,
# datetimes and containers of those, so they can be in no reference cycle). A consumer's
# batch holds tens of thousands of them: tracked, the collector walked them again and
# again, measured a third of the decoding and row building's CPU.


class Message(Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    role: Annotated[str, Meta(min_length=1, max_length=32)]
    content: Text


class _Event(
    Struct, forbid_unknown_fields=True, tag_field="type", kw_only=True, omit_defaults=True, gc=False
):
    event_id: CanonicalUuid
    generation_id: Id
    ts: Moment
    project: str | None = None
    user_id: Id | None = None
    session_id: Id | None = None


class Generation(_Event, tag="generation"):
    type: ClassVar[Literal["generation"]] = "generation"
    model: Name
    prompt_version: Name | None = None
    input: Text | Annotated[list[Message], Meta(max_length=MAX_MESSAGES)] | None = None
    output: Text | None = None
    latency_ms: Annotated[int, Meta(ge=0, le=86_400_000)] | None = None
    input_tokens: Count | None = None
    output_tokens: Count | None = None
    cost_usd: Annotated[float, Meta(ge=0, le=1e6)] | None = None
    metadata: (
        Annotated[
            dict[
                Annotated[str, Meta(min_length=1, max_length=MAX_ID_CHARS)],
                Annotated[str, Meta(max_length=MAX_METADATA_VALUE_CHARS)],
            ],
            Meta(max_length=MAX_METADATA_KEYS),
        ]
        | None
    ) = None
    supplement: bool | None = None


class Vote(_Event, tag="vote"):
    type: ClassVar[Literal["vote"]] = "vote"
    value: Literal[1, -1]
    comment: Comment | None = None


class Action(_Event, tag="action"):
    type: ClassVar[Literal["action"]] = "action"
    name: Name
    value: Comment | Finite | None = None


class Correction(_Event, tag="correction"):
    type: ClassVar[Literal["correction"]] = "correction"
    text: Text


class Survival(_Event, tag="survival"):
    type: ClassVar[Literal["survival"]] = "survival"
    checkpoint_s: Annotated[int, Meta(gt=0, le=30 * 86_400)]
    score: Annotated[float, Meta(ge=0.0, le=1.0)]


class Score(_Event, tag="score"):
    type: ClassVar[Literal["score"]] = "score"
    name: Name
    value: Finite
    source: Literal["human", "llm", "code"]
    label: Name | None = None
    comment: Comment | None = None


FAST_CONTRACT_DEPTH = 4
"""How deep these Structs nest: the body's array, an event, its chat input, a message."""
FastEvent = Union[Generation, Vote, Action, Correction, Survival, Score]  # noqa: UP007
AnyEvent = Union[Event, FastEvent]  # noqa: UP007
"""A valid event, as either decoder made it: the same fields under the same names."""
_SKEW_S = MAX_FUTURE_SKEW.total_seconds()
_DECODER = msgspec.json.Decoder(list[FastEvent])
_KINDS = (Generation, Vote, Action, Correction, Survival, Score)
_REQUIRED = {kind: sum(f.required for f in msgspec.structs.fields(kind)) for kind in _KINDS}
_OPTIONAL = {
    kind: [(f.name, attrgetter(f.name)) for f in msgspec.structs.fields(kind) if not f.required]
    for kind in _KINDS
}
_TS = attrgetter("ts")


def _keys_read(events: list[FastEvent]) -> int | None:
    """Keys the events were written with, as decoded: `type`, each field that is set, and
    the keys of metadata and chat messages; None for a value pydantic refuses
    (`supplement: false`). Field by field over each type's events, in C where it can be:
    event by event, it was a tenth of the decoding."""
    groups: dict[type[Any], list[Any]] = defaultdict(list)
    for event in events:
        groups[type(event)].append(event)
    keys = len(events)  # `type`
    for kind, group in groups.items():
        keys += len(group) * _REQUIRED[kind]
        for name, read in _OPTIONAL[kind]:
            values = list(map(read, group))
            keys += len(values) - values.count(None)
            if name == "metadata":
                keys += sum(map(len, filter(None, values)))
            elif name == "input":
                keys += 2 * sum(len(v) for v in values if type(v) is list)
            elif name == "supplement" and False in values:
                return None
    return keys


def decode_valid(body: bytes) -> list[FastEvent] | None:
    """The events of a JSON array body if it is certainly valid, else None (pydantic then
    decides). Holds the GIL for the whole body: callers bound its size."""
    try:
        events = _DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    count = len(events)
    bare = unescaped(body)
    if bare.count(_TS_KEY) != count or len(_STRICT_TS.findall(bare)) != count:
        return None
    written = keys_written(body)
    if written is None or written != _keys_read(events):
        return None
    projects = {event.project for event in events}  # a few per body
    if not all(p is None or _PROJECT.match(p) for p in projects):
        return None
    if not _UUIDS.fullmatch("\n".join(map(_EVENT_ID, events)) + "\n"):
        return None
    moments = list(map(_TS, events))
    if moments and (min(moments) < EARLIEST_TS or max(moments).timestamp() > time.time() + _SKEW_S):
        return None
    return events


def event_json(event: AnyEvent) -> bytes:
    """The event as JSON, without the fields that are not set (whichever decoder made it)."""
    if isinstance(event, Struct):
        return msgspec.json.encode(event)
    return event.model_dump_json(exclude_none=True).encode()
