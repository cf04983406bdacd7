"""Two projects on one server: every read route refuses or scopes project B's data for
project A's key."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.helpers import InProcessServer, Response, http
from tests.synthetic import load

A, B = "demo", "tenant-b"


@pytest.fixture
def tenants(server: InProcessServer) -> dict[str, str]:
    """Data in A (the demo project) and B; each project's key."""
    now = datetime.now(timezone.utc)
    load(server.runtime.store, 300, now - timedelta(hours=5), now, project=A, prefix="a")
    load(server.runtime.store, 200, now - timedelta(hours=5), now, project=B, prefix="b")
    server.runtime.analytics.run_now()
    admin = {"Authorization": f"Bearer {server.runtime.admin_token}"}
    created = http("POST", server.url + "/v1/admin/keys", {"project": B}, admin)
    assert created.status == 201
    return {A: server.key, B: created.body["key"], "admin": server.runtime.admin_token}


def _get(server: InProcessServer, path: str, token: str) -> Response:
    return http("GET", server.url + path, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("project", [A, B])
def test_the_project_variable_lists_the_readers_project_only(
    server: InProcessServer, tenants: dict[str, str], project: str
) -> None:
    own = _get(server, "/v1/variables/project?from=now-24h", tenants[project])
    assert own.status == 200 and own.body["values"] == [project]
    everyone = _get(server, "/v1/variables/project?from=now-24h", tenants["admin"])
    assert everyone.body["values"] == sorted([A, B])


def test_variables_and_panels_are_scoped_to_the_key(
    server: InProcessServer, tenants: dict[str, str]
) -> None:
    for name in ("model", "prompt_version"):
        path = f"/v1/variables/{name}?from=now-24h&project={B}"
        assert (
            _get(server, path, tenants[A]).body["values"]
            == _get(
                server, f"/v1/variables/{name}?from=now-24h&project={A}", tenants["admin"]
            ).body["values"]
        )
    total = f"/v1/panels/generations_total?from=now-24h&project={B}"
    assert _get(server, total, tenants[A]).body["rows"] == [[300]]
    assert _get(server, total, tenants[B]).body["rows"] == [[200]]
    health = _get(server, "/v1/panels/ingest_rate", tenants[A])
    assert health.status == 403 and health.body["error"] == "forbidden"
    assert _get(server, "/v1/panels/ingest_rate", tenants["admin"]).status == 200
    layout = _get(server, "/v1/dashboard", tenants[A])
    assert layout.status == 200 and B not in json.dumps(layout.body)


def test_reports_and_compare_are_scoped_to_the_key(
    server: InProcessServer, tenants: dict[str, str]
) -> None:
    other = _get(server, f"/v1/report?project={B}", tenants[A])
    assert other.status == 403 and other.body["error"] == "forbidden"
    groups: list[dict[str, Any]] = _get(server, "/v1/report?by=project", tenants[A]).body
    assert [g["project"] for g in groups] == [A]
    # A's 300 generations are a third each model's; B's 200 must not count.
    models = "by=model&a=gpt-4o-mini&b=llama-3.1-8b"
    compare = _get(server, f"/v1/compare?{models}", tenants[A]).body
    assert compare["a_group"]["generations"] == compare["b_group"]["generations"] == 100
    refused = _get(server, f"/v1/compare?{models}&project={B}", tenants[A])
    assert refused.status == 403


def _lines(response: Response) -> int:
    assert response.status == 200, response.body
    text = response.body if isinstance(response.body, str) else json.dumps(response.body)
    return len([line for line in text.splitlines() if line.strip()])


def test_export_is_scoped_to_the_key(server: InProcessServer, tenants: dict[str, str]) -> None:
    other = _get(server, f"/v1/export?project={B}", tenants[A])
    assert other.status == 403 and other.body["error"] == "forbidden"
    # dedup=false: both projects' synthetic outputs are alike.
    own = _lines(_get(server, "/v1/export?dedup=false", tenants[A]))
    as_admin = _lines(_get(server, f"/v1/export?dedup=false&project={A}", tenants["admin"]))
    everything = _lines(_get(server, "/v1/export?dedup=false", tenants["admin"]))
    assert own == as_admin and 0 < own < everything


def test_a_project_key_is_no_admin(server: InProcessServer, tenants: dict[str, str]) -> None:
    for path in ("/v1/admin/keys", "/v1/admin/status"):
        assert _get(server, path, tenants[A]).status == 401
