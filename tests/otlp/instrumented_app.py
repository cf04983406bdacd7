"""An app whose `openai` client is instrumented by one OpenTelemetry instrumentation,
exporting over OTLP/HTTP to kept (run by tests/otlp/test_instrumentations.py).

Instrumentations patch `openai` for the whole process and cannot be undone cleanly, so
each case runs this module in a process of its own:

    python -m tests.otlp.instrumented_app --which v2|openllmetry|openinference \
        --kept URL --key KEY --openai URL [--encoding protobuf|json] [--stream] [--wrap-span NAME]

It makes the chat calls of `CONVERSATIONS`, shuts the providers down (which flushes
them), and prints one JSON line: the responses, every span and log record the exporters
sent with the result of each export, so the test can name what kept should hold and
tell a failed export from a mapping bug. The v2 instrumentation's modes are chosen by
the environment the test passes (OTEL_SEMCONV_STABILITY_OPT_IN, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry import _logs, trace
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

INSTRUMENTATIONS = ("v2", "openllmetry", "openinference")
ENCODINGS = ("protobuf", "json")
SERVICE = "kept-otlp-test-app"
CONVERSATIONS: list[list[dict[str, str]]] = [
    [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Name one prime number."},
    ],
    [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What colour is the sky on a clear day?"},
    ],
]
"""The calls the app makes, in order: a system and a user message each."""
REQUEST_MODEL = "gpt-4o-mini"


class RecordingSpanExporter(SpanExporter):
    """Sends through the OTLP exporter and notes what went out and how it went."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.sent: list[dict[str, Any]] = []
        self.results: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(result.name)
        for span in spans:
            context = span.get_span_context()
            assert context is not None
            self.sent.append(
                {
                    "name": span.name,
                    "trace_id": f"{context.trace_id:032x}",
                    "span_id": f"{context.span_id:016x}",
                    "duration_ns": (span.end_time or 0) - (span.start_time or 0),
                    "attributes": sorted((span.attributes or {}).keys()),
                }
            )
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class RecordingLogExporter(LogRecordExporter):
    """The same for log records (event records: named by `event_name`)."""

    def __init__(self, inner: LogRecordExporter) -> None:
        self.inner = inner
        self.sent: list[dict[str, Any]] = []
        self.results: list[str] = []

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = self.inner.export(batch)
        self.results.append(result.name)
        for readable in batch:
            record = readable.log_record
            attributes = dict(record.attributes or {})
            name = record.event_name or attributes.get("event.name")
            self.sent.append({"event_name": name, "attributes": sorted(attributes)})
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def exporters(kept: str, key: str, encoding: str) -> tuple[SpanExporter, LogRecordExporter]:
    """OTLP/HTTP exporters to kept, in `encoding`, with the project key."""
    headers = {"Authorization": f"Bearer {key}"}
    traces, logs = f"{kept}/v1/traces", f"{kept}/v1/logs"
    if encoding == "json":
        from opentelemetry.exporter.otlp.json.http._log_exporter import (
            OTLPLogExporter as JsonLogExporter,
        )
        from opentelemetry.exporter.otlp.json.http.trace_exporter import (
            OTLPSpanExporter as JsonSpanExporter,
        )

        return (
            JsonSpanExporter(endpoint=traces, headers=headers),
            JsonLogExporter(endpoint=logs, headers=headers),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return (
        OTLPSpanExporter(endpoint=traces, headers=headers),
        OTLPLogExporter(endpoint=logs, headers=headers),
    )


def instrument(which: str) -> None:
    """Patch `openai` with one instrumentation (each has its own OpenAIInstrumentor)."""
    if which == "v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIv2

        OpenAIv2().instrument()  # type: ignore[no-untyped-call]  # its __init__ is untyped
    elif which == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry

        OpenLLMetry().instrument()
    else:
        from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInference

        OpenInference().instrument()


def as_params(messages: list[dict[str, str]]) -> list[ChatCompletionMessageParam]:
    """Plain dicts, as apps pass them (the client's types are TypedDicts of the same)."""
    return cast("list[ChatCompletionMessageParam]", messages)


def call_streaming(client: openai.OpenAI, messages: list[dict[str, str]]) -> dict[str, Any]:
    """The same call streamed, with the usage asked for (the last chunk carries it)."""
    stream = client.chat.completions.create(
        model=REQUEST_MODEL,
        messages=as_params(messages),
        stream=True,
        stream_options={"include_usage": True},
    )
    found: dict[str, Any] = {"output": ""}
    with stream:
        for chunk in stream:
            found.update(id=chunk.id, model=chunk.model)
            if chunk.choices and chunk.choices[0].delta.content:
                found["output"] += chunk.choices[0].delta.content
            if chunk.usage is not None:
                found.update(
                    input_tokens=chunk.usage.prompt_tokens,
                    output_tokens=chunk.usage.completion_tokens,
                )
    return found


def call(client: openai.OpenAI, messages: list[dict[str, str]], stream: bool) -> dict[str, Any]:
    if stream:
        return call_streaming(client, messages)
    response = client.chat.completions.create(
        model=REQUEST_MODEL,
        messages=as_params(messages),
    )
    usage = response.usage
    assert usage is not None
    return {
        "id": response.id,
        "model": response.model,
        "output": response.choices[0].message.content,
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--which", choices=INSTRUMENTATIONS, required=True)
    parser.add_argument("--kept", required=True, help="kept's base URL")
    parser.add_argument("--key", required=True, help="the project key")
    parser.add_argument("--openai", required=True, help="the OpenAI-compatible base URL")
    parser.add_argument("--encoding", choices=ENCODINGS, default="protobuf")
    parser.add_argument("--stream", action="store_true", help="stream the answers")
    parser.add_argument("--wrap-span", help="run the calls inside a (non-GenAI) span so named")
    args = parser.parse_args(argv)

    resource = Resource.create({"service.name": SERVICE})
    span_exporter, log_exporter = exporters(args.kept, args.key, args.encoding)
    spans, logs = RecordingSpanExporter(span_exporter), RecordingLogExporter(log_exporter)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs))
    _logs.set_logger_provider(logger_provider)

    instrument(args.which)
    client = openai.OpenAI(base_url=args.openai, api_key="sk-test", max_retries=0)
    responses = []
    if args.wrap_span:
        with trace.get_tracer(__name__).start_as_current_span(args.wrap_span):
            responses = [call(client, m, args.stream) for m in CONVERSATIONS]
    else:
        responses = [call(client, m, args.stream) for m in CONVERSATIONS]
    client.close()

    # Shutting down flushes: every span and record has been sent (or failed) after this.
    tracer_provider.shutdown()
    logger_provider.shutdown()
    report = {
        "responses": responses,
        "spans": spans.sent,
        "span_exports": spans.results,
        "logs": logs.sent,
        "log_exports": logs.results,
    }
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
