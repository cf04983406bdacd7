"""Hardening of the intake's bodies and events: bounded work for hostile bodies, gzip
streams taken whole or not at all, dedup per project, a strict contract on every path,
and feedback tokens that mint and verify alike."""

from __future__ import annotations

import gzip
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest

from kept_ingest.consumer.decode import Invalid, Message, decode_message
from kept_ingest.contract import json_schema
from kept_ingest.decode import decode_json_array
from kept_ingest.feedback_tokens import MalformedToken, mint_token, verify_token
from kept_ingest.keys import create_key
from kept_ingest.metrics import IngestMetrics
from kept_ingest.rows import to_rows
from kept_ingest.writer import BatchWriter
from tests.helpers import InProcessServer, Response, feedback, generation, http, serve_process

NDJSON = {"Content-Type": "application/x-ndjson"}
GZIP_NDJSON = {**NDJSON, "Content-Encoding": "gzip"}


def _stored(server: InProcessServer) -> int:
    return server.count("generations") + server.count("feedback")


def _vote(**fields: Any) -> dict[str, Any]:
    return feedback("vote", "gen-1", value=1) | fields


# ---- defect 1: one small request must not stall the server ------------------------------


def test_a_gzip_bomb_of_empty_lines_is_refused_quickly_and_cheaply(data_dir: Path) -> None:
    # The reported attack at a tenth of its size: 330,000 `{}` lines, about 1 KB gzipped.
    bomb = gzip.compress(b"{}\n" * 330_000)
    assert len(bomb) < 2_000
    with serve_process(data_dir) as proc:
        process = psutil.Process(proc.process.pid)
        baseline = process.memory_info().rss
        peak, health, done = [baseline], [], threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak.append(process.memory_info().rss)
                started = time.perf_counter()
                assert http("GET", proc.url + "/healthz", timeout=30).status == 200
                health.append(time.perf_counter() - started)
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            started = time.perf_counter()
            auth = {"Authorization": f"Bearer {proc.key}", **GZIP_NDJSON}
            response = http("POST", proc.url + "/v1/events", bomb, auth, timeout=120)
            elapsed = time.perf_counter() - started
            time.sleep(0.2)
        finally:
            done.set()
            watcher.join()
    assert response.status == 413, response.body
    assert response.body["error"] == "too_large"
    assert elapsed < 2.0, f"refused after {elapsed:.2f}s"
    assert len(json.dumps(response.body)) < 1_000
    assert max(health) < 0.5, f"/healthz took {max(health):.2f}s during the attack"
    growth = (max(peak) - baseline) / 2**20
    assert growth < 60, f"RSS grew by {growth:.0f} MiB"


def test_events_are_counted_before_they_are_validated(server: InProcessServer) -> None:
    many = server.runtime.settings.max_events_per_request + 1
    for body, headers in (
        (b"{}\n" * many, NDJSON),
        (b"[" + b",".join([b"{}"] * many) + b"]", {}),
        (b"[" + b",".join([b"[[]]"] * many) + b"]", {}),
    ):
        response = server.post(body, **headers)
        assert response.status == 413, response.body
        assert "at most" in response.body["message"]
    assert _stored(server) == 0


def test_contract_errors_are_bounded_and_say_how_many_more(server: InProcessServer) -> None:
    # Validation stops at the 100th error: the rest is counted, not checked.
    response = server.post([_vote(value=5) for _ in range(300)])
    assert response.status == 422
    body = response.body
    assert len(body["errors"]) == server.runtime.settings.max_errors == 100
    assert (body["errors_omitted"], body["events_unchecked"]) == (0, 200)
    assert "100 event(s)" in body["message"] and "200 event(s) after them" in body["message"]
    response = server.post(b'{"type": "click"}\n' * 300, **NDJSON)
    assert response.status == 422
    assert (len(response.body["errors"]), response.body["events_unchecked"]) == (100, 200)
    # One event with many unknown fields: its errors beyond the first 100 are counted.
    noisy = _vote() | {f"k{i}": 1 for i in range(150)}
    response = server.post([noisy, _vote(value=5)])
    assert (len(response.body["errors"]), response.body["errors_omitted"]) == (100, 50)
    assert response.body["events_unchecked"] == 1
    assert _stored(server) == 0


