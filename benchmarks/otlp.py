"""OTLP ingest throughput: GenAI spans into the store over `POST /v1/traces`, beside `/v1/events`.

Each endpoint gets a fresh `kept serve` (a real subprocess, embedded store unless --dsn)
and the same load: --clients threads POST pre-encoded bodies for --seconds, then the
server is stopped and the generations in its store are counted, which must equal what
was acknowledged (a 200 without rejected spans, a 202's `accepted`, warm-ups included).

- OTLP/protobuf: ExportTraceServiceRequest bodies of --batch spans shaped like the OpenAI
  instrumentation's (`chat` operation, request/response model, a unique response id,
  usage tokens, gen_ai.input.messages / gen_ai.output.messages JSON strings of a few
  hundred bytes, random trace and span ids, times within the last hour).
- /v1/events: generation events of the same content (chat input, output text, model,
  tokens, latency, user), posted by benchmarks/intake.py's client loop.
- OTLP/JSON (hex ids): the same spans, a shorter run (--json-seconds) on the protobuf
  run's server; exporters and apps use both encodings.

Building hundreds of thousands of spans with the protobuf classes would take longer than
the run, so one body per encoding is built with random ids, their offsets in it found,
and every body sent is a copy with fresh ids written at those offsets (ids are fixed-size
in all three encodings). Client and server share this machine's cores: figures are floors.

    .venv/bin/python benchmarks/otlp.py [--seconds 15] [--batch 500] [--clients 4]
                                        [--json-seconds 5] [--dsn http://...]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import _paths  # noqa: F401 - first: puts the repository on the path, this folder off it
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from benchmarks.intake import client_loop
from kept_storage import Store
from tests.helpers import ServeProcess, database_for, serve_process, store_of

MODEL, RESPONSE_MODEL = "gpt-4o-mini", "gpt-4o-mini-2024-07-18"
SYSTEM = "You are the support assistant of Acme Cloud. Answer briefly and politely."
PROMPT = "Summarise the following support ticket. " * 5
ANSWER = "The customer reports that the export fails on large files. " * 4
INPUT_TOKENS, OUTPUT_TOKENS = 412, 96
USER = "u-17"
HOUR_NS = 3600 * 10**9

Ids = tuple[bytes, bytes, bytes]
"""A span's trace id, span id and response id."""

# A value written fresh into every copy of a body: its length is the slot's.
Fresh = Callable[[], bytes]


def trace_id() -> bytes:
    return os.urandom(16)


def span_id() -> bytes:
    return os.urandom(8)


def response_id() -> bytes:
    """Like OpenAI's `chatcmpl-` ids (29 characters after the prefix)."""
    return b"chatcmpl-" + os.urandom(15).hex()[:29].encode()


def hex_of(fresh: Fresh) -> Fresh:
    return lambda: fresh().hex().encode()


def uuid4() -> bytes:
    return str(uuid.uuid4()).encode()


@dataclass
class Template:
    """One encoded body and where its ids are: `copy()` is a new body, same size."""

    body: bytes
    slots: list[tuple[int, Fresh]]
    items: int

    @classmethod
    def locate(cls, body: bytes, values: list[tuple[bytes, Fresh]], items: int) -> Template:
        slots = []
        for value, fresh in values:
            offset = body.find(value)
            if offset < 0 or body.find(value, offset + 1) >= 0:
                raise SystemExit(f"id {value!r} is not in the body exactly once")
            slots.append((offset, fresh))
        return cls(body, slots, items)

    def copy(self) -> bytes:
        out = bytearray(self.body)
        for offset, fresh in self.slots:
            value = fresh()
            out[offset : offset + len(value)] = value
        return bytes(out)


def attribute(key: str, value: object) -> KeyValue:
    if isinstance(value, str):
        any_value = AnyValue(string_value=value)
    elif isinstance(value, int):
        any_value = AnyValue(int_value=value)
    elif isinstance(value, float):
        any_value = AnyValue(double_value=value)
    elif isinstance(value, list):
        items = [AnyValue(string_value=str(v)) for v in value]
        any_value = AnyValue(array_value=ArrayValue(values=items))
    else:
        raise TypeError(f"{key}: {type(value).__name__}")
    return KeyValue(key=key, value=any_value)


