"""OTLP records as kept events: the pure mapping of ingest/kept_ingest/otlp, fed with
hand-made protobuf messages in each convention kept reads (README, "OpenTelemetry").

The builders at the top are shared with tests/otlp/test_bad_payloads.py.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from kept_ingest.contract import (
    Action,
    ChatMessage,
    Correction,
    Generation,
    Score,
    Survival,
    Vote,
)
from kept_ingest.otlp import payload
from kept_ingest.otlp.logs import map_logs
from kept_ingest.otlp.records import Tally
from kept_ingest.otlp.settings import OtlpSettings
from kept_ingest.otlp.spans import map_traces
from kept_wire.contract import MAX_METADATA_VALUE_CHARS, MAX_TEXT_CHARS

DEFAULTS = OtlpSettings()
TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")

# ---- builders ---------------------------------------------------------------------------


def any_value(value: Any) -> AnyValue:
    """A Python value as the AnyValue an OTel SDK would send (lists and dicts structured)."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=attributes(value)))
    raise TypeError(f"no AnyValue for {value!r}")


def attributes(values: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in values.items()]


def span_id(n: int) -> bytes:
    return n.to_bytes(8, "big")


def span(
    n: int,
    attrs: dict[str, Any],
    *,
    duration_ms: int = 1500,
    trace_id: bytes = TRACE_ID,
    events: list[Span.Event] | None = None,
) -> Span:
    """Span number `n` (its span id) of the trace, started a minute ago."""
    start = time.time_ns() - 60 * 10**9
    return Span(
        trace_id=trace_id,
        span_id=span_id(n) if n else b"",
        name=f"span {n}",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration_ms * 10**6,
        attributes=attributes(attrs),
        events=events or [],
    )


def traces(*spans: Span, resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attributes(resource or {})),
                scope_spans=[ScopeSpans(spans=list(spans))],
            )
        ]
    )


def record(
    attrs: dict[str, Any],
    *,
    event_name: str = "",
    body: Any = None,
    n: int = 1,
    timed: bool = True,
) -> LogRecord:
    """A log record in span `n` of the trace (n=0: no span context)."""
    now = time.time_ns() - 30 * 10**9
    return LogRecord(
        time_unix_nano=now if timed else 0,
        observed_time_unix_nano=now if timed else 0,
        event_name=event_name,
        trace_id=TRACE_ID if n else b"",
        span_id=span_id(n) if n else b"",
        attributes=attributes(attrs),
        body=any_value(body) if body is not None else None,
    )


def logs(*records: LogRecord, resource: dict[str, Any] | None = None) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=attributes(resource or {})),
                scope_logs=[ScopeLogs(log_records=list(records))],
            )
        ]
    )


def otlp_json(request: ExportTraceServiceRequest | ExportLogsServiceRequest) -> bytes:
    """`request` as OTLP/JSON: the protobuf JSON mapping, with hex trace and span ids."""
    document = json_format.MessageToDict(request)

    def hex_ids(item: dict[str, Any]) -> None:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in item:
                item[key] = base64.b64decode(item[key]).hex()

    for resource in document.get("resourceSpans", []) + document.get("resourceLogs", []):
        for scope in resource.get("scopeSpans", []) + resource.get("scopeLogs", []):
            for item in scope.get("spans", []) + scope.get("logRecords", []):
                hex_ids(item)
    return json.dumps(document).encode()


def semconv_chat(n: int = 1, /, **extra: Any) -> Span:
    """A model call as OpenTelemetry's current GenAI conventions describe it."""
    inputs = [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny"}],
        },
    ]
    outputs = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "It is sunny."}],
            "finish_reason": "stop",
        },
        {"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}]},
    ]
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.input.messages": json.dumps(inputs),
        "gen_ai.output.messages": json.dumps(outputs),
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
        "gen_ai.usage.input_tokens": 42,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.usage.cost": 0.0021,
        "user.id": "user-1",
        "gen_ai.conversation.id": "conv-9",
        **extra,
    }
    return span(n, attrs, duration_ms=1234)


def only(tally: Tally) -> Any:
    assert tally.rejected == 0, tally.reasons
    assert len(tally.events) == 1, tally.events
    return tally.events[0]


