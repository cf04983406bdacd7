"""Rollouts and sequential comparisons as users reach them: baselines, the analytics
function alert rules reuse, `GET /v1/compare?sequential=true`, the rollouts panel's data
and `kept compare --sequential`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from kept_analytics.report import ReportSpec
from kept_analytics.rollouts import Seen, baselines, pick_baselines, rollouts
from tests.helpers import (
    InProcessServer,
    Response,
    feedback,
    generation,
    http,
    run_kept,
    serve_process,
)

HOUR = timedelta(hours=1)


def rollout_events(now: datetime | None = None) -> list[dict[str, Any]]:
    """A seeded regression: `summarize@1` from 20 h ago accepted 45% of the time, then
    `summarize@2` from 10 h ago accepted 25%; `reply@1` on its own (no baseline). A quarter
    of the traffic goes to `gpt-small`, the rest to `gpt-big`, at equal quality."""
    now = now or datetime.now(timezone.utc)
    events: list[dict[str, Any]] = []
    plan = [("summarize@1", 400, 20, 9), ("summarize@2", 400, 10, 5), ("reply@1", 100, 20, 8)]
    for version, count, hours_ago, accepted_of_20 in plan:
        start = now - hours_ago * HOUR
        span = (hours_ago - 1) * HOUR
        for i in range(count):
            ts = start + span * i / count
            model = "gpt-small" if (i // 20) % 4 == 0 else "gpt-big"
            g = generation(ts=ts.isoformat(), model=model, prompt_version=version)
            events.append(g)
            later = (ts + timedelta(seconds=5)).isoformat()
            if i % 20 < accepted_of_20:
                events.append(feedback("action", g["generation_id"], ts=later, name="accept"))
            if i % 20 == 0:
                events.append(feedback("correction", g["generation_id"], ts=later, text="Edited."))
    return events


def _seen(value: str, hour: int, generations: int = 10) -> Seen:
    return Seen(value, datetime(2026, 1, 1, hour, tzinfo=timezone.utc), generations)


def test_previous_and_most_used_baselines() -> None:
    seen = [
        _seen("summarize@2", 5),
        _seen("summarize@1", 1),
        _seen("summarize@10", 7),
        _seen("summarize@9", 7),  # same hour as @10: the version number orders them
        _seen("reply@3", 2),
        _seen("draft", 3),  # no `@`: a prompt of its own
        _seen("", 0),  # no prompt version: never a candidate or a baseline
    ]
    assert pick_baselines(seen, "previous", "prompt_version") == {
        "summarize@2": "summarize@1",
        "summarize@9": "summarize@2",
        "summarize@10": "summarize@9",
    }
    models = [_seen("small", 1, 50), _seen("big", 2, 400), _seen("other", 3, 400)]
    assert pick_baselines(models, "most_used", "model") == {"small": "big", "other": "big"}
    assert pick_baselines(models, "previous", "model") == {"big": "small", "other": "big"}
    assert pick_baselines([], "most_used", "model") == {}


@pytest.fixture
def loaded(server: InProcessServer) -> InProcessServer:
    assert server.post(rollout_events()).status == 202
    server.runtime.analytics.run_now()
    return server


def _spec(server: InProcessServer, **filters: Any) -> ReportSpec:
    now = datetime.now(timezone.utc)
    settings = server.runtime.settings
    return ReportSpec(
        since=now - timedelta(days=2),
        until=now,
        checkpoints=settings.survival_checkpoints,
        **filters,
    )


def test_rollouts_find_the_seeded_regression(loaded: InProcessServer) -> None:
    store = loaded.runtime.store
    spec = _spec(loaded)
    assert baselines(store, spec, "prompt_version", "previous") == {"summarize@2": "summarize@1"}
    assert baselines(store, spec, "model", "most_used") == {"gpt-small": "gpt-big"}

    found = {(r.key, r.candidate): r for r in rollouts(store, spec)}
    assert set(found) == {("prompt_version", "summarize@2"), ("model", "gpt-small")}
    regression = found["prompt_version", "summarize@2"]
    assert (regression.baseline, regression.rule, regression.verdict) == (
        "summarize@1",
        "previous",
        "worse",
    )
    evidence = regression.evidence
    assert evidence.metric == "acceptance_rate"
    assert (evidence.a_n, evidence.b_n) == (400, 400)
    assert evidence.difference == pytest.approx(0.25 - 0.45)
    assert evidence.ci_high is not None and evidence.ci_high < 0
    assert [c.metric for c in regression.comparisons][:3] == [
        "acceptance_rate",
        "vote_score",
        "correction_rate",
    ]
    same = found["model", "gpt-small"]
    assert same.verdict == "no detectable difference"
    assert next(iter(found.values())) is regression  # the most severe first

    # A filter on the candidate's own dimension still finds its baseline; the other
    # dimension's filter narrows what is compared.
    only = rollouts(store, _spec(loaded, prompt_versions=("summarize@2",)))
    assert [(r.candidate, r.baseline) for r in only if r.key == "prompt_version"] == [
        ("summarize@2", "summarize@1")
    ]
    big = rollouts(store, _spec(loaded, models=("gpt-big",)))
    assert [r.candidate for r in big] == ["summarize@2"]
    assert big[0].evidence.a_n == 300  # gpt-big's share of summarize@1


def _get(server: InProcessServer, path: str, **params: str) -> Response:
    headers = {"Authorization": f"Bearer {server.key}"}
    return http("GET", f"{server.url}{path}?{urlencode(params)}", headers=headers)


def test_sequential_compare_and_the_panel_over_http(loaded: InProcessServer) -> None:
    pair = {"by": "prompt_version", "a": "summarize@1", "b": "summarize@2", "since": "2d"}
    fixed = _get(loaded, "/v1/compare", **pair).body
    assert (fixed["method"], fixed["alpha"], fixed["metric_alpha"]) == ("fixed", 0.05, 0.05)
    always = _get(loaded, "/v1/compare", **pair, sequential="true", alpha="0.1").body
    metrics = [c["metric"] for c in always["comparisons"]]
    assert len(metrics) == 8 and "correction_rate" in metrics
    assert (always["method"], always["alpha"]) == ("sequential", 0.1)
    assert always["metric_alpha"] == pytest.approx(0.1 / 8)
    by_metric = {c["metric"]: c for c in always["comparisons"]}
    assert by_metric["acceptance_rate"]["verdict"] == "worse"
    assert by_metric["correction_rate"]["better"] == "lower"
    assert by_metric["kept_rate[30]"]["verdict"] == "not enough data"
    # Wider than the one-look interval of the same data.
    fixed_acceptance = next(c for c in fixed["comparisons"] if c["metric"] == "acceptance_rate")
    assert by_metric["acceptance_rate"]["ci_low"] < fixed_acceptance["ci_low"]
    for bad in ({"alpha": "2"}, {"alpha": "nan"}, {"alpha": "x"}, {"sequential": "maybe"}):
        refused = _get(loaded, "/v1/compare", **pair, **bad)
        assert refused.status == 422, bad
        assert refused.body["error"] == "invalid_query"

    panel = _get(loaded, "/v1/panels/rollouts", **{"from": "now-24h"})
    assert panel.status == 200
    columns = panel.body["columns"]
    rows = [dict(zip(columns, row, strict=True)) for row in panel.body["rows"]]
    assert rows[0]["candidate"] == "summarize@2" and rows[0]["baseline"] == "summarize@1"
    assert (rows[0]["verdict"], rows[0]["metric"], rows[0]["n"]) == (
        "worse",
        "acceptance_rate",
        400,
    )
    assert rows[0]["high"] < 0 < rows[0]["low"] + 1
    layout = http("GET", loaded.url + "/v1/dashboard").body
    assert any(p["id"] == "rollouts" for row in layout["rows"] for p in row["panels"])
    # A project key reads its own project whatever it asks for; the admin token any.
    forced = _get(loaded, "/v1/panels/rollouts", **{"from": "now-24h", "project": "other"})
    assert forced.body["rows"] == panel.body["rows"]
    admin = {"Authorization": f"Bearer {loaded.runtime.admin_token}"}
    url = f"{loaded.url}/v1/panels/rollouts?from=now-24h&project=other"
    assert http("GET", url, headers=admin).body == {"columns": columns, "rows": []}


@pytest.mark.slow
def test_cli_compare_sequential_through_the_server_and_without(data_dir: Path) -> None:
    def kept(*args: str) -> Any:
        return run_kept("compare", "--data", str(data_dir), "--since", "2d", *args)

    with serve_process(data_dir, KEPT_ANALYTICS_LAG_S="0.1") as proc:
        assert proc.post(rollout_events()).status == 202
        assert run_kept("analytics", "run", "--data", str(data_dir)).returncode == 0
        table = kept("--sequential", "summarize@1", "summarize@2")
        assert table.returncode == 0, table.stderr
        assert "always-valid 95% confidence sequences" in table.stdout
        assert "Bonferroni" in table.stdout
        acceptance = next(x for x in table.stdout.splitlines() if "acceptance_rate" in x)
        assert "worse" in acceptance and "higher is better" in acceptance
        one_look = kept("summarize@1", "summarize@2").stdout
        assert "fixed-horizon 95% intervals" in one_look and "correction_rate" in one_look
        refused = kept("--sequential", "--alpha", "0.9", "summarize@1", "summarize@2")
        assert refused.returncode == 1 and "alpha must be between" in refused.stderr
        proc.stop()
    pair = ("summarize@1", "summarize@2")
    direct = kept("--sequential", "--alpha", "0.01", "--format", "json", *pair)
    assert direct.returncode == 0, direct.stderr
    result = json.loads(direct.stdout)
    assert (result["method"], result["metric_alpha"]) == ("sequential", pytest.approx(0.01 / 8))