def test_a_body_of_many_noisy_events_is_refused_in_bounded_time(server: InProcessServer) -> None:
    noisy = json.dumps({"type": "vote", **{f"k{i}": 1 for i in range(120)}}).encode()
    body = b"[" + b",".join([noisy] * 5_000) + b"]"
    started = time.perf_counter()
    response = server.post(body)
    assert response.status == 422
    assert time.perf_counter() - started < 2.0
    assert len(json.dumps(response.body)) < 20_000


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [40, 5_000, 200_000])
def test_deep_nesting_gets_the_one_error_body(server: InProcessServer, depth: int) -> None:
    vote = json.dumps(_vote()).encode()
    bodies: list[tuple[bytes, dict[str, str]]] = [
        (b"[" + vote + b"," + _nested(depth) + b"]", {}),
        (vote + b"\n" + _nested(depth) + b"\n", NDJSON),
        (b"[" * depth, {}),
    ]
    for body, headers in bodies:
        response = server.post(body, **headers)
        assert response.status == 422, response.body
        assert response.body["error"] == "invalid_events"
        assert len(json.dumps(response.body)) < 2_000
    token = _token(server, "gen-1")
    for body in (
        b'{"token": "' + token.encode() + b'", "events": [' + _nested(depth) + b"]}",
        b'{"token": ' + _nested(depth) + b', "events": []}',
    ):
        response = http("POST", server.url + "/v1/feedback", body, {"Content-Type": "text/plain"})
        assert response.status == 422, response.body
        assert response.body["error"] == "invalid_events"
    nested_request = b'{"generation_id": ' + _nested(min(depth, 8_000)) + b"}"
    response = _mint(server, nested_request)
    assert response.status == 422, response.body
    assert _stored(server) == 0


def test_feedback_and_token_errors_are_bounded(server: InProcessServer) -> None:
    extra = {f"k{i}": 1 for i in range(1_000)}
    response = _mint(server, json.dumps({"generation_id": "g"} | extra).encode())
    assert response.status == 422
    assert len(response.body["errors"]) <= 100
    body = {"token": _token(server, "gen-1"), "events": [], **extra}
    response = http("POST", server.url + "/v1/feedback", body, {"Content-Type": "text/plain"})
    assert response.status == 422
    assert len(response.body["errors"]) <= 100


# ---- defect 12: gzip bodies are taken whole or not at all ------------------------------