def at(ts: datetime, nanos: int) -> bool:
    """`ts` is the time of `nanos` (to the microsecond, as datetimes go)."""
    return abs(ts.timestamp() - nanos / 1e9) <= 1e-6


def ref(n: int) -> str:
    return f"{TRACE_ID.hex()}-{span_id(n).hex()}"


# ---- spans ------------------------------------------------------------------------------


def test_a_current_semconv_chat_span_is_a_generation() -> None:
    the_span = semconv_chat(**{"kept.prompt_version": "weather@3"})
    event = only(map_traces(traces(the_span), DEFAULTS))
    assert isinstance(event, Generation)
    assert event.generation_id == ref(1)  # no gen_ai.response.id: the span's ids
    assert event.model == "gpt-4o-2024-08-06"  # the response model over the request model
    assert event.input is not None and not isinstance(event.input, str)
    assert [m.role for m in event.input] == ["system", "user", "assistant", "tool"]
    assert event.input[0] == ChatMessage(role="system", content="Be brief.")
    assert event.input[1].content == "Weather in Paris?"
    # A tool call is no text, but it is kept (as JSON), never silently dropped.
    call = json.loads(event.input[2].content)
    assert call["name"] == "get_weather" and call["arguments"] == {"city": "Paris"}
    assert json.loads(event.input[3].content)["response"] == "sunny"
    assert event.output == "It is sunny."  # the first choice
    assert (event.input_tokens, event.output_tokens) == (42, 7)
    assert event.latency_ms == 1234
    assert event.cost_usd == 0.0021
    assert event.user_id == "user-1"
    assert event.session_id == "conv-9"
    assert event.prompt_version == "weather@3"
    assert at(event.ts, the_span.start_time_unix_nano)
    assert event.metadata == {}


def test_the_response_id_names_the_generation() -> None:
    event = only(map_traces(traces(semconv_chat(**{"gen_ai.response.id": "chatcmpl-1"})), DEFAULTS))
    assert event.generation_id == "chatcmpl-1"


def test_the_prompt_version_can_come_from_the_resource() -> None:
    resource = {"kept.prompt_version": "from-resource@1", "service.name": "checkout"}
    event = only(map_traces(traces(semconv_chat(), resource=resource), DEFAULTS))
    assert event.prompt_version == "from-resource@1"
    # The span's own value wins over the resource's.
    own = semconv_chat(**{"kept.prompt_version": "from-span@2"})
    assert only(map_traces(traces(own, resource=resource), DEFAULTS)).prompt_version == (
        "from-span@2"
    )
    # Another attribute, when the settings name it.
    settings = OtlpSettings(otlp_prompt_version_attributes=("app.prompt", "kept.prompt_version"))
    named = semconv_chat(**{"app.prompt": "named@4"})
    assert only(map_traces(traces(named, resource=resource), settings)).prompt_version == (
        "named@4"
    )


def test_configured_attributes_are_the_metadata() -> None:
    settings = OtlpSettings(
        otlp_metadata_attributes=("service.name", "deployment.environment", "app.shard", "absent")
    )
    resource = {"service.name": "checkout", "deployment.environment": "prod"}
    the_span = semconv_chat(**{"app.shard": 3, "deployment.environment": "canary"})
    event = only(map_traces(traces(the_span, resource=resource), settings))
    assert event.metadata == {
        "service.name": "checkout",
        "deployment.environment": "canary",  # the span's own value wins
        "app.shard": "3",  # metadata values are text
    }
    # Unnamed attributes are not metadata.
    assert only(map_traces(traces(the_span, resource=resource), DEFAULTS)).metadata == {}


def test_without_content_capture_input_and_output_are_dropped() -> None:
    settings = OtlpSettings(otlp_capture_content=False)
    event = only(map_traces(traces(semconv_chat()), settings))
    assert isinstance(event, Generation)
    assert event.input is None and event.output is None
    assert event.model == "gpt-4o-2024-08-06" and event.input_tokens == 42
    # Malformed messages do not matter when they are not read.
    broken = semconv_chat(**{"gen_ai.input.messages": "{not json"})
    assert only(map_traces(traces(broken), settings)).input is None


