"""An app's OpenTelemetry pipelines exporting to kept, as an app sets them up: the SDK's
providers with the OTLP/HTTP protobuf exporters and the project key in the headers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


@contextmanager
def exporting_to(url: str, key: str) -> Iterator[tuple[TracerProvider, LoggerProvider]]:
    """Tracer and logger providers sending to kept at `url`; no batching, so a record is
    stored when the call that emits it returns. Shut down (flushed) on leaving."""
    headers = {"Authorization": f"Bearer {key}"}
    tracers = TracerProvider()
    tracers.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(url + "/v1/traces", headers=headers))
    )
    loggers = LoggerProvider()
    loggers.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(url + "/v1/logs", headers=headers))
    )
    try:
        yield tracers, loggers
    finally:
        tracers.shutdown()
        loggers.shutdown()
