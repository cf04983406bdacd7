"""Alert rules: the file's errors, the state machine, evaluation on a real store, the
transitions recorded under the lease's fence, notifications to a real HTTP receiver,
`GET /v1/alerts`, and the analytics runner of a real `kept serve` evaluating them."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from kept_analytics.alerts.delivery import DeliveryMetrics, Dispatcher
from kept_analytics.alerts.evaluate import Finding, evaluate
from kept_analytics.alerts.grafana import render
from kept_analytics.alerts.job import AlertJob
from kept_analytics.alerts.rules import RuleError, ThresholdRule, parse_rules
from kept_analytics.alerts.state import current, step
from kept_analytics.lease import Lease
from tests.helpers import (
    InProcessServer,
    feedback,
    generation,
    http,
    run_kept,
    serve_process,
)


class Hooks:
    """A real HTTP server that records what receivers post to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def states(self) -> list[tuple[str, str]]:
        return [(r["rule"], r["state"]) for r in self.received]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    hooks = Hooks()
    try:
        yield hooks
    finally:
        hooks.server.shutdown()


def _rules(hooks: Hooks, body: str) -> str:
    return (
        "receivers:\n"
        f"  - {{name: hook, kind: webhook, url: '{hooks.url}',\n"
        "      secret_env: KEPT_TEST_HOOK_SECRET}\n"
        f"rules:\n{body}"
    )


LOW_ACCEPTANCE = """
  - name: low-acceptance
    kind: threshold
    metric: acceptance_rate
    by: model
    window: 1h
    warning_below: 0.5
    critical_below: 0.3
    min_generations: 10
    for: 0s
"""


def test_a_bad_rules_file_names_the_rule_and_the_field() -> None:
    bad = """
rules:
  - {name: ok, kind: threshold, metric: acceptance_rate, warning_below: 0.5}
  - {name: broken-window, kind: threshold, metric: vote_score, window: soon, warning_below: 0.5}
  - {name: odd-metric, kind: regression, metric: happiness, by: prompt_version}
  - {name: no-levels, kind: threshold, metric: vote_score}
"""
    with pytest.raises(RuleError) as caught:
        parse_rules(bad, "rules.yaml")
    message = str(caught.value)
    assert "'broken-window' (rules[1]) field window: invalid duration 'soon'" in message
    assert "'odd-metric' (rules[2]) field metric: use acceptance_rate" in message
    assert "'no-levels' (rules[3])" in message and "at least one of warning_below" in message
    assert "'ok'" not in message
    with pytest.raises(RuleError, match="unknown receiver pager"):
        parse_rules("rules:\n  - {name: a, kind: threshold, metric: vote_score, "
                    "warning_below: 0.5, receivers: [pager]}")  # fmt: skip


def test_pending_fires_after_for_and_resolves() -> None:
    rule = ThresholdRule.model_validate(
        {
            "name": "r",
            "kind": "threshold",
            "metric": "vote_score",
            "warning_below": 0.5,
            "for": "10m",
        }
    )
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    low = Finding("r", {}, "warning", False, "low")
    fine = Finding("r", {}, None, False, "fine")
    pending = step(rule, None, low, t0)
    assert pending is not None and pending.state == "pending"
    assert step(rule, pending, low, t0 + timedelta(minutes=5)) is None
    firing = step(rule, pending, low, t0 + timedelta(minutes=10))
    assert firing is not None and (firing.state, firing.started_at) == ("firing", firing.at)
    assert step(rule, firing, low, t0 + timedelta(minutes=11)) is None  # no repeat
    critical = step(rule, firing, Finding("r", {}, "critical", False, "lower"), t0)
    assert critical is not None and (critical.state, critical.severity) == ("firing", "critical")
    resolved = step(rule, firing, fine, t0 + timedelta(minutes=20))
    assert resolved is not None and resolved.state == "resolved"
    # A pending alert whose condition goes away was never told to anyone: inactive.
    gone = step(rule, pending, fine, t0 + timedelta(minutes=1))
    assert gone is not None and gone.state == "inactive"
    # No data: `ok` (the default) resolves, `keep` leaves it.
    no_data = Finding("r", {}, None, True, "no data")
    assert (step(rule, firing, no_data, t0) or firing).state == "resolved"
    keep = rule.model_copy(update={"no_data": "keep"})
    assert step(keep, firing, no_data, t0) is None