def test_an_openllmetry_span_is_a_generation() -> None:
    attrs = {
        "gen_ai.system": "openai",
        "llm.request.type": "chat",
        "gen_ai.request.model": "gpt-3.5-turbo",
        "gen_ai.response.model": "gpt-3.5-turbo-0125",
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "You are terse.",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": "Hello?",
        "gen_ai.prompt.2.role": "assistant",
        "gen_ai.prompt.2.content": "Hi.",
        # Index 10 comes after 2, not between 1 and 2 (numeric order, not text order).
        "gen_ai.prompt.10.role": "user",
        "gen_ai.prompt.10.content": "And?",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Hello there.",
        "gen_ai.completion.0.finish_reason": "stop",
        "gen_ai.completion.1.content": "Second choice.",
        "gen_ai.usage.prompt_tokens": 11,
        "gen_ai.usage.completion_tokens": 3,
        "llm.usage.total_tokens": 14,
    }
    event = only(map_traces(traces(span(2, attrs, duration_ms=250)), DEFAULTS))
    assert isinstance(event, Generation)
    assert event.model == "gpt-3.5-turbo-0125"
    assert event.input == [
        ChatMessage(role="system", content="You are terse."),
        ChatMessage(role="user", content="Hello?"),
        ChatMessage(role="assistant", content="Hi."),
        ChatMessage(role="user", content="And?"),
    ]
    assert event.output == "Hello there."
    assert (event.input_tokens, event.output_tokens) == (11, 3)
    assert event.latency_ms == 250
    assert event.generation_id == ref(2)


def test_an_old_style_span_without_request_type_needs_system_and_model() -> None:
    attrs = {"gen_ai.system": "anthropic", "gen_ai.request.model": "claude-3-haiku"}
    assert only(map_traces(traces(span(1, attrs)), DEFAULTS)).model == "claude-3-haiku"
    tally = map_traces(traces(span(1, {"gen_ai.system": "anthropic"})), DEFAULTS)
    assert tally.events == [] and tally.ignored == 1 and tally.rejected == 0


def test_an_openinference_llm_span_is_a_generation() -> None:
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.provider": "openai",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "Answer in French.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "Describe this:",
        "llm.input_messages.1.message.contents.1.message_content.type": "text",
        "llm.input_messages.1.message.contents.1.message_content.text": "a cat",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.contents.0.message_content.type": "text",
        "llm.output_messages.0.message.contents.0.message_content.text": "Un chat.",
        "llm.token_count.prompt": 20,
        "llm.token_count.completion": 4,
        "llm.token_count.total": 24,
        "session.id": "sess-5",
        "user.id": "user-5",
    }
    event = only(map_traces(traces(span(3, attrs)), DEFAULTS))
    assert isinstance(event, Generation)
    assert event.model == "gpt-4o-mini"
    assert event.input == [
        ChatMessage(role="system", content="Answer in French."),
        ChatMessage(role="user", content="Describe this:\na cat"),
    ]
    assert event.output == "Un chat."
    assert (event.input_tokens, event.output_tokens) == (20, 4)
    assert (event.session_id, event.user_id) == ("sess-5", "user-5")


