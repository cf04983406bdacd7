"""The real `openai` client, instrumented in turn by OpenTelemetry's
`opentelemetry-instrumentation-openai-v2`, OpenLLMetry's `opentelemetry-instrumentation-
openai` and `openinference-instrumentation-openai`, calls a local OpenAI-compatible
server and exports over OTLP/HTTP to a real `kept serve`: each call lands as a generation
with the right model, tokens, latency, input and output.

Each case runs tests/otlp/instrumented_app.py in a process of its own (instrumentations
patch `openai` for good). Rows are stored before kept answers the export, and the app
flushes its exporters before it exits, so the rows are there when it has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.helpers import InProcessServer
from tests.otlp.instrumented_app import CONVERSATIONS
from tests.otlp.openai_server import (
    DELAY_S,
    MODEL,
    completion_tokens,
    openai_server,
    prompt_tokens,
    reply_to,
)

OPT_IN = {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"}
V2_SPAN_ONLY = {**OPT_IN, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
V2_EVENT_ONLY = {**OPT_IN, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"}
COLUMNS = (
    "generation_id", "project", "model", "input_format", "input", "output_captured", "output",
    "latency_ms", "input_tokens", "output_tokens",
)  # fmt: skip
SLOWEST_MS = 5000
"""A call to the local server takes DELAY_S and some milliseconds; far more is a bug."""


@dataclass
class AppRun:
    """What the instrumented app reported: the responses, and what its exporters sent."""

    responses: list[dict[str, Any]]
    spans: list[dict[str, Any]]
    logs: list[dict[str, Any]]

    def model_spans(self, name: str) -> list[dict[str, Any]]:
        found = [s for s in self.spans if s["name"] == name]
        assert len(found) == len(CONVERSATIONS), self.spans
        return found


@pytest.fixture(scope="module")
def openai_url() -> Iterator[str]:
    with openai_server() as url:
        yield url


def run_app(server: InProcessServer, openai_url: str, which: str, *extra: str,
            env: dict[str, str] | None = None) -> AppRun:  # fmt: skip
    """Run the app with one instrumentation; fails unless every export succeeded."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "KEPT_"))}
    done = subprocess.run(
        [
            sys.executable, "-m", "tests.otlp.instrumented_app", "--which", which,
            "--kept", server.url, "--key", server.key, "--openai", openai_url, *extra,
        ],
        capture_output=True, text=True, cwd=ROOT, env={**clean, **(env or {})}, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["span_exports"], f"no span was exported:\n{done.stderr[-3000:]}"
    exports = report["span_exports"] + report["log_exports"]
    assert set(exports) == {"SUCCESS"}, f"{exports}\n{done.stderr[-3000:]}"
    return AppRun(report["responses"], report["spans"], report["logs"])


def stored(server: InProcessServer) -> list[dict[str, Any]]:
    rows = server.runtime.store.rows(f"SELECT {', '.join(COLUMNS)} FROM generations ORDER BY ts")
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def ignored(server: InProcessServer, signal: str) -> float:
    labels = f'outcome="ignored",signal="{signal}"'  # the client library sorts labels
    return server.metric("kept_otlp_records_total", labels)


def assert_call(row: dict[str, Any], response: dict[str, Any], messages: list[dict[str, str]],
                *, content: bool = True) -> None:  # fmt: skip
    """`row` is the generation of the call that sent `messages` and got `response`: the
    model, the tokens the server counted, and (with `content`) the messages and reply."""
    assert response["model"] == MODEL
    assert response["output"] == reply_to(messages)
    assert row["project"] == "demo"
    assert row["model"] == MODEL
    assert row["input_tokens"] == prompt_tokens(messages) == response["input_tokens"]
    assert row["output_tokens"] == completion_tokens(reply_to(messages))
    assert row["output_tokens"] == response["output_tokens"]
    if content:
        assert row["input_format"] == "chat"
        assert json.loads(row["input"]) == messages
        assert row["output_captured"] is True
        assert row["output"] == reply_to(messages)
    else:
        assert (row["input_format"], row["input"]) == ("none", "")
        assert (row["output_captured"], row["output"]) == (False, "")


def assert_latency(row: dict[str, Any], span: dict[str, Any]) -> None:
    """The latency is the span's duration, which covers the server's delay."""
    assert row["latency_ms"] == round(span["duration_ns"] / 1e6)
    assert DELAY_S * 1000 <= row["latency_ms"] < SLOWEST_MS


def assert_one_per_call(
    server: InProcessServer, run: AppRun, span_name: str, generation_ids: list[str]
) -> None:
    """One generation per call, with everything the span carried."""
    rows = stored(server)
    assert [r["generation_id"] for r in rows] == generation_ids
    for row, response, span, messages in zip(
        rows, run.responses, run.model_spans(span_name), CONVERSATIONS, strict=True
    ):
        assert_call(row, response, messages)
        assert_latency(row, span)


def test_openai_v2_with_messages_on_the_span(server: InProcessServer, openai_url: str) -> None:
    run = run_app(server, openai_url, "v2", env=V2_SPAN_ONLY)
    ids = [r["id"] for r in run.responses]
    assert len(set(ids)) == len(CONVERSATIONS)
    assert_one_per_call(server, run, "chat gpt-4o-mini", ids)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_openai_v2_with_messages_in_the_details_event(
    server: InProcessServer, openai_url: str, encoding: str
) -> None:
    """The span and the gen_ai.client.inference.operation.details event are two rows of
    the same generation: timing and tokens from the span, messages from the event (whose
    structured attribute values each OTLP encoding spells its own way)."""
    run = run_app(server, openai_url, "v2", "--encoding", encoding, env=V2_EVENT_ONLY)
    details = [
        r for r in run.logs if r["event_name"] == "gen_ai.client.inference.operation.details"
    ]
    assert len(details) == len(CONVERSATIONS)
    rows = stored(server)
    assert len(rows) == 2 * len(CONVERSATIONS)
    for response, span, messages in zip(
        run.responses, run.model_spans("chat gpt-4o-mini"), CONVERSATIONS, strict=True
    ):
        # The span's row has the latency; the event's has none (an event has no duration).
        parts = [r for r in rows if r["generation_id"] == response["id"]]
        (from_span,) = [r for r in parts if r["latency_ms"] is not None]
        (from_event,) = [r for r in parts if r["latency_ms"] is None]
        assert_call(from_span, response, messages, content=False)
        assert_latency(from_span, span)
        assert_call(from_event, response, messages)


def test_openai_v2_without_the_opt_in(server: InProcessServer, openai_url: str) -> None:
    """The older per-message events (gen_ai.user.message, gen_ai.choice) are not read
    (README: use the opt-in): the span still makes the generation, with no content."""
    before = ignored(server, "logs")
    run = run_app(server, openai_url, "v2")
    names = {r["event_name"] for r in run.logs}
    assert {"gen_ai.user.message", "gen_ai.choice"} <= names
    assert "gen_ai.client.inference.operation.details" not in names
    rows = stored(server)
    assert [r["generation_id"] for r in rows] == [r["id"] for r in run.responses]
    for row, response, span, messages in zip(
        rows, run.responses, run.model_spans("chat gpt-4o-mini"), CONVERSATIONS, strict=True
    ):
        assert_call(row, response, messages, content=False)
        assert_latency(row, span)
    assert ignored(server, "logs") - before == len(run.logs)


def test_openllmetry(server: InProcessServer, openai_url: str) -> None:
    run = run_app(server, openai_url, "openllmetry")
    assert_one_per_call(server, run, "openai.chat", [r["id"] for r in run.responses])


def test_openinference_over_otlp_json(server: InProcessServer, openai_url: str) -> None:
    """OpenInference spans carry no response id: the generation is named by the span."""
    run = run_app(server, openai_url, "openinference", "--encoding", "json")
    spans = run.model_spans("ChatCompletion")
    ids = [f"{s['trace_id']}-{s['span_id']}" for s in spans]
    assert_one_per_call(server, run, "ChatCompletion", ids)


def test_spans_that_are_no_model_call_are_ignored(server: InProcessServer, openai_url: str) -> None:
    """An app's own span around the calls (a request handler's, here) is counted as
    ignored and not stored; the model calls inside it are (over OTLP/JSON)."""
    before = ignored(server, "traces")
    run = run_app(
        server, openai_url, "v2", "--encoding", "json", "--wrap-span", "GET /", env=V2_SPAN_ONLY
    )
    (outer,) = [s for s in run.spans if s["name"] == "GET /"]
    assert len(run.spans) == len(CONVERSATIONS) + 1
    assert_one_per_call(server, run, "chat gpt-4o-mini", [r["id"] for r in run.responses])
    assert ignored(server, "traces") - before == 1
    assert (
        server.count("generations", "generation_id LIKE {s:String}", s=f"%{outer['span_id']}") == 0
    )


@pytest.mark.parametrize(
    ("which", "env", "span_name"),
    [
        ("v2", V2_SPAN_ONLY, "chat gpt-4o-mini"),
        ("openllmetry", {}, "openai.chat"),
        ("openinference", {}, "ChatCompletion"),
    ],
)
def test_streamed_answers(
    server: InProcessServer, openai_url: str, which: str, env: dict[str, str], span_name: str
) -> None:
    """A streamed call's span ends when the stream does and carries the assembled text
    and the usage of the last chunk: the same generation as an unstreamed call."""
    run = run_app(server, openai_url, which, "--stream", env=env)
    assert [r["output"] for r in run.responses] == [reply_to(m) for m in CONVERSATIONS]
    ids = [r["id"] for r in run.responses]
    if which == "openinference":
        ids = [f"{s['trace_id']}-{s['span_id']}" for s in run.model_spans(span_name)]
    assert_one_per_call(server, run, span_name, ids)
