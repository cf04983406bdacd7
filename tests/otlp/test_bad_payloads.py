"""The OTLP/HTTP receiver of a real in-process `kept serve` fed with broken, hostile or
partly wrong requests: each gets the OTLP answer (status, google.rpc.Status body in the
request's encoding, partial success) and nothing it should not store is stored."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

# googleapis-common-protos (the OTLP exporters' dependency) ships .pyi files but no py.typed.
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from kept_wire.contract import MAX_TEXT_CHARS
from tests.helpers import InProcessServer, ServeProcess, generation, serve_process
from tests.otlp.test_mapping import (
    feedback,
    logs,
    otlp_json,
    semconv_chat,
    span,
    span_id,
    traces,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
IGNORED_SPANS = 'outcome="ignored",signal="traces"'  # Prometheus sorts the labels
REJECTED_SPANS = 'outcome="rejected",signal="traces"'
INVALID_ARGUMENT, UNAUTHENTICATED, RESOURCE_EXHAUSTED = 3, 16, 8


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]

    def status_message(self) -> tuple[int, str]:
        """The google.rpc.Status of a refusal, in whichever encoding it came."""
        if self.content_type.startswith(JSON):
            document: dict[str, Any] = json.loads(self.body)
            return int(document["code"]), str(document["message"])
        assert self.content_type.startswith(PROTOBUF), self.content_type
        status = Status.FromString(self.body)
        return int(status.code), str(status.message)


def export(
    server: InProcessServer | ServeProcess,
    body: bytes,
    content_type: str | None = PROTOBUF,
    *,
    signal: str = "traces",
    key: str | None = "",
    encoding: str | None = None,
) -> Answer:
    """POST `body` to /v1/<signal> as an OTLP exporter would (key "": the server's; None:
    no Authorization header)."""
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if key is not None:
        headers["Authorization"] = f"Bearer {key or server.key}"
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    request = urllib.request.Request(
        f"{server.url}/v1/{signal}", data=body, method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Answer(
                response.status,
                response.headers.get("content-type", ""),
                response.read(),
                dict(response.headers),
            )
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers.get("content-type", ""), exc.read(), dict(exc.headers))


Request = TypeVar("Request", ExportTraceServiceRequest, ExportLogsServiceRequest)


def fresh(request: Request) -> Request:
    """`request` in a trace of its own: the session's server remembers the event ids it
    stored (as it must, for idempotency) even when a test empties its tables."""
    trace_id = os.urandom(16)
    if isinstance(request, ExportTraceServiceRequest):
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for item in scope_spans.spans:
                    if item.trace_id:
                        item.trace_id = trace_id
    else:
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    if record.trace_id:
                        record.trace_id = trace_id
    return request


def trace_of(request: ExportTraceServiceRequest) -> bytes:
    return bytes(request.resource_spans[0].scope_spans[0].spans[-1].trace_id)


def stored(server: InProcessServer) -> tuple[int, int]:
    return server.count("generations"), server.count("feedback")


def good_request() -> ExportTraceServiceRequest:
    return fresh(traces(semconv_chat(1)))


def refused(answer: Answer, status: int, code: int, *words: str) -> str:
    """Checks a refusal and returns its message."""
    assert answer.status == status, (answer.status, answer.body)
    got, message = answer.status_message()
    assert got == code, (got, message)
    for word in words:
        assert word in message, message
    return message


# ---- undecodable bodies -----------------------------------------------------------------


def test_a_truncated_protobuf_body_is_refused(server: InProcessServer) -> None:
    whole = good_request().SerializeToString()
    answer = export(server, whole[: len(whole) // 2])
    assert answer.content_type.startswith(PROTOBUF)  # refused in the request's encoding
    refused(answer, 400, INVALID_ARGUMENT, "invalid protobuf body")
    assert stored(server) == (0, 0)


def test_garbage_bytes_are_refused(server: InProcessServer) -> None:
    refused(export(server, b"\xff\xfe\x00garbage" * 64), 400, INVALID_ARGUMENT, "protobuf")
    refused(export(server, b"{not json", JSON), 400, INVALID_ARGUMENT, "invalid JSON body")
    logs_answer = export(server, b"\x0a\xff\xff\xff\xff\x0f", signal="logs")
    refused(logs_answer, 400, INVALID_ARGUMENT, "protobuf")
    assert stored(server) == (0, 0)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[]", ("must be an object",)),
        (b'"resourceSpans"', ("must be an object",)),
        (b"null", ("must be an object",)),
        (b'{"resourceSpans": 5}', ("not an OTLP request",)),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5, "kind": []}]}]}]}', ()),
    ],
)
def test_json_that_is_no_otlp_request_is_refused(
    server: InProcessServer, body: bytes, words: tuple[str, ...]
) -> None:
    answer = export(server, body, JSON)
    assert answer.content_type.startswith(JSON)
    refused(answer, 400, INVALID_ARGUMENT, *words)
    assert stored(server) == (0, 0)


def test_json_with_base64_or_broken_ids_is_refused(server: InProcessServer) -> None:
    document = json.loads(otlp_json(good_request()))
    the_span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    the_span["traceId"] = "CvdlGRbNQ92ESOshHIAxnA=="  # base64, as protobuf's JSON has it
    message = refused(export(server, json.dumps(document).encode(), JSON), 400, INVALID_ARGUMENT)
    assert "traceId" in message and "hex" in message
    the_span["traceId"] = "0af7651916cd43dd8448eb211c80319c"
    the_span["spanId"] = "zz" * 8
    refused(export(server, json.dumps(document).encode(), JSON), 400, INVALID_ARGUMENT, "spanId")
    # The log records' ids are hex too.
    log_document = json.loads(otlp_json(logs(feedback("vote", value=1))))
    log_document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["traceId"] = "nothex"
    answer = export(server, json.dumps(log_document).encode(), JSON, signal="logs")
    refused(answer, 400, INVALID_ARGUMENT, "traceId")
    assert stored(server) == (0, 0)


# ---- what the request says of itself ----------------------------------------------------


def test_other_content_types_are_refused_in_json(server: InProcessServer) -> None:
    body = good_request().SerializeToString()
    for content_type in ("text/plain", "application/protobuf", None):
        answer = export(server, body, content_type)
        assert answer.content_type.startswith(JSON), answer.content_type
        refused(answer, 415, INVALID_ARGUMENT, "Content-Type must be")
    assert stored(server) == (0, 0)


def test_a_missing_or_wrong_key_is_refused(server: InProcessServer) -> None:
    body = good_request().SerializeToString()
    for key in (None, "kp_not-a-key"):
        answer = export(server, body, key=key)
        assert answer.content_type.startswith(PROTOBUF)
        refused(answer, 401, UNAUTHENTICATED)
        json_answer = export(server, otlp_json(good_request()), JSON, key=key, signal="logs")
        refused(json_answer, 401, UNAUTHENTICATED)
    assert stored(server) == (0, 0)


def test_a_gzip_body_is_inflated(server: InProcessServer) -> None:
    body = gzip.compress(good_request().SerializeToString())
    answer = export(server, body, encoding="gzip")
    assert answer.status == 200, answer.body
    assert ExportTraceServiceResponse.FromString(answer.body) == ExportTraceServiceResponse()
    assert stored(server) == (1, 0)


def test_a_broken_gzip_body_is_refused(server: InProcessServer) -> None:
    packed = gzip.compress(good_request().SerializeToString())
    for body in (packed[: len(packed) // 2], b"not gzip at all", packed + b"trailing"):
        refused(export(server, body, encoding="gzip"), 400, INVALID_ARGUMENT, "gzip")
    # A plain body that says it is gzip.
    plain = good_request().SerializeToString()
    refused(export(server, plain, encoding="gzip"), 400, INVALID_ARGUMENT, "gzip")
    assert stored(server) == (0, 0)


def test_a_body_over_the_limit_is_refused(server: InProcessServer) -> None:
    limit = server.runtime.settings.max_body_bytes
    # A valid request: it is its size that is refused, not its content.
    request = traces(semconv_chat(1, **{"app.padding": "p" * (limit + 1024)}))
    answer = export(server, request.SerializeToString())
    refused(answer, 413, RESOURCE_EXHAUSTED, "larger than")
    # Small on the wire, too large inflated.
    inflated = server.runtime.settings.max_inflated_bytes
    bomb = gzip.compress(b" " * (inflated + 1))
    refused(export(server, bomb, JSON, encoding="gzip"), 413, RESOURCE_EXHAUSTED, "inflates")
    assert stored(server) == (0, 0)


# ---- partly wrong requests --------------------------------------------------------------


def test_broken_spans_are_a_partial_success(server: InProcessServer) -> None:
    no_ids = span(0, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})
    oversized = semconv_chat(3, **{"gen_ai.output.messages": json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": "x" * (MAX_TEXT_CHARS + 1)}]}]
    )})  # fmt: skip
    request = fresh(traces(no_ids, semconv_chat(2), oversized))
    rejected_before = server.metric("kept_otlp_records_total", REJECTED_SPANS)
    answer = export(server, request.SerializeToString())
    assert answer.status == 200, answer.body
    partial = ExportTraceServiceResponse.FromString(answer.body).partial_success
    assert partial.rejected_spans == 2
    assert partial.error_message.startswith("2 record(s) not stored")
    assert "no trace_id or span_id" in partial.error_message
    assert "output" in partial.error_message and str(MAX_TEXT_CHARS) in partial.error_message
    assert stored(server) == (1, 0)
    assert (
        server.count(
            "generations",
            "generation_id = {g:String}",
            g=f"{trace_of(request).hex()}-{span_id(2).hex()}",
        )
        == 1
    )
    after = server.metric("kept_otlp_records_total", REJECTED_SPANS)
    assert after - rejected_before == 2

    # In JSON, the same answer in JSON (and the good span, re-sent, is not stored again).
    json_answer = export(server, otlp_json(request), JSON)
    assert json_answer.status == 200 and json_answer.content_type.startswith(JSON)
    document = json.loads(json_answer.body)
    assert int(document["partialSuccess"]["rejectedSpans"]) == 2
    assert "no trace_id or span_id" in document["partialSuccess"]["errorMessage"]
    assert stored(server) == (1, 0)


def test_broken_log_records_are_a_partial_success(server: InProcessServer) -> None:
    request = fresh(logs(feedback("vote", value=2), feedback("vote", value=1), feedback(None)))
    answer = export(server, request.SerializeToString(), signal="logs")
    assert answer.status == 200, answer.body
    partial = ExportLogsServiceResponse.FromString(answer.body).partial_success
    assert partial.rejected_log_records == 2
    assert "kept.feedback.type must be one of" in partial.error_message
    assert stored(server) == (0, 1)


def test_a_resent_request_is_stored_once(server: InProcessServer) -> None:
    request = good_request()
    body = request.SerializeToString()
    for _ in range(3):
        assert export(server, body).status == 200
    assert stored(server) == (1, 0)
    # The same span in the other encoding is the same event too.
    assert export(server, otlp_json(request), JSON).status == 200
    assert stored(server) == (1, 0)


def test_spans_that_are_no_model_calls_are_counted_not_stored(server: InProcessServer) -> None:
    ignored_before = server.metric("kept_otlp_records_total", IGNORED_SPANS)
    request = fresh(
        traces(
            span(1, {"http.request.method": "GET", "url.full": "https://example.com/"}),
            span(2, {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e"}),
            span(3, {"openinference.span.kind": "CHAIN"}),
        )
    )
    answer = export(server, request.SerializeToString())
    assert answer.status == 200
    response = ExportTraceServiceResponse.FromString(answer.body)
    assert response == ExportTraceServiceResponse() and not response.HasField("partial_success")
    json_answer = export(server, otlp_json(request), JSON)
    assert json_answer.status == 200 and json.loads(json_answer.body) == {}
    assert stored(server) == (0, 0)
    ignored = server.metric("kept_otlp_records_total", IGNORED_SPANS) - ignored_before
    assert ignored == 6


# ---- overload -----------------------------------------------------------------------------


def test_overload_answers_429_with_retry_after(tmp_path: Path) -> None:
    # A long linger keeps the first request's rows pending while the export arrives.
    env = {"KEPT_PENDING_MAX_ROWS": "5", "KEPT_BATCH_LINGER_MS": "1500"}
    with serve_process(tmp_path / "data", None, **env) as server:
        first = threading.Thread(target=lambda: server.post([generation() for _ in range(5)]))
        first.start()
        time.sleep(0.5)
        answer = export(server, good_request().SerializeToString())
        first.join()
        refused(answer, 429, RESOURCE_EXHAUSTED, "retry later")
        assert int({k.lower(): v for k, v in answer.headers.items()}["retry-after"]) >= 1