def test_spans_that_are_not_model_calls_are_ignored() -> None:
    spans = [
        span(1, {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "te-3-small"}),
        span(2, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"}),
        span(3, {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o"}),
        span(4, {"http.request.method": "POST", "url.full": "https://api.example.com/x"}),
        span(5, {"openinference.span.kind": "CHAIN", "input.value": "hi", "output.value": "ho"}),
        span(6, {"openinference.span.kind": "EMBEDDING", "embedding.model_name": "e5"}),
        span(
            7,
            {
                "gen_ai.system": "openai",
                "llm.request.type": "embedding",
                "gen_ai.request.model": "ada",
            },
        ),
    ]
    tally = map_traces(traces(*spans, semconv_chat(8)), DEFAULTS)
    assert tally.ignored == 7
    assert tally.rejected == 0
    assert [e.generation_id for e in tally.events] == [ref(8)]


def test_an_openinference_tool_call_output_is_kept() -> None:
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Weather in Paris?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"c": 1}',
    }
    event = only(map_traces(traces(span(3, attrs)), DEFAULTS))
    assert isinstance(event, Generation) and event.output
    assert json.loads(event.output) == [
        {"tool_call.function.name": "get_weather", "tool_call.function.arguments": '{"c": 1}'}
    ]


def test_attributes_of_unexpected_types_are_not_model_calls() -> None:
    # An array where a string belongs: not a model call (and no crash of the request).
    spans = [
        span(1, {"gen_ai.operation.name": ["chat"], "gen_ai.request.model": "m"}),
        span(2, {"llm.request.type": {"kind": "chat"}, "gen_ai.request.model": "m"}),
    ]
    tally = map_traces(traces(*spans), DEFAULTS)
    assert tally.ignored == 2 and tally.events == [] and tally.rejected == 0


def test_numbers_given_as_text_are_read_and_odd_ones_refused_by_name() -> None:
    attrs = {"gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": 3.0,
             "gen_ai.usage.cost": "0.5"}  # fmt: skip
    event = only(map_traces(traces(semconv_chat(1, **attrs)), DEFAULTS))
    assert (event.input_tokens, event.output_tokens, event.cost_usd) == (12, 3, 0.5)
    odd = [
        semconv_chat(2, **{"gen_ai.usage.input_tokens": "²"}),  # a digit to str.isdigit()
        semconv_chat(3, **{"gen_ai.usage.input_tokens": "9" * 5000}),  # too long for int()
        semconv_chat(4, **{"gen_ai.usage.input_tokens": "-5"}),
    ]
    tally = map_traces(traces(*odd), DEFAULTS)
    assert tally.events == [] and tally.rejected == 3
    assert all("input_tokens" in reason for reason in tally.reasons), tally.reasons


def evaluation_event(**attrs: Any) -> Span.Event:
    values = {
        "gen_ai.evaluation.name": "relevance",
        "gen_ai.evaluation.score.value": 0.8,
        "gen_ai.evaluation.score.label": "relevant",
        "gen_ai.evaluation.explanation": "Answers the question.",
        **attrs,
    }
    return Span.Event(
        time_unix_nano=time.time_ns() - 10 * 10**9,
        name="gen_ai.evaluation.result",
        attributes=attributes(values),
    )


def test_an_evaluation_span_event_is_a_score() -> None:
    the_span = semconv_chat(4)
    the_span.events.append(evaluation_event())
    the_span.events.append(Span.Event(name="gen_ai.content.prompt"))  # another event: no score
    tally = map_traces(traces(the_span), DEFAULTS)
    assert tally.rejected == 0, tally.reasons
    generation, score = tally.events
    assert isinstance(generation, Generation) and isinstance(score, Score)
    assert score.generation_id == generation.generation_id == ref(4)
    assert (score.name, score.value, score.label) == ("relevance", 0.8, "relevant")
    assert score.comment == "Answers the question."
    assert score.source == "llm"
    assert score.event_id != generation.event_id
    assert at(score.ts, the_span.events[0].time_unix_nano)


def test_an_evaluation_on_a_span_of_its_own_scores_the_response_it_names() -> None:
    # An evaluator's span (no model call): only its evaluation events are stored.
    judged = evaluation_event(
        **{
            "gen_ai.response.id": "chatcmpl-7",
            "gen_ai.evaluation.score.value": 1,
            "kept.score.source": "code",
        }
    )
    the_span = span(5, {"gen_ai.operation.name": "evaluate"}, events=[judged])
    score = only(map_traces(traces(the_span), DEFAULTS))
    assert isinstance(score, Score)
    assert score.generation_id == "chatcmpl-7"
    assert score.value == 1.0 and score.source == "code"


def test_the_same_span_mapped_twice_has_the_same_event_id() -> None:
    request = traces(
        semconv_chat(1), span(2, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})
    )
    first, second = map_traces(request, DEFAULTS), map_traces(request, DEFAULTS)
    assert [e.event_id for e in first.events] == [e.event_id for e in second.events]
    assert first.events[0].event_id != first.events[1].event_id
    # The id is the span's, not its content's: a re-sent span with changed attributes too.
    changed = traces(semconv_chat(1, **{"gen_ai.usage.output_tokens": 99}))
    assert map_traces(changed, DEFAULTS).events[0].event_id == first.events[0].event_id


