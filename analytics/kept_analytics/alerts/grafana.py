"""Threshold rules as Grafana alert-rule provisioning (unified alerting, `apiVersion: 1`).

Each level of a rule (warning, critical) becomes one Grafana rule: a ClickHouse query
over the hourly rollup returning one row per group (its string columns become the
alert's labels) with `value` and `trials`, reduced and compared by Grafana's server-side
expressions. Rules filtered by metadata need the outcome rows and regression rules the
always-valid test: kept evaluates those itself, and `render` says which it left out.
"""

from __future__ import annotations

from typing import Any

from kept_analytics.alerts.evaluate import checkpoints_of
from kept_analytics.alerts.rules import Rule, ThresholdRule

_BUCKETS_PER_UNIT = 20  # survival histogram buckets of 0.05 in outcomes_hourly
_KEPT_BUCKET = 10  # the default kept threshold, 0.5, on that grid
_NO_DATA = {"ok": "OK", "keep": "NoData", "alerting": "Alerting"}


def _quote(value: str) -> str:
    """A ClickHouse string literal (Grafana sends the query as it is: no parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ratio(metric: str) -> tuple[str, str]:
    """(successes, trials) as aggregates over outcomes_hourly."""
    if metric == "acceptance_rate":
        return "sum(accepted)", "sum(generations)"
    if metric == "vote_score":
        return "sum(votes_up)", "sum(votes_up) + sum(votes_down)"
    if metric == "correction_rate":
        return "sum(corrected)", "sum(generations)"
    (checkpoint,) = checkpoints_of(metric)
    at = f"intDiv(k, 100) = {checkpoint}"
    hist = "sumMap(survival_hist)"
    kept = f"arraySum(mapValues(mapFilter((k, v) -> {at} AND k % 100 >= {_KEPT_BUCKET}, {hist})))"
    measured = f"arraySum(mapValues(mapFilter((k, v) -> {at}, {hist})))"
    return kept, measured


def rule_sql(rule: ThresholdRule, database: str) -> str:
    """The query Grafana runs: `value` and `trials` per group over the rule's window."""
    successes, trials = _ratio(rule.metric)
    where = [
        f"hour >= toStartOfHour(now('UTC') - toIntervalSecond({int(rule.window.total_seconds())}))"
    ]
    if rule.project is not None:
        where.append(f"project = {_quote(rule.project)}")
    if rule.models:
        where.append(f"model IN ({', '.join(map(_quote, rule.models))})")
    if rule.prompt_versions:
        where.append(f"prompt_version IN ({', '.join(map(_quote, rule.prompt_versions))})")
    keys = f"{rule.by}, " if rule.by else ""
    group = f" GROUP BY {rule.by}" if rule.by else ""
    return (
        f"SELECT {keys}{successes} / nullIf({trials}, 0) AS value, {trials} AS trials "
        f"FROM `{database}`.outcomes_hourly WHERE {' AND '.join(where)}{group} "
        f"HAVING trials >= {max(rule.min_generations, 1)}"
    )


def _levels(rule: ThresholdRule) -> list[tuple[str, str, float]]:
    """(severity, Grafana evaluator type, level) of each level the rule sets."""
    levels = []
    for severity in ("warning", "critical"):
        for side, kind in (("below", "lt"), ("above", "gt")):
            level = getattr(rule, f"{severity}_{side}")
            if level is not None:
                levels.append((severity, kind, float(level)))
    return levels


def _grafana_rule(rule: ThresholdRule, severity: str, kind: str, level: float, datasource: str,
                  database: str) -> dict[str, Any]:  # fmt: skip
    window = int(rule.window.total_seconds())
    side = "below" if kind == "lt" else "above"
    return {
        "uid": f"kept-{rule.name}-{severity}-{side}"[:40],
        "title": f"{rule.name} ({severity}: {rule.metric} {side} {level:g})",
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": window, "to": 0},
                "datasourceUid": datasource,
                "model": {
                    "refId": "A",
                    "rawSql": rule_sql(rule, database),
                    "format": 1,
                    "queryType": "table",
                    "editorType": "sql",
                },
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last"},
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": kind, "params": [level]}}],
                },
            },
        ],
        "noDataState": _NO_DATA[rule.no_data],
        "execErrState": "Error",
        "for": f"{int(rule.for_.total_seconds())}s",
        "labels": {"severity": severity, "kept_rule": rule.name},
        "annotations": {
            "summary": f"{rule.metric} {side} {level:g} over the last {window}s",
            "description": f"kept rule {rule.name}: {rule.metric} per {rule.by or 'all'}.",
        },
    }


def render(
    rules: tuple[Rule, ...], datasource: str, database: str = "kept", interval: str = "1m"
) -> tuple[dict[str, Any], list[str]]:
    """The provisioning document and why each rule left out was left out."""
    out, skipped = [], []
    for rule in rules:
        if not isinstance(rule, ThresholdRule):
            skipped.append(f"{rule.name}: a regression rule needs kept's always-valid test")
        elif rule.metadata:
            skipped.append(f"{rule.name}: a metadata filter needs the outcome rows")
        else:
            out += [_grafana_rule(rule, *level, datasource, database) for level in _levels(rule)]
    group = {"orgId": 1, "name": "kept", "folder": "kept", "interval": interval, "rules": out}
    return {"apiVersion": 1, "groups": [group] if out else []}, skipped
