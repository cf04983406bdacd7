"""Contract v1 at the HTTP intake: every bad input gets the documented status and error
body, and a refused request stores nothing (checked in the real engine)."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from typing import Any

import pytest

from kept_ingest.contract import json_schema
from kept_wire.contract import MAX_TEXT_CHARS
from tests.helpers import InProcessServer, feedback, generation, now_iso

GID = "gen-1"

KINDS = ("generation", "vote", "action", "correction", "survival", "score")


def valid(kind: str) -> dict[str, Any]:
    """A fresh valid event of `kind` (a new event_id each call)."""
    return {
        "generation": lambda: generation(generation_id=GID),
        "vote": lambda: feedback("vote", GID, value=1),
        "action": lambda: feedback("action", GID, name="accept"),
        "correction": lambda: feedback("correction", GID, text="fixed"),
        "survival": lambda: feedback("survival", GID, checkpoint_s=30, score=0.9),
        "score": lambda: feedback("score", GID, name="helpful", value=0.5, source="llm"),
    }[kind]()


REQUIRED = {
    "generation": ["event_id", "generation_id", "ts", "model"],
    "vote": ["event_id", "generation_id", "ts", "value"],
    "action": ["event_id", "generation_id", "ts", "name"],
    "correction": ["event_id", "generation_id", "ts", "text"],
    "survival": ["event_id", "generation_id", "ts", "checkpoint_s", "score"],
    "score": ["event_id", "generation_id", "ts", "name", "value", "source"],
}


def _stored(server: InProcessServer) -> int:
    return server.count("generations") + server.count("feedback")


def _refused(server: InProcessServer, body: Any, field: str | None, index: int | None = 1) -> str:
    """Send a valid event followed by `body`; expect 422 naming `field` and nothing stored."""
    response = server.post([valid("generation") | {"generation_id": "ok"}, body])
    assert response.status == 422, response.body
    assert response.body["error"] == "invalid_events"
    errors = response.body["errors"]
    assert {"index": index, "field": field} in [
        {"index": e["index"], "field": e["field"]} for e in errors
    ], errors
    assert all(set(e) == {"index", "field", "message"} for e in errors)
    assert _stored(server) == 0
    return str(next(e["message"] for e in errors if e["field"] == field))


def test_every_type_is_accepted_and_stored(server: InProcessServer) -> None:
    response = server.post([valid(k) for k in KINDS])
    assert response.status == 202
    assert response.body == {"accepted": 6}
    assert server.count("generations") == 1
    assert server.count("feedback") == 5
    row = server.runtime.store.rows(
        "SELECT project, model, input_format, input, output_captured, output FROM generations"
    )[0]
    assert row == ("demo", "gpt-test", "text", "Summarise this.", True, "A summary.")


@pytest.mark.parametrize(("kind", "field"), [(k, f) for k, fs in REQUIRED.items() for f in fs])
def test_every_required_field(server: InProcessServer, kind: str, field: str) -> None:
    event = {k: v for k, v in valid(kind).items() if k != field}
    assert _refused(server, event, field) == "Field required"


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("generation", "model", 5),
        ("generation", "model", ""),
        ("generation", "latency_ms", "12"),
        ("generation", "latency_ms", -1),
        ("generation", "input_tokens", 1.5),
        ("generation", "cost_usd", "0.1"),
        ("generation", "metadata.k", {"k": 1}),
        ("generation", "metadata", ["a"]),
        ("generation", "input", 7),
        ("generation", "input.0.content", None),
        ("generation", "output", ["x"]),
        ("generation", "user_id", 3),
        ("generation", "event_id", "not-a-uuid"),
        ("generation", "generation_id", ""),
        ("vote", "value", 2),
        ("vote", "value", "1"),
        ("action", "name", None),
        ("action", "value", {"x": 1}),
        ("correction", "text", 1),
        ("survival", "score", 1.5),
        ("survival", "checkpoint_s", 0),
        ("score", "source", "robot"),
        ("score", "value", "high"),
        ("generation", "project", "bad project!"),
    ],
)
def test_wrong_types_and_values(server: InProcessServer, kind: str, field: str, value: Any) -> None:
    event = dict(valid(kind))
    if field == "input.0.content":
        event["input"] = [{"role": "user"}]
    elif field == "metadata.k":
        event["metadata"] = value
    else:
        event[field] = value
    _refused(server, event, field)


@pytest.mark.parametrize(
    ("ts", "needle"),
    [
        ("2026-01-01T00:00:00", "timezone"),
        ("yesterday", "datetime"),
        (1_700_000_000, "RFC 3339"),
        ("1999-12-31T23:59:59Z", "before 2000"),
        (now_iso(timedelta(days=3)), "future"),
    ],
)
def test_bad_timestamps(server: InProcessServer, ts: Any, needle: str) -> None:
    message = _refused(server, valid("vote") | {"ts": ts}, "ts")
    assert needle in message


def test_unknown_and_missing_type(server: InProcessServer) -> None:
    assert "unknown event type 'click'" in _refused(
        server, valid("action") | {"type": "click"}, "type"
    )
    event = {k: v for k, v in valid("action").items() if k != "type"}
    assert "missing 'type'" in _refused(server, event, "type")


def test_unknown_field_is_refused(server: InProcessServer) -> None:
    assert "unknown field" in _refused(server, valid("vote") | {"valu": 1}, "valu")


def test_oversized_text(server: InProcessServer) -> None:
    _refused(server, valid("correction") | {"text": "x" * (MAX_TEXT_CHARS + 1)}, "text")


def test_non_object_and_broken_json(server: InProcessServer) -> None:
    _refused(server, 5, None)
    response = server.post(b'[{"type": "vote",')
    assert response.status == 422
    assert response.body["errors"][0]["index"] is None
    assert "Invalid JSON" in response.body["errors"][0]["message"]
    assert server.post(b'{"not": "an array"}').status == 422
    assert _stored(server) == 0


def test_project_must_match_the_key(server: InProcessServer) -> None:
    _refused(server, valid("vote") | {"project": "other"}, "project")
    assert server.post([valid("vote") | {"project": "demo"}]).status == 202


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "Bearer",
        "Basic abc",
        "Bearer wrong",
        "Bearer kept_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    ],
)
def test_unauthorized(server: InProcessServer, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    from tests.helpers import http

    response = http("POST", server.url + "/v1/events", [valid("vote")], headers)
    assert response.status == 401
    assert response.body["error"] == "unauthorized"
    assert response.headers.get("www-authenticate") == "Bearer"
    assert _stored(server) == 0


def test_body_too_large(server: InProcessServer) -> None:
    limit = server.runtime.settings.max_body_bytes
    big = [valid("correction") | {"text": "y" * 900_000} for _ in range(limit // 900_000 + 1)]
    response = server.post(big)
    assert response.status == 413
    assert response.body["error"] == "too_large"
    assert _stored(server) == 0


def test_too_many_events(server: InProcessServer) -> None:
    many = server.runtime.settings.max_events_per_request + 1
    response = server.post([feedback("action", GID, name="copy") for _ in range(many)])
    assert response.status == 413
    assert "at most" in response.body["message"]
    assert _stored(server) == 0


def test_ndjson_and_gzip(server: InProcessServer) -> None:
    lines = "\n".join(json.dumps(valid(k)) for k in KINDS) + "\n\n"
    response = server.post(lines, **{"Content-Type": "application/x-ndjson"})
    assert response.status == 202
    assert response.body == {"accepted": 6}
    packed = gzip.compress(json.dumps([generation()]).encode())
    assert server.post(packed, **{"Content-Encoding": "gzip"}).status == 202
    assert _stored(server) == 7


def test_ndjson_error_points_at_the_line(server: InProcessServer) -> None:
    body = json.dumps(valid("vote")) + "\n" + json.dumps(valid("vote") | {"value": 0}) + "\n"
    response = server.post(body, **{"Content-Type": "application/x-ndjson"})
    assert response.status == 422
    assert response.body["errors"] == [
        {"index": 1, "field": "value", "message": "Input should be 1 or -1"}
    ]
    assert _stored(server) == 0


def test_output_may_be_absent(server: InProcessServer) -> None:
    event = {k: v for k, v in generation().items() if k not in ("input", "output")}
    assert server.post([event]).status == 202
    row = server.runtime.store.rows("SELECT input_format, output_captured, output FROM generations")
    assert row == [("none", False, "")]


def test_chat_input_round_trips(server: InProcessServer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ü"}]
    assert server.post([generation(input=messages, metadata={"app": "bot"})]).status == 202
    fmt, text, metadata = server.runtime.store.rows(
        "SELECT input_format, input, metadata FROM generations"
    )[0]
    assert (fmt, json.loads(text), metadata) == ("chat", messages, {"app": "bot"})


def test_rejections_are_counted(server: InProcessServer) -> None:
    before = server.metric("kept_events_rejected_total", 'reason="invalid"')
    server.post([valid("vote") | {"value": 3}])
    assert server.metric("kept_events_rejected_total", 'reason="invalid"') == before + 1


def test_schema_names_every_type() -> None:
    schema = json.dumps(json_schema())
    for kind in KINDS:
        assert f'"const": "{kind}"' in schema