def chat_span(ids: Ids, start_ns: int, latency_ns: int) -> Span:
    """A chat span as opentelemetry-instrumentation-openai-v2 emits it with content capture
    and the latest GenAI conventions, plus the `user.id` an app sets."""
    trace, span, response = ids
    input_messages = [
        {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]},
    ]
    output_messages = [
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}],
         "finish_reason": "stop"},
    ]  # fmt: skip
    attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL, "gen_ai.request.temperature": 0.2,
        "gen_ai.response.model": RESPONSE_MODEL, "gen_ai.response.id": response.decode(),
        "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": INPUT_TOKENS,
        "gen_ai.usage.output_tokens": OUTPUT_TOKENS, "server.address": "api.openai.com",
        "server.port": 443, "openai.response.service_tier": "default",
        "gen_ai.input.messages": json.dumps(input_messages),
        "gen_ai.output.messages": json.dumps(output_messages), "user.id": USER,
    }  # fmt: skip
    return Span(
        trace_id=trace,
        span_id=span,
        name=f"chat {MODEL}",
        kind=Span.SpanKind.SPAN_KIND_CLIENT,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + latency_ns,
        attributes=[attribute(k, v) for k, v in attributes.items()],
    )


def trace_request(batch: int, rng: random.Random) -> tuple[ExportTraceServiceRequest, list[Ids]]:
    """`batch` chat spans of one service, and each span's (trace, span, response) ids."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        [attribute("service.name", "support-bot"), attribute("telemetry.sdk.language", "python"),
         attribute("telemetry.sdk.name", "opentelemetry"),
         attribute("telemetry.sdk.version", "1.38.0")]
    )  # fmt: skip
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.openai_v2"
    scope_spans.scope.version = "2.1b0"
    now_ns = time.time_ns()
    ids = []
    for _ in range(batch):
        span_ids = (trace_id(), span_id(), response_id())
        start = now_ns - rng.randrange(60 * 10**9, HOUR_NS)
        scope_spans.spans.append(chat_span(span_ids, start, rng.randrange(300, 3000) * 10**6))
        ids.append(span_ids)
    return request, ids


def protobuf_template(batch: int, rng: random.Random) -> Template:
    request, ids = trace_request(batch, rng)
    values = [
        pair
        for trace, span, response in ids
        for pair in ((trace, trace_id), (span, span_id), (response, response_id))
    ]
    return Template.locate(request.SerializeToString(), values, batch)


def json_template(batch: int, rng: random.Random) -> Template:
    """OTLP/JSON: the protobuf JSON mapping with hex trace and span ids."""
    request, ids = trace_request(batch, rng)
    document = json_format.MessageToDict(request)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId"):
            span[key] = base64.b64decode(span[key]).hex()
    values = [
        pair
        for trace, span, response in ids
        for pair in (
            (trace.hex().encode(), hex_of(trace_id)), (span.hex().encode(), hex_of(span_id)),
            (response, response_id),
        )
    ]  # fmt: skip
    return Template.locate(json.dumps(document).encode(), values, batch)


def events_template(batch: int, rng: random.Random) -> Template:
    """/v1/events: the generations the spans above become, same content and sizes."""
    now = time.time()
    events, values = [], []
    for _ in range(batch):
        event, generation = uuid4(), response_id()
        ts = datetime.fromtimestamp(now - rng.uniform(60, 3600), timezone.utc)
        events.append(
            {"type": "generation", "event_id": event.decode(), "generation_id": generation.decode(),
             "ts": ts.isoformat(timespec="milliseconds"), "model": RESPONSE_MODEL,
             "input": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
             "output": ANSWER, "latency_ms": rng.randrange(300, 3000),
             "input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS, "user_id": USER}
        )  # fmt: skip
        values += [(event, uuid4), (generation, response_id)]
    return Template.locate(json.dumps(events).encode(), values, batch)


def spans_accepted(content_type: str, batch: int) -> Callable[[int, bytes], int]:
    """What a `/v1/traces` answer says was stored: the whole batch, as a benchmark span
    must never be rejected (SystemExit otherwise)."""

    def accepted(status: int, payload: bytes) -> int:
        if status != 200:
            raise SystemExit(f"unexpected {status}: {payload[:200]!r}")
        if content_type == "application/json":
            rejected = int(json.loads(payload).get("partialSuccess", {}).get("rejectedSpans", 0))
        else:
            rejected = ExportTraceServiceResponse.FromString(payload).partial_success.rejected_spans
        if rejected:
            raise SystemExit(f"{rejected} spans rejected: {payload[:300]!r}")
        return batch

    return accepted


Loop = Callable[[str, str, list[bytes], float, list[int]], None]


@dataclass
class Result:
    items: int
    requests: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.items / self.seconds


@dataclass
class Server:
    """A fresh `kept serve`, and how many generations it acknowledged (warm-ups too)."""

    process: ServeProcess
    acknowledged: int = 0


@contextmanager
def fresh_server(dsn: str | None) -> Iterator[Server]:
    """A `kept serve` on an empty store; on leaving, it is stopped and the generations in
    its store are counted, which must be every one acknowledged."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        env = {"KEPT_DSN": dsn, "KEPT_DATABASE": database_for(data)} if dsn else {}
        with serve_process(data, None, **env) as process:
            server = Server(process)
            yield server
            if process.stop() not in (0, -signal.SIGTERM):  # uvicorn re-raises the signal
                raise SystemExit("kept serve did not stop cleanly:\n" + "".join(process.output))
        store = Store(dsn, database_for(data)) if dsn else Store(*store_of(data))
        try:
            stored = int(store.scalar("SELECT count() FROM generations"))
            if dsn:  # leave nothing behind on the user's server
                store.command(f"DROP DATABASE IF EXISTS {store.database}")
        finally:
            store.close()
    print(f"  stored: {stored:,} generations of {server.acknowledged:,} acknowledged")
    if stored != server.acknowledged:
        raise SystemExit(f"the store holds {stored:,} generations, not {server.acknowledged:,}")


