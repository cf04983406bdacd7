"""Grafana output: schema-valid JSON, provisioning files up to date, every panel's SQL run
on the real engine the way Grafana's ClickHouse plugin expands it, and the typed
expansion of the built-in page giving the same rows."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest

from kept_dashboards.catalog import DASHBOARDS, VARIABLES
from kept_dashboards.grafana import dashboard_json, dumps
from kept_dashboards.macros import UnknownMacro, Window, grafana_sql, parameters, typed_sql
from kept_dashboards.provisioning import build
from kept_dashboards.spec import ALL
from tests.helpers import InProcessServer, http
from tests.synthetic import load

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests/data/grafana-dashboard.schema.json").read_text())
SQL_PANELS = [p for d in DASHBOARDS for p in d.panels if p.sql]


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.uid)
def test_dashboard_validates_against_grafana_schema(dashboard: object) -> None:
    document = dashboard_json(dashboard)  # type: ignore[arg-type]
    jsonschema.Draft7Validator(SCHEMA).validate(document)
    ids = [p["id"] for p in document["panels"]]
    assert len(ids) == len(set(ids))
    assert dumps(document) == dumps(dashboard_json(dashboard))  # type: ignore[arg-type]


def test_deploy_files_are_up_to_date(tmp_path: Path) -> None:
    written = build(tmp_path, provisioning=True)
    for path in written:
        committed = ROOT / "deploy/grafana" / path.relative_to(tmp_path)
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run `kept dashboards build --out deploy/grafana --provisioning`"
        )


def test_unknown_macro_is_refused() -> None:
    with pytest.raises(UnknownMacro):
        typed_sql("SELECT 1 WHERE $__unknown(ts)")


@pytest.fixture
def scenario(server: InProcessServer) -> InProcessServer:
    now = datetime.now(timezone.utc)
    load(server.runtime.store, 20_000, now - timedelta(hours=20), now, project="demo")
    load(server.runtime.store, 2_000, now - timedelta(hours=3), now, project="other", prefix="o")
    server.runtime.analytics.run_now()
    return server


def _near(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        # t-digest quantiles depend on the order parallel states merge in, by up to a few
        # percent (a 1e-3 tolerance failed once in CI on latency_by_model's p95).
        return math.isclose(a, b, rel_tol=0.05)
    return a == b


def _window(**values: str) -> Window:
    now = datetime.now(timezone.utc)
    return Window(now - timedelta(hours=24), now, values)


@pytest.mark.parametrize(
    "values", [{}, {"project": "demo", "model": "gpt-4o-mini", "prompt_version": "reply@3"}]
)
def test_every_panel_query_runs_as_grafana_sends_it(
    scenario: InProcessServer, values: dict[str, str]
) -> None:
    store = scenario.runtime.store
    win = _window(**values)
    for panel in SQL_PANELS:
        result = store.client().query(grafana_sql(panel.sql, win))
        assert tuple(result.column_names) == panel.columns, panel.id
        assert result.result_rows, f"{panel.id} returned no rows"
        typed = store.rows(typed_sql(panel.sql), parameters(win))
        # Float sums and t-digests depend on the order threads merge in: near, not equal.
        assert len(result.result_rows) == len(typed), panel.id
        for sent, mine in zip(result.result_rows, typed, strict=True):
            assert all(_near(a, b) for a, b in zip(sent, mine, strict=True)), panel.id
        if panel.viz == "timeseries":
            assert isinstance(result.result_rows[0][0], datetime), panel.id
        if panel.viz == "stat":
            assert len(result.result_rows) == 1, panel.id


def test_filters_narrow_the_panels(scenario: InProcessServer) -> None:
    store = scenario.runtime.store
    by_model = next(p for p in SQL_PANELS if p.id == "latency_by_model")
    rows = store.rows(typed_sql(by_model.sql), parameters(_window(model="llama-3.1-8b")))
    assert [r[0] for r in rows] == ["llama-3.1-8b"]
    total = next(p for p in SQL_PANELS if p.id == "generations_total")
    everything = store.rows(typed_sql(total.sql), parameters(_window()))[0][0]
    other = store.rows(typed_sql(total.sql), parameters(_window(project="other")))[0][0]
    assert (everything, other) == (22_000, 2_000)
    # A hostile value is a value, not SQL.
    hostile = store.rows(typed_sql(total.sql), parameters(_window(project="x' OR 1=1 --")))
    assert hostile[0][0] == 0


def test_variables_list_values(scenario: InProcessServer) -> None:
    store = scenario.runtime.store
    values = {
        v.name: [r[0] for r in store.rows(typed_sql(v.sql), parameters(_window()))]
        for v in VARIABLES
    }
    assert values["project"] == ["demo", "other"]
    assert "gpt-4o-mini" in values["model"] and "reply@3" in values["prompt_version"]
    assert ALL not in values["project"]


def test_panel_endpoint_data_and_errors(scenario: InProcessServer) -> None:
    url = scenario.url
    r = http("GET", url + "/v1/panels/acceptance_by_model?from=now-24h&project=demo")
    assert r.status == 200
    assert r.body["columns"] == ["time", "series", "acceptance_rate"]
    assert isinstance(r.body["rows"][0][0], int) and len(r.body["rows"]) > 10
    assert http("GET", url + "/v1/panels/nope").status == 404
    assert http("GET", url + "/v1/panels/volume?from=yesterday").status == 422
    health = http("GET", url + "/v1/panels/ingest_rate").body
    assert health["kind"] == "counter"
    spec = http("GET", url + "/v1/dashboard").body
    assert {p["id"] for row in spec["rows"] for p in row["panels"]} >= {"survival_curve"}
    assert "sql" not in json.dumps(spec)
    page = http("GET", url + "/")
    assert page.status == 200 and "/static/app.js" in page.body
    script = http("GET", url + "/static/app.js").body
    assert 'src="http' not in page.body and 'href="http' not in page.body
    assert "getJSON(`/v1/panels/" in script and "https://" not in script


def test_project_key_sees_its_own_project_only(scenario: InProcessServer) -> None:
    url = scenario.url + "/v1/panels/generations_total?from=now-24h&project=other"
    r = http("GET", url, headers={"Authorization": f"Bearer {scenario.key}"})  # the demo key
    assert r.status == 200 and r.body["rows"] == [[20_000]]
    bad = http("GET", url, headers={"Authorization": "Bearer kept_wrong"})
    assert bad.status == 401


def test_spec_covers_the_issue_and_is_consistent() -> None:
    panels = [p for d in DASHBOARDS for p in d.panels]
    ids = {p.id for p in panels}
    assert len(ids) == len(panels)
    assert ids >= {
        "acceptance_by_prompt_version", "acceptance_by_model", "survival_curve", "vote_score",
        "correction_rate", "correction_similarity", "top_actions", "regenerate_rate",
        "latency_by_model", "cost_by_model", "volume", "worst_prompt_versions",
        "ingest_rate", "rejects", "consumer_lag", "insert_latency",
    }  # fmt: skip
    for panel in panels:
        assert bool(panel.sql) != bool(panel.promql), panel.id
        assert panel.title and panel.description, panel.id
        if panel.viz == "timeseries" and panel.sql:
            assert panel.columns[0] == "time", panel.id
        if panel.promql:
            assert panel.local.startswith("kept_"), panel.id
    assert [v.name for v in VARIABLES] == ["project", "model", "prompt_version"]