def _traffic(server: InProcessServer, model: str, generations: int, accepted: int,
             ts: datetime | None = None) -> None:  # fmt: skip
    events: list[dict[str, Any]] = []
    for i in range(generations):
        fields = {"model": model, "prompt_version": f"p@{model}"}
        g = generation(**fields, **({"ts": ts.isoformat()} if ts else {}))
        events.append(g)
        if i < accepted:
            events.append(feedback("action", g["generation_id"], name="accept"))
    assert server.post(events).status == 202


def test_a_threshold_rule_fires_notifies_and_resolves(
    server: InProcessServer, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEPT_TEST_HOOK_SECRET", "a-secret-for-the-test-hook")
    store = server.runtime.store
    store.command("TRUNCATE TABLE alert_events")
    rules = parse_rules(_rules(hooks, LOW_ACCEPTANCE))
    lease = Lease(store, 20, f"test-{uuid.uuid4().hex[:8]}")
    assert lease.acquire() is not None
    fence = lease.fence()
    assert fence is not None
    dispatcher = Dispatcher(rules.receivers, DeliveryMetrics(CollectorRegistry()))
    job = AlertJob(store, rules, dispatcher)
    try:
        _traffic(server, "m-low", 20, 2)
        _traffic(server, "m-fine", 20, 18)
        server.runtime.analytics.run_now()
        first = job.run(fence)
        assert [(t.labels, t.state, t.severity) for t in first.transitions] == [
            ({"model": "m-low"}, "firing", "critical")
        ]
        assert job.run(fence).transitions == []  # still firing: nothing new, nothing sent
        _traffic(server, "m-low", 40, 40)  # 42 of 60 accepted now
        server.runtime.analytics.run_now()
        assert [t.state for t in job.run(fence).transitions] == ["resolved"]
    finally:
        dispatcher.close(timeout=10)
    assert hooks.states() == [("low-acceptance", "firing"), ("low-acceptance", "resolved")]
    assert hooks.received[0]["group"] == {"model": "m-low"}
    assert hooks.received[0]["evidence"]["trials"] == 20
    answer = http("GET", server.url + "/v1/alerts?since=1h", headers=_admin(server))
    assert answer.status == 200
    assert answer.body["current"] == []
    assert [h["state"] for h in answer.body["history"]] == ["firing", "resolved"]
    # A deposed holder records nothing.
    assert Lease(store, 20, lease.name).acquire() is None
    lease.release()
    successor = Lease(store, 20, lease.name)
    assert successor.acquire() is not None
    _traffic(server, "m-low", 200, 0)
    server.runtime.analytics.run_now()
    before = len(current(store))
    with pytest.raises(Exception, match="superseded"):
        AlertJob(store, rules, None).run(fence)
    assert (
        http("GET", server.url + "/v1/alerts?since=1h", headers=_admin(server)).body["current"]
        == []
        and len(current(store)) == before
    )


def _admin(server: InProcessServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.runtime.admin_token}"}


def test_a_regression_against_the_previous_version_fires(
    server: InProcessServer, hooks: Hooks
) -> None:
    store = server.runtime.store
    store.command("TRUNCATE TABLE alert_events")
    now = datetime.now(timezone.utc)
    events: list[dict[str, Any]] = []
    for version, hours_ago, share in (("summarize@1", 3, 0.6), ("summarize@2", 1, 0.4)):
        for i in range(400):
            g = generation(model="m", prompt_version=version,
                           ts=(now - timedelta(hours=hours_ago)).isoformat())  # fmt: skip
            events.append(g)
            if i < share * 400:
                events.append(feedback("action", g["generation_id"], name="accept"))
    assert server.post(events).status == 202
    server.runtime.analytics.run_now()
    rules = parse_rules(
        "rules:\n  - {name: acceptance-regression, kind: regression, metric: acceptance_rate, "
        "by: prompt_version, baseline: previous, alpha: 0.05, for: 0s}\n"
    )
    lease = Lease(store, 20, f"test-{uuid.uuid4().hex[:8]}")
    assert lease.acquire() is not None
    fence = lease.fence()
    assert fence is not None
    done = AlertJob(store, rules, None).run(fence)
    assert [(t.labels, t.state) for t in done.transitions] == [
        ({"prompt_version": "summarize@2"}, "firing")
    ]
    evidence = done.transitions[0].evidence
    assert evidence["baseline"] == "summarize@1" and evidence["high"] < 0
    assert abs(evidence["difference"] + 0.2) < 1e-9


@pytest.mark.slow
def test_serve_evaluates_rules_and_the_cli_checks_and_backtests(
    data_dir: Path, tmp_path: Path, hooks: Hooks
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(_rules(hooks, LOW_ACCEPTANCE))
    secret = {"KEPT_TEST_HOOK_SECRET": "a-secret-for-the-test-hook"}
    env = {"KEPT_ALERT_RULES": str(rules), "KEPT_ANALYTICS_INTERVAL_S": "1",
           "KEPT_ANALYTICS_LAG_S": "0", **secret}  # fmt: skip
    with serve_process(data_dir, None, **env) as proc:
        events: list[dict[str, Any]] = []
        for i in range(30):
            g = generation(model="m-low", prompt_version="p@1")
            events += [g] + (
                [feedback("action", g["generation_id"], name="accept")] if i < 3 else []
            )
        assert proc.post(events).status == 202
        deadline = datetime.now(timezone.utc) + timedelta(seconds=60)
        while hooks.states() != [("low-acceptance", "firing")]:
            assert datetime.now(timezone.utc) < deadline, proc.output[-20:]
            threading.Event().wait(0.2)
        assert proc.stop() in (0, -signal.SIGTERM)
    check = run_kept("alerts", "check", "--rules", str(rules), "--data", str(data_dir),
                     "--format", "json", **secret)  # fmt: skip
    assert check.returncode == 0, check.stderr
    findings = json.loads(check.stdout)["findings"]
    assert [(f["labels"], f["severity"]) for f in findings] == [({"model": "m-low"}, "critical")]
    backtest = run_kept(
        "alerts", "backtest", "--rules", str(rules), "--since", "3h", "--step", "1h",
        "--data", str(data_dir), "--format", "json", **secret,
    )  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    transitions = json.loads(backtest.stdout)["transitions"]
    assert [(t["state"], t["labels"]) for t in transitions] == [("firing", {"model": "m-low"})]
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: x, kind: threshold, metric: vote_score}\n")
    refused = run_kept("alerts", "check", "--rules", str(bad), "--data", str(data_dir))
    assert refused.returncode == 1 and "rule 'x' (rules[0])" in refused.stderr


def test_threshold_rules_render_as_grafana_alert_rules_with_kepts_own_figures(
    server: InProcessServer,
) -> None:
    store = server.runtime.store
    _traffic(server, "m-low", 20, 2)
    _traffic(server, "m-fine", 30, 27)
    server.runtime.analytics.run_now()
    rules = parse_rules("""
rules:
  - {name: acceptance, kind: threshold, metric: acceptance_rate, by: model, window: 2h,
     warning_below: 0.5, critical_below: 0.2, min_generations: 5}
  - {name: kept-300, kind: threshold, metric: "kept_rate[300]", window: 1d, warning_below: 0.5}
  - {name: corrections, kind: threshold, metric: correction_rate, project: demo,
     models: ["m-low", "it's"], warning_above: 0.3}
  - {name: by-metadata, kind: threshold, metric: vote_score, metadata: {app: bot},
     warning_below: 0.5}
  - {name: regression, kind: regression, metric: acceptance_rate, by: model}
""")
    document, skipped = render(rules.rules, "ds-uid", store.database)
    assert [s.split(":")[0] for s in skipped] == ["by-metadata", "regression"]
    grafana = document["groups"][0]["rules"]
    assert [r["labels"] for r in grafana] == [
        {"severity": "warning", "kept_rule": "acceptance"},
        {"severity": "critical", "kept_rule": "acceptance"},
        {"severity": "warning", "kept_rule": "kept-300"},
        {"severity": "warning", "kept_rule": "corrections"},
    ]
    assert grafana[1]["data"][2]["model"]["conditions"] == [
        {"evaluator": {"type": "lt", "params": [0.2]}}
    ]
    assert len({r["uid"] for r in grafana}) == len(grafana)
    # Each query, run on the real engine, gives the figures kept's own evaluation gives.
    findings = evaluate(store, rules.rules[:3], datetime.now(timezone.utc))
    expected = {
        (f.rule, f.labels.get("model", "")): round(f.evidence["value"], 9)
        for f in findings
        if not f.no_data
    }
    got = {}
    for rule, grafana_rule in zip(rules.rules[:1] * 2 + rules.rules[1:3], grafana, strict=True):
        sql = grafana_rule["data"][0]["model"]["rawSql"]
        for row in store.rows(sql):
            key = (rule.name, str(row[0]) if len(row) == 3 else "")
            got[key] = round(float(row[-2]), 9)
    assert got == expected
    assert got[("acceptance", "m-low")] == 0.1 and got[("acceptance", "m-fine")] == 0.9