def measure(
    server: Server, name: str, unit: str, template: Template, loop: Loop, seconds: float,
    clients: int, max_rate: int,
) -> Result:  # fmt: skip
    """Time `clients` threads running `loop` against `server` (after a warm-up)."""
    per_client = int(max_rate * seconds / template.items / clients) + 2
    started = time.monotonic()
    bodies = [[template.copy() for _ in range(per_client)] for _ in range(clients)]
    mib = len(template.body) * per_client * clients / 2**20
    print(f"{name}: {per_client * clients:,} bodies of {template.items} {unit} "
          f"({len(template.body) / template.items:,.0f} B each, {mib:,.0f} MiB), "
          f"copied in {time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
    url, key = server.process.url, server.process.key
    warm: list[int] = []
    loop(url, key, bodies[0][:2], time.monotonic() + 60, warm)
    counts: list[list[int]] = [[] for _ in range(clients)]
    started = time.monotonic()
    stop = started + seconds
    errors: list[BaseException] = []

    def client(number: int) -> None:
        # An exception, SystemExit too, would end only its thread, silently: keep it.
        try:
            loop(url, key, bodies[number][2:], stop, counts[number])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    if errors:
        raise SystemExit(f"{name}: a client failed: {errors[0]!r}")
    if any(len(c) == per_client - 2 for c in counts):
        # Every client has as many bodies and they run side by side: they ran out at
        # about the same time, and the rate over the time they took still holds.
        print(f"  (the clients sent every body before {seconds:g} s; --max-rate builds more)")
    result = Result(sum(sum(c) for c in counts), sum(len(c) for c in counts), elapsed)
    server.acknowledged += result.items + sum(warm)
    print(
        f"  {result.rate:,.0f} {unit}/s durable ({result.items:,} {unit} in "
        f"{result.requests:,} requests, {clients} clients, {elapsed:.1f} s)",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--json-seconds", type=float, default=5)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--max-rate", type=int, default=12_000, help="items/s the pre-built bodies last for"
    )
    parser.add_argument(
        "--dsn", help="a ClickHouse server (http://...) instead of the embedded store"
    )
    args = parser.parse_args()
    rng = random.Random(7)
    protobuf, json_ = "application/x-protobuf", "application/json"
    batch, clients, dsn = args.batch, args.clients, args.dsn

    def otlp(content_type: str) -> Loop:
        accepted = spans_accepted(content_type, batch)
        return lambda url, key, bodies, stop, counts: client_loop(
            url, key, bodies, stop, counts, "/v1/traces", content_type, accepted
        )

    common = (args.seconds, clients, args.max_rate)
    # A server of its own per endpoint: neither run pays for the other's data or merges.
    with fresh_server(dsn) as server:
        body = events_template(batch, rng)
        events = measure(server, "/v1/events (JSON)", "events", body, client_loop, *common)
    with fresh_server(dsn) as server:
        body = protobuf_template(batch, rng)
        spans = measure(server, "/v1/traces (OTLP/protobuf)", "spans", body, otlp(protobuf),
                        *common)  # fmt: skip
        # The same endpoint: a shorter run on the same server (its count covers both).
        body = json_template(batch, rng)
        spans_json = measure(server, "/v1/traces (OTLP/JSON)", "spans", body, otlp(json_),
                             args.json_seconds, clients, args.max_rate)  # fmt: skip
    print(f"OTLP/protobuf / events: {spans.rate / events.rate:.2f}; "
          f"OTLP/JSON / events: {spans_json.rate / events.rate:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
