"""Event contract v1: the one definition of what an event is.

The same JSON object travels over HTTP and Kafka; these models validate it at the
ingest boundary. Limits keep a single event from exhausting memory or storage; they
are part of the contract and documented in the README.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
)

from kept_wire.contract import (
    CONTRACT_VERSION,
    MAX_COMMENT_CHARS,
    MAX_ID_CHARS,
    MAX_MESSAGES,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    PROJECT_PATTERN,
)

MAX_FUTURE_SKEW = timedelta(days=1)
_MAX_FUTURE_SKEW_S = MAX_FUTURE_SKEW.total_seconds()
EARLIEST_TS = datetime(2000, 1, 1, tzinfo=timezone.utc)
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)?")
"""RFC 3339's date-time; the zone is optional here so that pydantic names its absence."""
INTEGER_NOTE = "A JSON integer, written without a fraction or exponent (10809, not 10809.0)."


def _rfc3339(value: Any) -> Any:
    # pydantic would also take Unix numbers, as numbers or as digit strings; the contract
    # says RFC 3339 strings only.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 datetime string with a zone, e.g. 2026-01-31T12:00:00Z"
        )
    return value


def _json_integer(value: Any) -> Any:
    # JSON true, 1.0 and 1e0 would compare equal to 1; only an integer literal is one.
    if type(value) is not int:
        raise ValueError("Input should be 1 or -1")
    return value


def _integer(*, gt: int | None = None, ge: int | None = None, le: int | None = None) -> Any:
    """An integer field: strict (no float, no bool), and its schema says so."""
    return Field(strict=True, description=INTEGER_NOTE, gt=gt, ge=ge, le=le)


def _in_range(value: datetime) -> datetime:
    value = value.astimezone(timezone.utc)
    if value < EARLIEST_TS:
        raise ValueError("timestamp is before 2000-01-01")
    # Per event on every path: floats are much cheaper than datetime arithmetic here.
    if value.timestamp() > time.time() + _MAX_FUTURE_SKEW_S:
        raise ValueError("timestamp is more than a day in the future (check the client's clock)")
    return value


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    Field(strict=False),
    AfterValidator(_in_range),
]
Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
Comment = Annotated[str, StringConstraints(max_length=MAX_COMMENT_CHARS)]
Project = Annotated[str, StringConstraints(pattern=PROJECT_PATTERN)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS)]


class ChatMessage(BaseModel):
    """One message of a chat input, as the chat APIs and fine-tuning formats use them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    content: Text


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    event_id: Annotated[UUID, Field(strict=False)]
    generation_id: Id
    ts: Timestamp
    project: Project | None = None
    user_id: Id | None = None
    session_id: Id | None = None


class Generation(_Event):
    """One model output shown to a user. `output` is absent when content is not captured."""

    type: Literal["generation"]
    model: Name
    prompt_version: Name | None = None
    input: Text | Annotated[list[ChatMessage], Field(max_length=MAX_MESSAGES)] | None = None
    output: Text | None = None
    latency_ms: Annotated[int, _integer(ge=0, le=86_400_000)] | None = None
    input_tokens: Annotated[int, _integer(ge=0, le=2**31)] | None = None
    output_tokens: Annotated[int, _integer(ge=0, le=2**31)] | None = None
    cost_usd: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA_KEYS)] = (
        Field(default_factory=dict)
    )
    supplement: Literal[True] | None = None
    """True: this event fills in fields of a generation another event reports (an OTel
    span's messages from its details event); readers merge them field by field, first
    stored value first, and it is not counted as a generation of its own."""


class Vote(_Event):
    """Thumbs up (1) or down (-1). The latest vote of a generation counts."""

    type: Literal["vote"]
    value: Annotated[
        Literal[1, -1], BeforeValidator(_json_integer), Field(description=INTEGER_NOTE)
    ]
    comment: Comment | None = None


class Action(_Event):
    """Something the user did with the output: accept, copy, regenerate, dismiss, ..."""

    type: Literal["action"]
    name: Name
    value: (
        Annotated[str, StringConstraints(max_length=MAX_COMMENT_CHARS)]
        | Annotated[float, Field(allow_inf_nan=False)]
        | None
    ) = None


class Correction(_Event):
    """The text the user ended up with. The latest correction counts."""

    type: Literal["correction"]
    text: Text


class Survival(_Event):
    """How much of an accepted output is still in the user's text `checkpoint_s` after accept."""

    type: Literal["survival"]
    checkpoint_s: Annotated[int, _integer(gt=0, le=30 * 86_400)]
    score: Annotated[float, Field(ge=0.0, le=1.0)]


class Score(_Event):
    """A named judgement from a human, an LLM judge or code."""

    type: Literal["score"]
    name: Name
    value: Annotated[float, Field(allow_inf_nan=False)]
    source: Literal["human", "llm", "code"]  # kept_wire.contract.SCORE_SOURCES
    label: Name | None = None
    """A verdict in words (`relevant`, `fail`), as OTel's evaluation events carry one."""
    comment: Comment | None = None


Event = Annotated[
    Union[Generation, Vote, Action, Correction, Survival, Score],  # noqa: UP007
    Field(discriminator="type"),
]
FeedbackEvent = Union[Vote, Action, Correction, Survival, Score]  # noqa: UP007

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_LIST_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one event, as `kept schema` prints it."""
    schema = EVENT_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"kept event v{CONTRACT_VERSION}"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True)