def test_a_truncated_or_concatenated_gzip_body_is_refused(server: InProcessServer) -> None:
    events = [generation() for _ in range(100)]
    packed = gzip.compress("\n".join(json.dumps(e) for e in events).encode())
    cut = packed[: len(packed) // 2]
    response = server.post(cut, **GZIP_NDJSON)
    assert response.status == 422, response.body
    assert response.body["error"] == "invalid_events"
    assert "gzip" in response.body["message"] + json.dumps(response.body["errors"])
    second = gzip.compress(json.dumps(generation()).encode())
    response = server.post(packed + second, **GZIP_NDJSON)
    assert response.status == 422, response.body
    assert "gzip" in json.dumps(response.body["errors"])
    assert _stored(server) == 0
    assert server.post(packed, **GZIP_NDJSON).status == 202
    limit = server.runtime.settings.max_inflated_bytes
    response = server.post(gzip.compress(b" " * (limit + 1)), **GZIP_NDJSON)
    assert response.status == 413
    assert f"inflates to more than {limit} bytes" in response.body["message"]


# ---- defect 5: dedup per project -------------------------------------------------------


def test_an_event_id_of_one_project_does_not_hide_anothers(server: InProcessServer) -> None:
    other = create_key(server.runtime.store, "other")
    server.runtime.keys.add(other, "other")  # as the admin API does
    event = generation()
    assert server.post([event]).status == 202
    assert server.post([event], key=other).status == 202
    assert server.count("generations", "project = 'other'") == 1
    # Through a browser feedback token too: the id was first used by the demo project.
    vote = feedback("vote", "gen-x", value=1)
    token = _token(server, "gen-x")
    sent = http("POST", server.url + "/v1/feedback", {"token": token, "events": [vote]})
    assert sent.status == 202, sent.body
    assert server.post([vote], key=other).status == 202
    assert server.count("feedback", "project = 'other'") == 1
    assert server.count("feedback", "project = 'demo'") == 1
    # A repeat within one project is still skipped.
    assert server.post([event], key=other).status == 202
    assert server.count("generations") == 2


def test_a_restarted_writer_seeds_its_window_per_project(server: InProcessServer) -> None:
    event = generation()
    assert server.post([event]).status == 202
    writer = BatchWriter(server.runtime.store, IngestMetrics())
    writer.start()
    try:
        parsed = decode_json_array(json.dumps([event]).encode())
        for project in ("demo", "other"):
            writer.submit(to_rows(parsed, datetime.now(timezone.utc), project)).result(30)
    finally:
        writer.stop()
    assert server.count("generations", "project = 'demo'") == 1
    assert server.count("generations", "project = 'other'") == 1


# ---- defect 11: the contract is strict, alike on every path -----------------------------

LENIENT = [
    ("ts", _vote(ts="1735689600")),
    ("value", _vote(value=True)),
    ("value", _vote(value=1.0)),
    ("latency_ms", generation(latency_ms=10809.0)),
]


@pytest.mark.parametrize(("field", "event"), LENIENT)
def test_lenient_values_are_refused_on_every_path(
    server: InProcessServer, field: str, event: dict[str, Any]
) -> None:
    response = server.post([event])
    assert response.status == 422, response.body
    assert [e["field"] for e in response.body["errors"]] == [field]
    message = Message("t", 0, 0, json.dumps(event | {"project": "demo"}).encode())
    invalid = decode_message(message)
    assert isinstance(invalid, Invalid) and invalid.reason == "invalid_event"
    if event["type"] == "vote":
        token = _token(server, event["generation_id"])
        response = http("POST", server.url + "/v1/feedback", {"token": token, "events": [event]})
        assert response.status == 422, response.body
    assert _stored(server) == 0


def test_a_vote_written_with_an_exponent_is_refused(server: InProcessServer) -> None:
    text = json.dumps(_vote()).replace('"value": 1', '"value": 1e0')
    assert '"value": 1e0' in text
    assert server.post(text.encode(), **NDJSON).status == 422
    assert server.post(b"[" + text.encode() + b"]").status == 422


def test_duplicate_keys_are_refused_everywhere(server: InProcessServer) -> None:
    text = json.dumps(_vote(value=-1))[:-1] + ', "value": 1}'
    for body, headers in ((text, NDJSON), ("[" + text + "]", {})):
        response = server.post(body.encode(), **headers)
        assert response.status == 422, response.body
        assert response.body["errors"][0]["field"] == "value"
        assert "duplicate" in response.body["errors"][0]["message"]
    nested = json.dumps(generation(metadata={"a": "1"})).replace(
        '{"a": "1"}', '{"a": "1", "a": "2"}'
    )
    response = server.post(nested.encode(), **NDJSON)
    assert response.status == 422
    assert response.body["errors"][0]["field"] == "metadata.a"
    kafka = Message("t", 0, 0, (text[:-1] + ', "project": "demo"}').encode())
    assert isinstance(decode_message(kafka), Invalid)
    token = _token(server, "gen-1")
    envelope = '{"token": "' + token + '", "events": [' + text + "]}"
    response = http("POST", server.url + "/v1/feedback", envelope.encode())
    assert response.status == 422, response.body
    assert _stored(server) == 0


def test_the_schema_says_how_integers_are_written() -> None:
    schema = json.dumps(json_schema())
    integers = schema.count('"type": "integer"')
    assert integers >= 4
    assert schema.count("without a fraction or exponent") >= integers


# ---- defect 10: every token mint issues verifies ---------------------------------------

SECRET = b"a-test-secret-of-enough-length"


@pytest.mark.parametrize("char", ["\x01", "é", "\U0001f600", '"'])
def test_tokens_for_the_longest_ids_verify(char: str) -> None:
    token, grant = mint_token(SECRET, "p" * 64, char * 128, 604_800)
    assert verify_token(SECRET, token) == grant


def test_a_minted_token_for_an_odd_id_is_usable(server: InProcessServer) -> None:
    gid = "\U0001f600" * 64 + "\x01" * 64
    token = _token(server, gid)
    vote = feedback("vote", gid, value=1)
    response = http("POST", server.url + "/v1/feedback", {"token": token, "events": [vote]})
    assert response.status == 202, response.body


def test_non_ascii_tokens_are_refused_not_crashed(server: InProcessServer) -> None:
    with pytest.raises(MalformedToken):
        verify_token(SECRET, "kft_é.abc")
    for token in ("kft_é.abc", "kft_\U0001f600." + "a" * 43):
        body = {"token": token, "events": [_vote()]}
        response = http("POST", server.url + "/v1/feedback", body)
        assert response.status == 401, response.body
    header = {"Authorization": "Bearer kft_\xe9.abc", "Content-Type": "text/plain"}
    response = http("POST", server.url + "/v1/feedback", {"events": [_vote()]}, header)
    assert response.status == 401, response.body
    lone_surrogate = b'{"token": "kft_\\ud800.' + b"a" * 43 + b'", "events": []}'
    response = http("POST", server.url + "/v1/feedback", lone_surrogate)
    assert response.status in (401, 422), response.body  # never 500


# ---- helpers ---------------------------------------------------------------------------


def _mint(server: InProcessServer, body: bytes | dict[str, Any]) -> Response:
    headers = {"Authorization": f"Bearer {server.key}"}
    return http("POST", server.url + "/v1/feedback-tokens", body, headers)


def _token(server: InProcessServer, generation_id: str) -> str:
    response = _mint(server, {"generation_id": generation_id})
    assert response.status == 201, response.body
    return str(response.body["token"])
