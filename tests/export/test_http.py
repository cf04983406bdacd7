"""`GET /v1/export`: the same records as the library, streamed as NDJSON; auth and errors."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from kept_analytics.export import ExportSpec, Summary, default_redact, run
from kept_ingest.keys import create_key
from tests.export.scenario import load, sft_lines
from tests.helpers import InProcessServer, Response, http


@pytest.fixture
def scenario(server: InProcessServer) -> InProcessServer:
    load(server)
    return server


def get(server: InProcessServer, token: str | None, **params: Any) -> Response:
    query = urllib.parse.urlencode(params, doseq=True)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http("GET", f"{server.url}/v1/export?{query}", headers=headers)


def lines(response: Response) -> list[dict[str, Any]]:
    body = response.body
    if isinstance(body, dict):  # a single line parses as one JSON document
        return [body]
    return [json.loads(x) for x in str(body).splitlines() if x.strip()]


def test_streams_the_library_records(scenario: InProcessServer) -> None:
    response = get(scenario, scenario.key)
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert lines(response) == sft_lines("e12", "e1", "e2", "e4", "e9", "e10")
    for fmt in ("dpo", "jsonl"):
        summary = Summary()
        expected = [
            r
            for _, r in run(scenario.runtime.store, ExportSpec(format=fmt), default_redact, summary)
        ]
        assert lines(get(scenario, scenario.key, format=fmt)) == expected


def test_filters_and_envelope(scenario: InProcessServer) -> None:
    admin = scenario.runtime.admin_token
    response = get(scenario, admin, vote="up", model=["A"], envelope="true", split="0.5")
    body = lines(response)
    assert [b["record"] for b in body[:-1]] == sft_lines("e1", "e10")
    assert {b["part"] for b in body[:-1]} <= {"train", "validation"}
    assert body[-1] == {
        "summary": {
            "written": 2,
            "parts": {
                p: sum(b.get("part") == p for b in body) for p in {b["part"] for b in body[:-1]}
            },
            "skipped": {},
        }
    }
    train = lines(get(scenario, admin, vote="up", split="0.5", part="train"))
    validation = lines(get(scenario, admin, vote="up", split="0.5", part="validation"))
    assert sorted(map(json.dumps, train + validation)) == sorted(
        map(json.dumps, sft_lines("e1", "e4", "e10"))
    )
    assert lines(get(scenario, admin, **{"min_score": "helpfulness=0.8"})) == sft_lines("e9")
    assert lines(get(scenario, admin, **{"metadata.app": "x"})) == sft_lines("e9")


def test_picks_up_feedback_sent_just_before(server: InProcessServer) -> None:
    from tests.export.scenario import events

    body = [{k: v for k, v in e.items() if v is not None} for e in events()]
    assert server.post(body).status == 202
    # no explicit job run: the endpoint folds new events in first
    assert lines(get(server, server.key, corrected="true")) == sft_lines("e2")


def test_auth_and_errors(scenario: InProcessServer) -> None:
    assert get(scenario, None).status == 401
    assert get(scenario, "kept_wrong").status == 401
    assert get(scenario, scenario.key, project="other").status == 403
    other = create_key(scenario.runtime.store, "other")
    assert get(scenario, other).status == 200 and lines(get(scenario, other)) == []
    for params in (
        {"vote": "sideways"},
        {"format": "csv"},
        {"split": "1.5"},
        {"sample": "0"},
        {"redact": "mymodule:steal"},
        {"colour": "blue"},
        {"part": "train"},
        {"since": "now", "until": "1d"},
        {"min_score": "helpfulness"},
    ):
        response = get(scenario, scenario.key, **params)
        assert response.status == 422, params
        assert response.body["error"] == "invalid_query"