def test_protobuf_and_json_encodings_give_the_same_events() -> None:
    the_span = semconv_chat(1, **{"kept.prompt_version": "p@1"})
    the_span.events.append(evaluation_event())
    request = traces(the_span, span(9, {"http.request.method": "GET"}))
    as_proto = payload.decode(
        request.SerializeToString(), payload.PROTOBUF, payload.ExportTraceServiceRequest
    )
    as_json = payload.decode(otlp_json(request), payload.JSON, payload.ExportTraceServiceRequest)
    assert as_proto == as_json == request
    proto_tally, json_tally = map_traces(as_proto, DEFAULTS), map_traces(as_json, DEFAULTS)
    assert len(proto_tally.events) == 2 and proto_tally.ignored == json_tally.ignored == 1
    assert proto_tally.events == json_tally.events

    log_request = logs(
        record({"kept.feedback.type": "vote", "kept.feedback.value": 1}, event_name="kept.feedback")
    )
    proto_logs = payload.decode(
        log_request.SerializeToString(), payload.PROTOBUF, payload.ExportLogsServiceRequest
    )
    json_logs = payload.decode(
        otlp_json(log_request), payload.JSON, payload.ExportLogsServiceRequest
    )
    proto_events, json_events = map_logs(proto_logs, DEFAULTS), map_logs(json_logs, DEFAULTS)
    assert len(proto_events.events) == 1
    # A record without an id of its own: its id comes from its content, the same either way.
    assert proto_events.events == json_events.events


# ---- span rejections --------------------------------------------------------------------


def test_broken_spans_are_rejected_by_reason_and_the_rest_is_mapped() -> None:
    settings = OtlpSettings(otlp_metadata_attributes=("app.note",))
    broken = [
        span(0, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}),  # no span id
        span(2, {"gen_ai.operation.name": "chat"}),  # no model
        semconv_chat(3, **{"gen_ai.input.messages": "[{'role': 'user'"}),
        semconv_chat(
            4,
            **{
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": "x" * (MAX_TEXT_CHARS + 1)}],
                        }
                    ]
                )
            },
        ),
        semconv_chat(5, **{"app.note": "y" * (MAX_METADATA_VALUE_CHARS + 1)}),
    ]
    tally = map_traces(traces(broken[0], broken[1], semconv_chat(6), *broken[2:]), settings)
    assert tally.rejected == 5
    assert [e.generation_id for e in tally.events] == [ref(6)]
    no_id, no_model, not_json, too_long, big_metadata = tally.reasons
    assert "(no id)" in no_id and "no trace_id or span_id" in no_id
    assert span_id(2).hex() in no_model and "model" in no_model
    assert span_id(3).hex() in not_json and "gen_ai.input.messages is not JSON" in not_json
    assert span_id(4).hex() in too_long and too_long.split(": ", 1)[1].startswith("output")
    assert span_id(5).hex() in big_metadata and "metadata" in big_metadata
    message = tally.message()
    assert message.startswith("5 record(s) not stored: ")
    assert "gen_ai.input.messages is not JSON" in message


def test_messages_that_are_json_but_not_messages_are_rejected() -> None:
    tally = map_traces(
        traces(
            semconv_chat(1, **{"gen_ai.input.messages": "42"}),
            semconv_chat(2, **{"gen_ai.output.messages": '["just text"]'}),
        ),
        DEFAULTS,
    )
    assert tally.events == [] and tally.rejected == 2
    assert "must be a list of messages" in tally.reasons[0]
    assert "must be an object" in tally.reasons[1]


def test_more_rejections_than_the_answer_names_are_counted() -> None:
    spans = [span(n, {"gen_ai.operation.name": "chat"}) for n in range(1, 9)]
    tally = map_traces(traces(*spans), DEFAULTS)
    assert tally.rejected == 8 and len(tally.reasons) == 5
    assert tally.message().endswith("; and 3 more")


# ---- log records ------------------------------------------------------------------------


