"""The dashboard's "All" cannot be mistaken for a name: a model called `__all__` (or any
name up to the longest allowed) filters to itself, and "All" still means everything."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from kept_dashboards.catalog import DASHBOARDS
from kept_dashboards.grafana import dashboard_json
from kept_dashboards.macros import Window, grafana_sql
from kept_dashboards.spec import ALL
from kept_wire.contract import MAX_NAME_CHARS
from tests.helpers import InProcessServer, generation, http, now_iso

TOTAL = next(p for d in DASHBOARDS for p in d.panels if p.id == "generations_total")
NAMES = ["__all__", "All", "$__all", "x" * MAX_NAME_CHARS]


@pytest.fixture
def models(server: InProcessServer) -> InProcessServer:
    # A minute ago: the panels' window ends at `now` truncated to the second.
    ts = now_iso(timedelta(minutes=-1))
    events = [generation(model=name, ts=ts) for name in NAMES for _ in range(NAMES.index(name) + 1)]
    events += [generation(model="plain", ts=ts) for _ in range(10)]
    assert server.post(events).status == 202
    deadline = datetime.now(timezone.utc) + timedelta(seconds=10)
    while server.count("generations") < len(events):
        assert datetime.now(timezone.utc) < deadline
        time.sleep(0.05)
    server.runtime.analytics.run_now()
    return server


def _page_total(server: InProcessServer, query: str) -> object:
    r = http("GET", f"{server.url}/v1/panels/generations_total?from=now-1h{query}")
    assert r.status == 200, r.body
    return r.body["rows"][0][0]


@pytest.mark.parametrize("name", NAMES, ids=["__all__", "All", "$__all", "longest"])
def test_a_model_named_like_all_filters_to_itself(models: InProcessServer, name: str) -> None:
    expected = NAMES.index(name) + 1
    assert _page_total(models, f"&model={name}") == expected
    now = datetime.now(timezone.utc)
    grafana = grafana_sql(TOTAL.sql, Window(now - timedelta(hours=1), now, {"model": name}))
    assert models.runtime.store.rows(grafana) == [(expected,)]


def test_all_still_means_all(models: InProcessServer) -> None:
    everything = sum(range(1, len(NAMES) + 1)) + 10
    assert _page_total(models, "") == everything
    assert _page_total(models, "&model=") == everything
    now = datetime.now(timezone.utc)
    grafana = grafana_sql(TOTAL.sql, Window(now - timedelta(hours=1), now, {}))
    assert models.runtime.store.rows(grafana) == [(everything,)]
    variables = dashboard_json(DASHBOARDS[0])["templating"]["list"]
    assert all(v["allValue"] == ALL and len(ALL) > MAX_NAME_CHARS for v in variables)


def test_a_value_longer_than_any_name_is_refused(server: InProcessServer) -> None:
    r = http("GET", f"{server.url}/v1/panels/generations_total?model={ALL}")
    assert r.status == 422 and r.body["error"] == "invalid_query"
