"""GenAI spans as `generation` events; evaluation span events as `score` events.

A span is a model call when `gen_ai.operation.name` says so (chat, text_completion,
generate_content), when it predates that attribute (`gen_ai.system` with a model, or
OpenLLMetry's `llm.request.type`), or when OpenInference marks it `LLM`. Other spans
(HTTP, database, tools, agents, embeddings) are ignored: counted, never stored.
The README's "OpenTelemetry" table lists every attribute read here.
"""

from __future__ import annotations

from collections import ChainMap
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from kept_ingest.otlp import messages
from kept_ingest.otlp.attributes import Attributes, attributes_of, first, integer, number, text
from kept_ingest.otlp.evaluations import EVALUATION_EVENT, score_fields
from kept_ingest.otlp.records import Rejected, Tally, event_id, span_ref, timestamp, validated
from kept_ingest.otlp.settings import OtlpSettings

MODEL_CALLS = frozenset({"chat", "text_completion", "generate_content"})
"""`gen_ai.operation.name` values whose output is shown to someone (not embeddings, tool
executions or agent invocations, which wrap model calls that have spans of their own)."""
_OLD_REQUEST_TYPES = frozenset({"chat", "completion"})

RESPONSE_ID = ("gen_ai.response.id",)
MODEL = (
    "gen_ai.response.model", "gen_ai.request.model", "llm.model_name",
    "llm.response.model", "llm.request.model",
)  # fmt: skip
INPUT_TOKENS = (
    "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)  # fmt: skip
OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
    "llm.token_count.completion", "llm.usage.completion_tokens",
)  # fmt: skip
COST = ("kept.cost_usd", "gen_ai.usage.cost", "llm.cost.total")
USER = ("user.id", "enduser.id")
SESSION = ("session.id", "gen_ai.conversation.id")


def is_model_call(attrs: Attributes) -> bool:
    operation = attrs.get("gen_ai.operation.name")
    if operation is not None:  # `in` a set: an array or kvlist value would raise
        return isinstance(operation, str) and operation in MODEL_CALLS
    if attrs.get("openinference.span.kind") == "LLM":
        return True
    request_type = attrs.get("llm.request.type")
    if request_type is not None:
        return isinstance(request_type, str) and request_type in _OLD_REQUEST_TYPES
    return attrs.get("gen_ai.system") is not None and first(attrs, MODEL) is not None


def generation_fields(
    attrs: Attributes, resource: Attributes, settings: OtlpSettings
) -> dict[str, Any]:
    """What a model call's attributes say of its generation (no ids, no times)."""
    both = ChainMap(dict(attrs), dict(resource))  # the span's own value wins
    fields: dict[str, Any] = {
        "type": "generation",
        "model": text(first(attrs, MODEL)),
        "input_tokens": integer(first(attrs, INPUT_TOKENS)),
        "output_tokens": integer(first(attrs, OUTPUT_TOKENS)),
        "cost_usd": number(first(attrs, COST)),
        "user_id": text(first(attrs, USER)),
        "session_id": text(first(attrs, SESSION)),
        "prompt_version": text(first(both, settings.otlp_prompt_version_attributes)),
        "metadata": {
            key: text(value)
            for key in settings.otlp_metadata_attributes
            if (value := both.get(key)) is not None
        },
    }
    if settings.otlp_capture_content:
        try:
            fields["input"] = messages.input_messages(attrs)
            fields["output"] = messages.output_text(attrs)
        except messages.MalformedMessages as exc:
            raise Rejected(str(exc)) from None
    return fields


def generation_of(
    span: Span, attrs: Attributes, resource: Attributes, settings: OtlpSettings
) -> Any:
    """The generation event of a model-call span (`attrs`: its attributes)."""
    ref = span_ref(span.trace_id, span.span_id)
    if ref is None:
        raise Rejected("the span has no trace_id or span_id")
    if not span.start_time_unix_nano:
        raise Rejected("the span has no start time")
    fields = generation_fields(attrs, resource, settings)
    if fields["model"] is None:
        raise Rejected("a model call without gen_ai.response.model or gen_ai.request.model")
    duration = span.end_time_unix_nano - span.start_time_unix_nano
    fields.update(
        event_id=event_id("span", ref),
        generation_id=text(first(attrs, RESPONSE_ID)) or ref,
        ts=timestamp(span.start_time_unix_nano),
        latency_ms=round(duration / 1e6) if span.end_time_unix_nano and duration >= 0 else None,
    )
    return validated(fields)


def evaluations_of(span: Span, generation_id: str) -> list[Any]:
    """Score events of the span's `gen_ai.evaluation.result` events."""
    ref = span_ref(span.trace_id, span.span_id) or ""
    scores = []
    for index, event in enumerate(span.events):
        if event.name != EVALUATION_EVENT:
            continue
        attrs = attributes_of(event.attributes)
        fields = score_fields(attrs, generation_id)
        fields.update(
            event_id=event_id("span-event", ref, str(index)),
            ts=timestamp(event.time_unix_nano or span.end_time_unix_nano),
        )
        scores.append(validated(fields))
    return scores


def map_traces(request: ExportTraceServiceRequest, settings: OtlpSettings) -> Tally:
    """Every model-call span of `request` as an event, and its evaluations."""
    tally = Tally()
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                _map_span(span, resource, settings, tally)
    return tally


def _map_span(span: Span, resource: Attributes, settings: OtlpSettings, tally: Tally) -> None:
    has_evaluations = any(e.name == EVALUATION_EVENT for e in span.events)
    attrs = attributes_of(span.attributes)
    model_call = is_model_call(attrs)
    if not model_call and not has_evaluations:
        tally.ignored += 1
        return
    what = f"span {span.span_id.hex() or '(no id)'}"
    try:
        generation_id = text(first(attrs, RESPONSE_ID)) or span_ref(span.trace_id, span.span_id)
        events = [generation_of(span, attrs, resource, settings)] if model_call else []
        if generation_id is None:
            raise Rejected("the span has no trace_id or span_id")
        events += evaluations_of(span, generation_id)
    except Rejected as exc:
        tally.reject(what, str(exc))
        return
    tally.events.extend(events)