def feedback(kind: str | None, body: Any = None, n: int = 1, **attrs: Any) -> LogRecord:
    values = {"kept.feedback.type": kind} if kind is not None else {}
    values.update({f"kept.feedback.{k}": v for k, v in attrs.items()})
    return record(values, event_name="kept.feedback", body=body, n=n)


def test_feedback_events_of_each_type() -> None:
    vote = record(
        {
            "kept.feedback.type": "vote",
            "kept.feedback.value": -1,
            "kept.feedback.comment": "Wrong city.",
            "kept.generation_id": "gen-1",
            "user.id": "user-1",
            "session.id": "sess-1",
        },
        event_name="kept.feedback",
    )
    tally = map_logs(
        logs(
            vote,
            feedback("action", name="copy", value=2),
            feedback("correction", text="The right text."),
            feedback("correction", body="From the body."),
            feedback("survival", checkpoint_s=3600, value=0.75),
        ),
        DEFAULTS,
    )
    assert tally.rejected == 0, tally.reasons
    v, a, c1, c2, s = tally.events
    assert isinstance(v, Vote)
    assert (v.value, v.comment, v.generation_id) == (-1, "Wrong city.", "gen-1")
    assert (v.user_id, v.session_id) == ("user-1", "sess-1")
    assert at(v.ts, vote.time_unix_nano)
    assert isinstance(a, Action) and (a.name, a.value) == ("copy", 2.0)
    assert a.generation_id == ref(1)  # no generation named: the span the record is in
    assert isinstance(c1, Correction) and c1.text == "The right text."
    assert isinstance(c2, Correction) and c2.text == "From the body."
    assert isinstance(s, Survival) and (s.checkpoint_s, s.score) == (3600, 0.75)
    assert len({e.event_id for e in tally.events}) == 5


def test_feedback_values_given_as_text() -> None:
    tally = map_logs(
        logs(
            feedback("vote", value="-1"),
            feedback("vote", value="+1", n=2),
            feedback("survival", checkpoint_s="600", value="0.5"),
        ),
        DEFAULTS,
    )
    assert tally.rejected == 0, tally.reasons
    down, up, survival = tally.events
    assert isinstance(down, Vote) and down.value == -1
    assert isinstance(up, Vote) and up.value == 1
    assert isinstance(survival, Survival) and (survival.checkpoint_s, survival.score) == (600, 0.5)


def test_a_feedback_event_id_is_its_idempotency_key_or_derived_from_the_record() -> None:
    given = record(
        {
            "kept.feedback.type": "vote",
            "kept.feedback.value": 1,
            "kept.event_id": "3f2b8c1e-8d4a-4f6e-9b1a-2c3d4e5f6a7b",
        },
        event_name="kept.feedback",
    )
    assert str(only(map_logs(logs(given), DEFAULTS)).event_id) == (
        "3f2b8c1e-8d4a-4f6e-9b1a-2c3d4e5f6a7b"
    )
    plain = feedback("vote", value=1)
    again = map_logs(logs(plain), DEFAULTS).events[0].event_id
    assert only(map_logs(logs(plain), DEFAULTS)).event_id == again
    other = feedback("vote", value=-1)
    assert only(map_logs(logs(other), DEFAULTS)).event_id != again


def test_an_evaluation_log_record_is_a_score() -> None:
    evaluation = record(
        {
            "gen_ai.evaluation.name": "faithfulness",
            "gen_ai.evaluation.score.value": 0.25,
            "gen_ai.evaluation.score.label": "unfaithful",
            "gen_ai.evaluation.explanation": "Invents a source.",
            "gen_ai.response.id": "chatcmpl-3",
        },
        event_name="gen_ai.evaluation.result",
    )
    in_span = record(
        {"gen_ai.evaluation.name": "toxicity", "gen_ai.evaluation.score.value": 0},
        event_name="gen_ai.evaluation.result",
        n=7,
    )
    tally = map_logs(logs(evaluation, in_span), DEFAULTS)
    assert tally.rejected == 0, tally.reasons
    score, scored_span = tally.events
    assert isinstance(score, Score)
    assert score.generation_id == "chatcmpl-3"
    assert (score.name, score.value, score.label) == ("faithfulness", 0.25, "unfaithful")
    assert score.comment == "Invents a source." and score.source == "llm"
    assert isinstance(scored_span, Score)
    assert scored_span.generation_id == ref(7) and scored_span.value == 0.0


