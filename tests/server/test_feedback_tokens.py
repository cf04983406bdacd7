"""Feedback tokens and `POST /v1/feedback`: what a web page may send with a token, and
what it may not; CORS; the secret's life across restarts; the `/sdk.js` route."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from kept_ingest.feedback_tokens import (
    BadSignature,
    ExpiredToken,
    MalformedToken,
    mint_token,
    verify_token,
)
from kept_ingest.keys import create_key
from kept_service.runtime.settings import ServerSettings
from kept_storage.datadir import DataDir
from tests.helpers import InProcessServer, Response, feedback, generation, http, serve_process

SECRET = b"a-test-secret-of-enough-length"


def mint(url: str, key: str | None, body: Any) -> Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return http("POST", url + "/v1/feedback-tokens", body, headers)


def token_for(server: InProcessServer, generation_id: str, **body: Any) -> str:
    response = mint(server.url, server.key, {"generation_id": generation_id, **body})
    assert response.status == 201, response.body
    return str(response.body["token"])


def send(
    url: str,
    events: list[dict[str, Any]],
    token: str | None = None,
    header_token: str | None = None,
    content_type: str = "text/plain;charset=UTF-8",
    **headers: str,
) -> Response:
    """As the snippet sends: a text/plain body that carries the token."""
    body: dict[str, Any] = {"events": events}
    if token is not None:
        body["token"] = token
    if header_token is not None:
        headers["Authorization"] = f"Bearer {header_token}"
    return http("POST", url + "/v1/feedback", body, {"Content-Type": content_type, **headers})


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def stored(server: InProcessServer, generation_id: str) -> list[tuple[Any, ...]]:
    return server.runtime.store.rows(
        "SELECT project, type, name, value, text, comment FROM feedback "
        "WHERE generation_id = {g:String} ORDER BY type, name",
        {"g": generation_id},
    )


@pytest.fixture
def gen(server: InProcessServer) -> dict[str, Any]:
    event = generation(output="Refunds take 5 days.")
    assert server.post([event]).status == 202
    return event


# ---- the happy paths ------------------------------------------------------------------


def test_a_token_sends_votes_actions_and_corrections(
    server: InProcessServer, gen: dict[str, Any]
) -> None:
    gid = gen["generation_id"]
    minted = mint(server.url, server.key, {"generation_id": gid})
    assert minted.status == 201, minted.body
    assert minted.body["generation_id"] == gid
    assert minted.body["token"].startswith("kft_")
    expires = datetime.fromisoformat(minted.body["expires_at"].replace("Z", "+00:00"))
    assert abs(expires.timestamp() - (time.time() + 3600)) < 120  # the default lifetime
    token = minted.body["token"]

    vote = feedback("vote", gid, value=1, comment="clear")
    accept = feedback("action", gid, name="accept")
    del accept["generation_id"]  # the token's generation is filled in
    correction = feedback("correction", gid, text="Refunds take 5 business days.")
    response = send(server.url, [vote, accept, correction], token=token)
    assert response.status == 202, response.body
    assert response.body == {"accepted": 3}
    assert stored(server, gid) == [
        ("demo", "vote", "", 1.0, "", "clear"),
        ("demo", "action", "accept", None, "", ""),
        ("demo", "correction", "", None, "Refunds take 5 business days.", ""),
    ]
    # A retry of the same events (the snippet retries on network errors) stores nothing new.
    assert send(server.url, [vote, accept, correction], token=token).status == 202
    assert server.count("feedback") == 3

    # And the report sees them as feedback on that generation.
    server.runtime.analytics.run_now()
    report = http(
        "GET",
        server.url + "/v1/report?since=1d&exact=true",
        headers={"Authorization": f"Bearer {server.key}"},
    )
    assert report.status == 200, report.body
    (group,) = report.body
    assert (group["generations"], group["accepted"], group["votes_up"]) == (1, 1, 1)
    assert group["corrected"] == 1


def test_token_in_the_header_with_a_json_body_and_a_score(
    server: InProcessServer, gen: dict[str, Any]
) -> None:
    gid = gen["generation_id"]
    token = token_for(server, gid)
    score = feedback("score", gid, name="helpful", value=0.8, source="human")
    response = send(server.url, [score], header_token=token, content_type="application/json")
    assert response.status == 202, response.body
    # The same token in both places is fine; two different ones are refused.
    again = send(server.url, [feedback("vote", gid, value=-1)], token=token, header_token=token)
    assert again.status == 202, again.body
    other = token_for(server, gid, ttl_s=60)
    both = send(server.url, [feedback("vote", gid, value=1)], token=other, header_token=token)
    assert (both.status, both.body["reason"]) == (401, "two_tokens")
    assert [row[1] for row in stored(server, gid)] == ["vote", "score"]


def test_a_token_carries_the_minting_keys_project(server: InProcessServer) -> None:
    key = create_key(server.runtime.store, "shop")
    server.runtime.keys.add(key, "shop")  # as the admin API does
    event = generation(project="shop")
    assert server.post([event], key=key).status == 202
    gid = event["generation_id"]
    minted = mint(server.url, key, {"generation_id": gid, "ttl_s": 600})
    assert minted.status == 201, minted.body
    grant = verify_token(server.runtime.feedback_secret, minted.body["token"])
    assert (grant.project, grant.generation_id) == ("shop", gid)
    assert send(server.url, [feedback("action", gid, name="copy")], minted.body["token"]).status
    assert stored(server, gid) == [("shop", "action", "copy", None, "", "")]
    # An event naming another project is outside the token.
    foreign = feedback("vote", gid, value=1, project="demo")
    refused = send(server.url, [foreign], minted.body["token"])
    assert (refused.status, refused.body["errors"][0]["field"]) == (403, "project")


# ---- refusals -------------------------------------------------------------------------


def _tamper(token: str) -> str:
    """The same token with its payload re-encoded for another generation."""
    signed, _, signature = token.rpartition(".")
    raw = signed.removeprefix("kft_")
    payload = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    payload["g"] = "someone-elses-generation"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"kft_{forged}.{signature}"


def test_missing_bad_and_expired_tokens_are_refused(
    server: InProcessServer, gen: dict[str, Any]
) -> None:
    gid = gen["generation_id"]
    token = token_for(server, gid)
    secret = server.runtime.feedback_secret
    expired, _ = mint_token(secret, "demo", gid, ttl_s=60, now=time.time() - 120)
    other_secret, _ = mint_token(b"not-the-server-secret", "demo", gid, ttl_s=60)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    cases = {
        None: "missing_token",
        "": "missing_token",
        "kft_garbage": "malformed_token",
        server.key: "malformed_token",  # a project key is not a feedback token
        flipped: "bad_signature",
        _tamper(token): "bad_signature",
        other_secret: "bad_signature",
        expired: "expired_token",
    }
    before = server.metric("kept_events_rejected_total", 'reason="unauthorized"')
    for bad, reason in cases.items():
        response = send(server.url, [feedback("vote", gid, value=1)], token=bad)
        assert response.status == 401, (bad, response.body)
        assert response.body["error"] == "unauthorized"
        assert response.body["reason"] == reason, (bad, response.body)
    assert "expired at" in send(server.url, [], token=expired).body["message"]
    assert "signature" in send(server.url, [], token=other_secret).body["message"]
    # The same refusals with the token in the Authorization header.
    assert send(server.url, [], header_token=expired).body["reason"] == "expired_token"
    assert send(server.url, [], header_token="kft_x.AAAA").body["reason"] == "bad_signature"
    assert server.count("feedback") == 0
    after = server.metric("kept_events_rejected_total", 'reason="unauthorized"')
    assert after - before >= len(cases)


def test_events_outside_the_token_are_forbidden_and_nothing_is_stored(
    server: InProcessServer, gen: dict[str, Any]
) -> None:
    gid = gen["generation_id"]
    token = token_for(server, gid)
    good = feedback("vote", gid, value=1)
    for bad, field in (
        (feedback("vote", "another-generation", value=1), "generation_id"),
        (generation(generation_id=gid), "type"),
    ):
        response = send(server.url, [good, bad], token=token)
        assert response.status == 403, response.body
        assert response.body["error"] == "forbidden"
        assert response.body["errors"][0]["index"] == 1
        assert response.body["errors"][0]["field"] == field
    assert server.count("feedback") == 0
    assert server.metric("kept_events_rejected_total", 'reason="forbidden"') >= 3


def test_contract_errors_size_limits_and_odd_bodies(
    server: InProcessServer, gen: dict[str, Any]
) -> None:
    gid = gen["generation_id"]
    token = token_for(server, gid)
    bad_vote = send(server.url, [feedback("vote", gid, value=1), feedback("vote", gid, value=2)])
    assert bad_vote.status == 401  # no token at all comes first
    bad_vote = send(
        server.url, [feedback("vote", gid, value=1), feedback("vote", gid, value=2)], token
    )
    assert bad_vote.status == 422
    assert bad_vote.body["errors"][0]["index"] == 1
    assert bad_vote.body["errors"][0]["field"] == "value"
    unknown_field = send(server.url, [feedback("vote", gid, value=1, colour="red")], token)
    assert unknown_field.body["errors"][0]["field"] == "colour"

    not_json = http(
        "POST", server.url + "/v1/feedback", "thumbs up", {"Content-Type": "text/plain"}
    )
    assert (not_json.status, not_json.body["error"]) == (422, "invalid_events")
    a_list = http("POST", server.url + "/v1/feedback", [feedback("vote", gid, value=1)])
    assert a_list.status == 422
    assert "token" in a_list.body["message"]

    too_many = [feedback("action", gid, name="copy") for _ in range(101)]
    assert send(server.url, too_many, token).status == 413
    huge = feedback("correction", gid, text="x" * (1024 * 1024 + 1))
    assert send(server.url, [huge], token).status == 413
    assert send(server.url, [], token).body == {"accepted": 0}
    assert server.count("feedback") == 0


def test_minting_needs_a_project_key_and_a_sane_ttl(server: InProcessServer) -> None:
    body = {"generation_id": "g-1"}
    assert mint(server.url, None, body).status == 401
    assert mint(server.url, "kept_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbb", body).status == 401
    assert mint(server.url, server.runtime.admin_token, body).status == 401  # keys only
    unauthorized = mint(server.url, "wrong", {"ttl_s": "not even a body"})
    assert unauthorized.status == 401  # the key is checked before the body

    most = server.runtime.settings.feedback_token_max_ttl_s
    bad: object
    for bad in (
        {"generation_id": "g-1", "ttl_s": 0},
        {"generation_id": "g-1", "ttl_s": -5},
        {"generation_id": "g-1", "ttl_s": most + 1},
        {"generation_id": "g-1", "ttl_s": "60"},
        {"generation_id": "g-1", "ttl_s": True},
        {"generation_id": ""},
        {"generation_id": "g" * 129},
        {"generation_id": 7},
        {"generation_id": "g-1", "project": "other"},
        {},
        [],
    ):
        response = mint(server.url, server.key, bad)
        assert response.status == 422, (bad, response.body)
        assert response.body["error"] == "invalid_events"
    empty = http(
        "POST", server.url + "/v1/feedback-tokens", b"", {"Authorization": "Bearer " + server.key}
    )
    assert empty.status == 422
    assert (
        "at most"
        in mint(server.url, server.key, {"generation_id": "g", "ttl_s": most + 1}).body["message"]
    )

    longest = mint(server.url, server.key, {"generation_id": "g-1", "ttl_s": most})
    assert longest.status == 201
    assert lower(longest.headers)["cache-control"] == "no-store"
    grant = verify_token(server.runtime.feedback_secret, longest.body["token"])
    assert abs(grant.expires_at - (time.time() + most)) < 120
    assert server.metric("kept_http_requests_total", 'route="/v1/feedback-tokens"') >= 15


# ---- CORS -----------------------------------------------------------------------------

ORIGIN = "http://app.example:3000"


def test_cors_preflight_and_headers_on_every_feedback_answer(
    server: InProcessServer, gen: dict[str, Any]
) -> None:
    preflight = http(
        "OPTIONS",
        server.url + "/v1/feedback",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    headers = lower(preflight.headers)
    assert preflight.status == 204
    assert headers["access-control-allow-origin"] == "*"
    assert "POST" in headers["access-control-allow-methods"]
    assert "authorization" in headers["access-control-allow-headers"].lower()
    assert "content-type" in headers["access-control-allow-headers"].lower()

    token = token_for(server, gen["generation_id"])
    ok = send(server.url, [feedback("vote", gen["generation_id"], value=1)], token, Origin=ORIGIN)
    refused = send(server.url, [], "kft_nope", Origin=ORIGIN)
    assert (ok.status, refused.status) == (202, 401)
    for response in (ok, refused):
        assert lower(response.headers)["access-control-allow-origin"] == "*"
    # The rest of the API stays without CORS.
    events = server.post([generation()], Origin=ORIGIN)
    assert "access-control-allow-origin" not in lower(events.headers)
    minted = mint(server.url, server.key, {"generation_id": "g"})
    assert "access-control-allow-origin" not in lower(minted.headers)


@contextmanager
def origins(server: InProcessServer, *allowed: str) -> Iterator[None]:
    """The running server with another KEPT_FEEDBACK_ORIGINS (routes read it per request)."""
    settings = server.runtime.settings
    server.runtime.settings = settings.model_copy(update={"feedback_origins": allowed})
    try:
        yield
    finally:
        server.runtime.settings = settings


def test_a_configured_origin_list_is_enforced(server: InProcessServer, gen: dict[str, Any]) -> None:
    gid = gen["generation_id"]
    token = token_for(server, gid)
    with origins(server, ORIGIN, "https://other.example"):
        allowed = send(server.url, [feedback("vote", gid, value=1)], token, Origin=ORIGIN)
        assert allowed.status == 202, allowed.body
        assert lower(allowed.headers)["access-control-allow-origin"] == ORIGIN
        assert lower(allowed.headers)["vary"] == "Origin"
        # A text/plain POST reaches the server whatever the browser's CORS check says,
        # so the server refuses other origins itself.
        evil = send(server.url, [feedback("vote", gid, value=-1)], token, Origin="http://evil.test")
        assert evil.status == 403, evil.body
        assert "access-control-allow-origin" not in lower(evil.headers)
        preflight = http(
            "OPTIONS",
            server.url + "/v1/feedback",
            headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status == 403
        # Without an Origin header it is no browser: servers and edge functions may send.
        assert send(server.url, [feedback("action", gid, name="copy")], token).status == 202
    assert [row[1:3] for row in stored(server, gid)] == [("vote", ""), ("action", "copy")]


# ---- /sdk.js --------------------------------------------------------------------------


def test_the_snippet_is_served_with_cache_headers(server: InProcessServer) -> None:
    response = http("GET", server.url + "/sdk.js")
    headers = lower(response.headers)
    assert response.status == 200
    assert headers["content-type"].startswith("application/javascript")
    assert "max-age" in headers["cache-control"]
    assert "kept.feedback" in response.body and "function feedback" in response.body
    again = http("GET", server.url + "/sdk.js", headers={"If-None-Match": headers["etag"]})
    assert again.status == 304


# ---- the secret -----------------------------------------------------------------------


def test_tokens_verify_only_with_their_secret_and_until_expiry() -> None:
    token, grant = mint_token(SECRET, "demo", "gen-ü", ttl_s=60, now=1_000_000)
    assert verify_token(SECRET, token, now=1_000_059) == grant
    assert grant.generation_id == "gen-ü" and grant.expires_at == 1_000_060
    with pytest.raises(ExpiredToken):
        verify_token(SECRET, token, now=1_000_060)
    with pytest.raises(BadSignature):
        verify_token(SECRET + b"!", token, now=1_000_000)
    for bad in (
        "",
        "kft_",
        "kft_.",
        "kft_abc",
        "kept_x",
        token + "=",
        token + "!",
        "kft_" + "a" * 2000,
    ):
        with pytest.raises((MalformedToken, BadSignature)):
            verify_token(SECRET, bad, now=1_000_000)


def test_the_secret_is_made_once_per_data_dir_and_the_setting_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = DataDir(tmp_path / "data")
    first = directory.feedback_secret()
    assert len(first) >= 32
    assert DataDir(tmp_path / "data").feedback_secret() == first
    mode = stat.S_IMODE(os.stat(tmp_path / "data" / "feedback-secret").st_mode)
    assert mode == 0o600

    monkeypatch.setenv("KEPT_FEEDBACK_SECRET", "s" * 32)
    settings = ServerSettings(data=tmp_path / "other")
    assert settings.feedback_key(DataDir(tmp_path / "other")) == b"s" * 32
    assert not (tmp_path / "other" / "feedback-secret").exists()
    monkeypatch.setenv("KEPT_FEEDBACK_SECRET", "short")
    with pytest.raises(ValueError, match="at least 16"):
        ServerSettings()


@pytest.mark.slow
def test_tokens_survive_a_restart_and_kept_feedback_secret_is_used(data_dir: Path) -> None:
    event = generation()
    gid = event["generation_id"]
    with serve_process(data_dir) as proc:
        assert proc.post([event]).status == 202
        before = mint(proc.url, proc.key, {"generation_id": gid}).body["token"]
        proc.stop()
    with serve_process(data_dir) as proc:
        response = send(proc.url, [feedback("vote", gid, value=1)], before)
        assert response.status == 202, response.body
        proc.stop()

    configured = "a-shared-secret-for-every-replica"
    with serve_process(data_dir, KEPT_FEEDBACK_SECRET=configured) as proc:
        # The data directory's secret no longer signs: its tokens are refused.
        old = send(proc.url, [feedback("vote", gid, value=-1)], before)
        assert (old.status, old.body["reason"]) == (401, "bad_signature")
        token = mint(proc.url, proc.key, {"generation_id": gid}).body["token"]
        assert verify_token(configured.encode(), token).generation_id == gid
        assert send(proc.url, [feedback("action", gid, name="accept")], token).status == 202
        proc.stop()


# ---- the SDK side ---------------------------------------------------------------------


def test_the_sdk_asks_for_a_token_and_the_page_uses_it(
    server: InProcessServer, gen: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kept import Client
    from kept.feedback_tokens import FeedbackTokenError

    gid = gen["generation_id"]
    with Client(endpoint=server.url, api_key=server.key) as client:
        token = client.feedback_token(gid, ttl_s=600)
        assert token is not None and verify_token(server.runtime.feedback_secret, token)
        assert send(server.url, [feedback("vote", gid, value=-1)], token=token).status == 202
        assert stored(server, gid) == [("demo", "vote", "", -1.0, "", "")]
        # A ttl the server refuses, and bad arguments: None, counted, never raised.
        assert client.feedback_token(gid, ttl_s=10**9) is None
        assert client.feedback_token("") is None
        stats = client.stats()
        assert (stats["feedback_token_errors"], stats["dropped_invalid"]) == (1, 1)
    strict = Client(endpoint=server.url, api_key="kept_x_wrong", debug=True)
    with strict, pytest.raises(FeedbackTokenError, match="401"):
        strict.feedback_token(gid)
    # A Kafka client has no HTTP endpoint: the server's URL comes from KEPT_URL.
    monkeypatch.setenv("KEPT_URL", server.url)
    kafka = Client(
        endpoint="kafka://127.0.0.1:1", api_key=server.key, project="demo", spool_dir=False
    )
    try:
        assert kafka.feedback_token(gid) is not None
    finally:
        kafka.close(timeout=0)
    monkeypatch.delenv("KEPT_URL")
    with Client(transport=None, enabled=False) as nowhere:
        assert nowhere.feedback_token(gid) is None


# ---- survival from the browser --------------------------------------------------------


def test_a_token_sends_survival_checks_validated_by_the_contract(
    server: InProcessServer, gen: dict[str, Any]
) -> None:
    gid = gen["generation_id"]
    # A token meant for survival outlives the last default checkpoint (900 s) with margin.
    minted = mint(server.url, server.key, {"generation_id": gid, "ttl_s": 1200})
    assert minted.status == 201, minted.body
    token = minted.body["token"]
    checks = [
        feedback("survival", gid, checkpoint_s=30, score=1.0),
        feedback("survival", gid, checkpoint_s=900, score=0.25),
    ]
    del checks[1]["generation_id"]  # the token's generation is filled in
    response = send(server.url, checks, token=token)
    assert response.status == 202, response.body
    assert response.body == {"accepted": 2}
    rows = server.runtime.store.rows(
        "SELECT type, value, checkpoint_s FROM feedback WHERE generation_id = {g:String} "
        "ORDER BY checkpoint_s",
        {"g": gid},
    )
    assert rows == [("survival", 1.0, 30), ("survival", 0.25, 900)]

    # checkpoint_s and score are checked as the contract says; nothing of a bad request stays.
    for fields, field in (
        ({"checkpoint_s": 0, "score": 0.5}, "checkpoint_s"),
        ({"checkpoint_s": 30 * 86_400 + 1, "score": 0.5}, "checkpoint_s"),
        ({"checkpoint_s": 1.5, "score": 0.5}, "checkpoint_s"),
        ({"checkpoint_s": 30, "score": 1.01}, "score"),
        ({"checkpoint_s": 30, "score": -0.1}, "score"),
        ({"checkpoint_s": 30}, "score"),
    ):
        bad = feedback("survival", gid, **fields)
        refused = send(server.url, [feedback("vote", gid, value=1), bad], token=token)
        assert refused.status == 422, (fields, refused.body)
        assert refused.body["errors"][0]["index"] == 1
        assert refused.body["errors"][0]["field"].startswith(field), refused.body
    # Another generation's survival stays out of this token's reach.
    other = send(server.url, [feedback("survival", "another", checkpoint_s=30, score=1.0)],
                 token=token)  # fmt: skip
    assert (other.status, other.body["errors"][0]["field"]) == (403, "generation_id")
    assert server.count("feedback", "generation_id = {g:String}", g=gid) == 2
