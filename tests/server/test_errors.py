"""Every refusal has one body, `{"error": code, "message": text, ...}`: the routes' own,
the admin API's and FastAPI's (validation errors, unknown routes, wrong methods); and
request metrics are observed once per request, labelled by route template."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kept_service.api.errors import MAX_DETAILS, validation_details
from tests.helpers import InProcessServer, Response, generation, http


def assert_error(response: Response, status: int, error: str) -> dict[str, Any]:
    assert response.status == status, response.body
    body: dict[str, Any] = response.body
    assert isinstance(body, dict), body
    assert (body.get("error"), type(body.get("message"))) == (error, str), body
    assert "detail" not in body
    return body


def test_unknown_routes_and_wrong_methods(server: InProcessServer) -> None:
    missing = assert_error(http("GET", server.url + "/v1/nothing-here"), 404, "not_found")
    assert "/v1/nothing-here" in missing["message"]
    wrong = http("GET", server.url + "/v1/events")
    assert_error(wrong, 405, "method_not_allowed")
    assert "POST" in {k.lower(): v for k, v in wrong.headers.items()}["allow"]


def test_fastapi_validation_errors(server: InProcessServer) -> None:
    admin = {"Authorization": f"Bearer {server.runtime.admin_token}"}
    bad_name = http("POST", server.url + "/v1/admin/keys", {"project": "no spaces"}, admin)
    body = assert_error(bad_name, 422, "invalid_request")
    assert [e["field"] for e in body["errors"]] == ["project"]
    assert all(set(e) == {"field", "message"} for e in body["errors"])
    not_json = http("POST", server.url + "/v1/admin/keys", b"{nope", admin)
    assert_error(not_json, 422, "invalid_request")
    missing = http("POST", server.url + "/v1/admin/keys", {}, admin)
    assert assert_error(missing, 422, "invalid_request")["errors"][0]["field"] == "project"
    flag = http("POST", server.url + "/v1/admin/analytics/run?full=maybe", b"", admin)
    assert assert_error(flag, 422, "invalid_request")["errors"][0]["field"] == "full"


def test_validation_details_are_bounded() -> None:
    problems = [
        {"loc": ("body", "events", i, "ts"), "msg": "bad", "input": "x" * 99} for i in range(50)
    ]
    details = validation_details(problems)
    assert len(details) == MAX_DETAILS
    assert details[0] == {"field": "events.0.ts", "message": "bad"}  # the input is not echoed


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/admin/keys"),
        ("POST", "/v1/admin/migrate"),
        ("GET", "/v1/admin/status"),
        ("POST", "/v1/admin/analytics/run"),
    ],
)
def test_admin_refusals(server: InProcessServer, method: str, path: str) -> None:
    body = {"project": "shop"} if path.endswith("/keys") else None
    for auth in ({}, {"Authorization": f"Bearer {server.key}"}):  # a project key is no admin
        response = http(method, server.url + path, body, auth)
        assert_error(response, 401, "unauthorized")
        assert response.headers.get("www-authenticate") == "Bearer"


def test_reading_routes_refuse_in_the_same_shape(server: InProcessServer) -> None:
    key = {"Authorization": f"Bearer {server.key}"}
    assert_error(http("GET", server.url + "/v1/report"), 401, "unauthorized")
    other = http("GET", server.url + "/v1/export?project=someone-else", headers=key)
    assert_error(other, 403, "forbidden")
    compare = http("GET", server.url + "/v1/compare?a=x", headers=key)
    assert_error(compare, 422, "invalid_query")
    panel = http("GET", server.url + "/v1/panels/volume", headers={"Authorization": "Bearer no"})
    assert_error(panel, 401, "unauthorized")
    assert_error(http("GET", server.url + "/static/nope.js"), 404, "not_found")


def test_request_metrics_are_observed_once_per_request_by_route_template(
    server: InProcessServer,
) -> None:
    events = 'route="/v1/events"'
    count = "kept_http_request_duration_seconds_count"
    before = server.metric(count, events)
    accepted = server.metric("kept_http_requests_total", events + ',status="202"')
    assert server.post([generation()]).status == 202
    assert server.metric(count, events) == before + 1
    assert server.metric("kept_http_requests_total", events + ',status="202"') == accepted + 1
    refused = server.metric("kept_http_requests_total", events + ',status="401"')
    assert server.post([generation()], key="kept_wrong").status == 401
    assert server.metric("kept_http_requests_total", events + ',status="401"') == refused + 1

    panel_id = f"no-such-panel-{uuid.uuid4().hex}"
    assert http("GET", f"{server.url}/v1/panels/{panel_id}").status == 404
    path = f"/not/a/route/{uuid.uuid4().hex}"
    assert http("GET", server.url + path).status == 404
    text = str(http("GET", server.url + "/metrics").body)
    assert panel_id not in text and path not in text
    assert server.metric("kept_http_requests_total", 'route="/v1/panels/{panel_id}"') >= 1
    assert server.metric("kept_http_requests_total", 'route="unmatched",status="404"') >= 1
