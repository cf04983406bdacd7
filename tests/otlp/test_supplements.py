"""A model call reported in two parts: an OTel span (model, tokens, latency) and its
`gen_ai.client.inference.operation.details` event (the messages), sent by the real OTel
SDK's exporters, merge into one generation in reports, dashboards and exports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider

from kept_analytics.export import ExportSpec, Summary, default_redact, run
from kept_analytics.report import ReportSpec, report
from tests.helpers import InProcessServer
from tests.otlp.pipelines import exporting_to

SYSTEM = "Answer in one word."
QUESTION = "Capital of France?"
ANSWER = "Paris"
MODEL = "gpt-4o-mini-2024-07-18"


@dataclass
class App:
    """An app's OTel pipelines, exporting to kept as an app would (no batching, so a
    record is stored when its call returns)."""

    tracers: TracerProvider
    loggers: LoggerProvider

    def call(self, response_id: str, *, span: bool = True, details: bool = True) -> None:
        """One chat call: a span without messages, and the details event inside it."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": MODEL,
            "gen_ai.response.id": response_id,
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 1,
        }
        messages: dict[str, Any] = {
            "gen_ai.system_instructions": [{"type": "text", "content": SYSTEM}],
            "gen_ai.input.messages": [
                {"role": "user", "parts": [{"type": "text", "content": QUESTION}]}
            ],
            "gen_ai.output.messages": [
                {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}]}
            ],
        }
        # Without `span`, the span goes nowhere (lost, or not sent yet): the details
        # event still carries its context.
        tracers = self.tracers if span else TracerProvider()
        with tracers.get_tracer("app").start_as_current_span(
            "chat gpt-4o-mini", attributes=attributes
        ):
            time.sleep(0.06)
            if details:
                self.loggers.get_logger("app").emit(
                    event_name="gen_ai.client.inference.operation.details",
                    attributes={**attributes, **messages},
                )


@pytest.fixture
def app(server: InProcessServer) -> Iterator[App]:
    with exporting_to(server.url, server.key) as (tracers, loggers):
        yield App(tracers, loggers)


def _report(server: InProcessServer) -> list[dict[str, Any]]:
    assert server.runtime.analytics.run_now() is not None
    now = datetime.now(timezone.utc)
    return report(server.runtime.store, ReportSpec(since=now - timedelta(days=1), until=now))


def test_span_and_details_event_are_one_generation(server: InProcessServer, app: App) -> None:
    app.call("chatcmpl-1")
    rows = server.runtime.store.rows(
        "SELECT supplement, latency_ms, input_format, output FROM generations "
        "WHERE generation_id = 'chatcmpl-1' ORDER BY supplement"
    )
    assert len(rows) == 2
    (span, details) = rows
    assert span[0] is False and span[1] >= 60 and span[2] == "none" and span[3] == ""
    assert details[0] is True and details[1] is None and details[2] == "chat"
    assert details[3] == ANSWER

    [group] = _report(server)
    assert group["generations"] == 1
    assert group["latency_ms_p50"] >= 60
    assert group["output_tokens_total"] == 1


def test_exports_take_the_messages_of_the_supplement(server: InProcessServer, app: App) -> None:
    app.call("chatcmpl-2")
    # Accepted and voted up: the export's default selection of good generations.
    logger = app.loggers.get_logger("app")
    for kind, extra in (("action", {"kept.feedback.name": "accept"}), ("vote", {})):
        logger.emit(
            event_name="kept.feedback",
            attributes={
                "kept.feedback.type": kind,
                "kept.generation_id": "chatcmpl-2",
                **({"kept.feedback.value": 1} if kind == "vote" else extra),
            },
        )
    assert server.runtime.analytics.run_now() is not None
    records = [r for _, r in run(server.runtime.store, ExportSpec(), default_redact, Summary())]
    assert records == [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": ANSWER},
            ]
        }
    ]


def test_a_supplement_alone_is_no_generation(server: InProcessServer, app: App) -> None:
    app.call("chatcmpl-3", span=False)
    assert server.count("generations") == 1
    assert _report(server) == []
    volume = server.runtime.store.scalar("SELECT countIf(NOT supplement) FROM generations")
    assert volume == 0
    # Its span arrives later: one generation, with the supplement's output.
    app.call("chatcmpl-3", details=False)
    [group] = _report(server)
    assert group["generations"] == 1