def test_the_event_name_attribute_names_an_event_too() -> None:
    older = record(
        {"event.name": "kept.feedback", "kept.feedback.type": "vote", "kept.feedback.value": 1}
    )
    event = only(map_logs(logs(older), DEFAULTS))
    assert isinstance(event, Vote) and event.value == 1


def test_the_details_event_is_a_generation_with_structured_messages() -> None:
    details = record(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.input.messages": [
                {
                    "role": "user",
                    "parts": [
                        {"type": "text", "content": "Hi"},
                        {"type": "text", "content": "there"},
                    ],
                },
            ],
            "gen_ai.system_instructions": [{"type": "text", "content": "Be kind."}],
            "gen_ai.output.messages": [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "Hello!"}],
                    "finish_reason": "stop",
                },
            ],
            "gen_ai.usage.input_tokens": 5,
        },
        event_name="gen_ai.client.inference.operation.details",
        n=3,
    )
    tally = map_logs(logs(details), DEFAULTS)
    event = only(tally)
    assert isinstance(event, Generation)
    assert event.generation_id == ref(3)  # the span of the same call: one generation
    assert event.model == "gpt-4o" and event.input_tokens == 5
    assert event.input == [
        ChatMessage(role="system", content="Be kind."),
        ChatMessage(role="user", content="Hi\nthere"),
    ]
    assert event.output == "Hello!"
    assert event.latency_ms is None  # the span has it
    assert event.supplement is True  # it fills in the span's generation, not one of its own
    # Not the span's event id: the span and the event are two parts of one generation.
    span_event = only(
        map_traces(
            traces(span(3, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})),
            DEFAULTS,
        )
    )
    assert span_event.generation_id == event.generation_id
    assert span_event.event_id != event.event_id
    assert isinstance(span_event, Generation) and span_event.supplement is None
    assert only(map_logs(logs(details), DEFAULTS)).event_id == event.event_id


def test_other_log_records_are_ignored() -> None:
    tally = map_logs(
        logs(
            record({"http.status_code": 200}, body="GET /health"),
            record({}, event_name="gen_ai.content.prompt"),
            record({"event.name": "browser.click"}),
            feedback("vote", value=1),
        ),
        DEFAULTS,
    )
    assert tally.ignored == 3 and tally.rejected == 0
    assert len(tally.events) == 1


def test_broken_log_records_are_rejected_by_reason() -> None:
    untimed = record(
        {"kept.feedback.type": "vote", "kept.feedback.value": 1},
        event_name="kept.feedback",
        timed=False,
    )
    no_context = record(
        {"kept.feedback.type": "vote", "kept.feedback.value": 1}, event_name="kept.feedback", n=0
    )
    tally = map_logs(
        logs(
            feedback(None, value=1),
            feedback("vote", value=2),
            feedback("survival", value=0.5),
            untimed,
            no_context,
            feedback("vote", value=1),
        ),
        DEFAULTS,
    )
    assert tally.rejected == 5
    assert len(tally.events) == 1 and isinstance(tally.events[0], Vote)
    no_type, bad_vote, no_checkpoint, no_time, no_generation = tally.reasons
    assert no_type.startswith("log record 0 (kept.feedback): ")
    assert "kept.feedback.type must be one of" in no_type
    assert "log record 1" in bad_vote and "value" in bad_vote
    assert "log record 2" in no_checkpoint and "checkpoint_s" in no_checkpoint
    assert "log record 3" in no_time and "time_unix_nano" in no_time
    assert "log record 4" in no_generation and "names no generation" in no_generation


def test_broken_details_events_are_rejected() -> None:
    details = "gen_ai.client.inference.operation.details"
    tally = map_logs(
        logs(
            record({"gen_ai.request.model": "m"}, event_name=details, n=0),
            record(
                {"gen_ai.request.model": "m", "gen_ai.input.messages": "nope"}, event_name=details
            ),
        ),
        DEFAULTS,
    )
    assert tally.events == [] and tally.rejected == 2
    assert "no span context" in tally.reasons[0]
    assert "gen_ai.input.messages is not JSON" in tally.reasons[1]
