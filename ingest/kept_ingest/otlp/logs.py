"""OTLP log records as events: evaluations, kept's own feedback event, and the
`gen_ai.client.inference.operation.details` event (a model call's messages).

An event record is named by its `event_name` field (or, from older SDKs, the
`event.name` attribute); other records are ignored and counted. `kept.feedback` is
kept's event for what users did (README, "OpenTelemetry"):

| attribute | for |
|---|---|
| `kept.feedback.type` | `vote`, `action`, `correction` or `survival` (required) |
| `kept.generation_id` (else `gen_ai.response.id`) | the generation it is about |
| `kept.feedback.value` | vote 1 or -1; action value; survival score 0..1 |
| `kept.feedback.name` | the action (accept, copy, regenerate, ...) |
| `kept.feedback.text` | the correction's text (else the record's body) |
| `kept.feedback.comment` | a vote's comment |
| `kept.feedback.checkpoint_s` | the survival checkpoint |
| `kept.event_id` | an idempotency key (UUID); else one derived from the record |
| `user.id`, `session.id` | the end user and conversation |
"""

from __future__ import annotations

import hashlib
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from kept_ingest.otlp.attributes import (
    Attributes,
    attributes_of,
    first,
    integer,
    number,
    text,
    value_of,
)
from kept_ingest.otlp.evaluations import EVALUATION_EVENT, score_fields
from kept_ingest.otlp.records import Rejected, Tally, event_id, span_ref, timestamp, validated
from kept_ingest.otlp.settings import OtlpSettings
from kept_ingest.otlp.spans import RESPONSE_ID, generation_fields
from kept_wire import otel

DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_GENERATION = (otel.GENERATION_ID, "gen_ai.response.id")
_SESSION = (otel.SESSION_ID, "gen_ai.conversation.id")


def _record_key(record: LogRecord) -> str:
    """What identifies a record without an id of its own: its encoded bytes, so that the
    same record re-sent (in either encoding) gets the same event id."""
    return hashlib.sha256(record.SerializeToString(deterministic=True)).hexdigest()


def _generation_id(attrs: Attributes, record: LogRecord, keys: tuple[str, ...]) -> str:
    found = text(first(attrs, keys)) or span_ref(record.trace_id, record.span_id)
    if found is None:
        raise Rejected(f"names no generation ({' or '.join(keys)}, or a span context)")
    return found


def _feedback(attrs: Attributes, record: LogRecord) -> dict[str, Any]:
    kind = attrs.get(otel.TYPE)
    if kind not in otel.FEEDBACK_TYPES:
        raise Rejected(f"{otel.TYPE} must be one of {', '.join(otel.FEEDBACK_TYPES)}")
    value = attrs.get(otel.VALUE)
    fields: dict[str, Any] = {
        "type": kind,
        "generation_id": _generation_id(attrs, record, _GENERATION),
        "user_id": text(attrs.get(otel.USER_ID)),
        "session_id": text(first(attrs, _SESSION)),
    }
    if kind == "vote":
        fields.update(value=integer(value), comment=text(attrs.get(otel.COMMENT)))
    elif kind == "action":
        fields.update(name=text(attrs.get(otel.NAME)), value=value)
    elif kind == "correction":
        body = value_of(record.body) if record.HasField("body") else None
        fields["text"] = text(first(attrs, (otel.TEXT,)) or body)
    else:
        fields.update(checkpoint_s=integer(attrs.get(otel.CHECKPOINT_S)), score=number(value))
    return fields


def _event(name: str, attrs: Attributes, record: LogRecord, resource: Attributes,
           settings: OtlpSettings) -> Any:  # fmt: skip
    ref = span_ref(record.trace_id, record.span_id)
    if name == DETAILS_EVENT:
        if ref is None:
            raise Rejected("the details event has no span context (trace_id, span_id)")
        fields = generation_fields(attrs, resource, settings)
        # The span of the same call is the generation (with its latency); this event
        # supplements it with the messages: both share the generation id, and readers
        # merge them field by field.
        fields.update(
            generation_id=text(first(attrs, RESPONSE_ID)) or ref,
            event_id=event_id("details", ref),
            supplement=True,
        )
    elif name == EVALUATION_EVENT:
        fields = score_fields(attrs, _generation_id(attrs, record, RESPONSE_ID))
    else:
        fields = _feedback(attrs, record)
    if fields.get("event_id") is None:
        fields["event_id"] = text(attrs.get(otel.EVENT_ID)) or event_id("log", _record_key(record))
    nanos = record.time_unix_nano or record.observed_time_unix_nano
    if not nanos:
        raise Rejected("the record has neither time_unix_nano nor observed_time_unix_nano")
    fields["ts"] = timestamp(nanos)
    return validated(fields)


def map_logs(request: ExportLogsServiceRequest, settings: OtlpSettings) -> Tally:
    """Every event record of `request` kept understands, as an event."""
    tally = Tally()
    handled = (otel.FEEDBACK_EVENT, EVALUATION_EVENT, DETAILS_EVENT)
    for resource_logs in request.resource_logs:
        resource = attributes_of(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for index, record in enumerate(scope_logs.log_records):
                attrs = attributes_of(record.attributes)
                name = record.event_name or attrs.get("event.name")
                if name not in handled:
                    tally.ignored += 1
                    continue
                try:
                    tally.events.append(_event(name, attrs, record, resource, settings))
                except Rejected as exc:
                    tally.reject(f"log record {index} ({name})", str(exc))
    return tally
