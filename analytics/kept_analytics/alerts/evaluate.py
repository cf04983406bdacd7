"""What each rule says at one moment: a Finding per group (pure reads of the store).

Reads the hourly rollup through `report`, so a round of many rules over millions of
generations costs a few small queries each. Evaluating "as of" a past moment reads the
outcomes as they are now: feedback that arrived after that moment on earlier
generations counts (backtests see late feedback a live evaluation had not seen yet).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kept_analytics.alerts.rules import (
    METRIC,
    RegressionRule,
    Rule,
    Severity,
    ThresholdRule,
)
from kept_analytics.compare import better, proportions, verdict
from kept_analytics.report import DEFAULT_CHECKPOINTS, ReportSpec, report
from kept_analytics.rollouts import Seen, pick_baselines, seen_values
from kept_analytics.sequential import sequential_difference
from kept_storage import Store, utc
from kept_wire.contract import KEPT_THRESHOLD_DEFAULT


@dataclass(frozen=True)
class Finding:
    """One rule about one group at one moment: the severity reached (None: the condition
    does not hold), or no data."""

    rule: str
    labels: dict[str, str]
    severity: Severity | None
    no_data: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.labels)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "labels": self.labels, "severity": self.severity,
            "no_data": self.no_data, "summary": self.summary, "evidence": self.evidence,
        }  # fmt: skip


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """A stable id of an alert: its rule and group."""
    text = json.dumps([rule, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def proportion(group: dict[str, Any], metric: str) -> tuple[int, int]:
    """(successes, trials) of `metric` in a report group (none: no data)."""
    if not group:
        return 0, 0
    successes, trials = proportions(group, checkpoints_of(metric))[metric]
    return int(successes), int(trials)


def checkpoints_of(metric: str) -> tuple[int, ...]:
    match = METRIC.match(metric)
    return (int(match[2]),) if match and match[2] else ()


def _spec(rule: Rule, since: datetime, until: datetime, by: tuple[str, ...]) -> ReportSpec:
    return ReportSpec(
        since=since,
        until=until,
        by=by,
        project=rule.project,
        models=rule.models,
        prompt_versions=rule.prompt_versions,
        metadata=rule.metadata,
        threshold=KEPT_THRESHOLD_DEFAULT,
        checkpoints=checkpoints_of(rule.metric) or DEFAULT_CHECKPOINTS,
    )


class _Round:
    """The queries of one round, each run once however many rules share it (rules of one
    window, grouping and filters differ only in their metric and levels)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._reports: dict[str, list[dict[str, Any]]] = {}
        self._seen: dict[str, list[Seen]] = {}

    def report(self, spec: ReportSpec) -> list[dict[str, Any]]:
        key = spec.model_dump_json()
        if key not in self._reports:
            self._reports[key] = report(self.store, spec)
        return self._reports[key]

    def seen(self, rule: RegressionRule, since: datetime, until: datetime) -> list[Seen]:
        spec = _spec(rule, since, until, ())
        key = rule.by + spec.model_dump_json()
        if key not in self._seen:
            self._seen[key] = seen_values(self.store, spec, rule.by)
        return self._seen[key]


def evaluate(store: Store, rules: tuple[Rule, ...], at: datetime) -> list[Finding]:
    """Every rule's findings as of `at` (UTC)."""
    at = utc(at)
    queries = _Round(store)
    findings: list[Finding] = []
    for rule in rules:
        if isinstance(rule, ThresholdRule):
            findings += _threshold(queries, rule, at)
        else:
            findings += _regression(queries, rule, at)
    return findings


def _threshold(queries: _Round, rule: ThresholdRule, at: datetime) -> list[Finding]:
    by = (rule.by,) if rule.by else ()
    groups = queries.report(_spec(rule, at - rule.window, at, by))
    if not groups and not by:
        groups = [{}]
    findings = []
    for group in groups:
        labels: dict[str, str] = {key: str(group[key]) for key in by}
        if rule.project is not None:
            labels.setdefault("project", rule.project)
        x, n = proportion(group, rule.metric) if group else (0, 0)
        evidence: dict[str, Any] = {
            "successes": x,
            "trials": n,
            "window_s": rule.window.total_seconds(),
        }
        if n == 0 or n < rule.min_generations:
            summary = f"{rule.metric}: not enough data ({n} < {max(rule.min_generations, 1)})"
            findings.append(Finding(rule.name, labels, None, True, summary, evidence))
            continue
        value = x / n
        evidence["value"] = value
        severity = rule.severity_of(value)
        where = ", ".join(f"{k} {v}" for k, v in labels.items()) or "all generations"
        summary = (
            f"{rule.metric} is {value:.1%} over the last {_span(rule.window)} ({where}, n={n})"
        )
        findings.append(Finding(rule.name, labels, severity, False, summary, evidence))
    return findings


def _regression(queries: _Round, rule: RegressionRule, at: datetime) -> list[Finding]:
    since = at - rule.lookback
    seen = queries.seen(rule, since - rule.lookback, at)  # baselines may be older
    if rule.baseline == "previous":
        pairs = pick_baselines(seen, "previous", rule.by)
    else:
        pairs = {s.value: rule.baseline for s in seen if s.value != rule.baseline}
    new = {s.value for s in seen if s.first_seen >= since}  # rollouts still under way
    groups = {str(g[rule.by]): g for g in queries.report(_spec(rule, since, at, (rule.by,)))}
    findings = []
    for candidate, base in sorted(pairs.items()):
        if candidate not in new:
            continue
        labels: dict[str, str] = {rule.by: candidate}
        if rule.project is not None:
            labels["project"] = rule.project
        ax, an = proportion(groups.get(base, {}), rule.metric)
        bx, bn = proportion(groups.get(candidate, {}), rule.metric)
        interval = sequential_difference(ax, an, bx, bn, rule.alpha)
        evidence = {
            "baseline": base, "candidate": candidate, "baseline_successes": ax,
            "baseline_trials": an, "candidate_successes": bx, "candidate_trials": bn,
            "difference": interval.estimate, "low": interval.low, "high": interval.high,
            "alpha": rule.alpha, "since": since.isoformat(),
        }  # fmt: skip
        if interval.estimate is None or interval.low is None or interval.high is None:
            summary = f"{rule.metric} of {candidate} against {base}: not enough data"
            findings.append(Finding(rule.name, labels, None, True, summary, evidence))
            continue
        worse = verdict(interval.low, interval.high, better(rule.metric)) == "worse"
        summary = (
            f"{rule.metric} of {candidate} is {100 * interval.estimate:+.1f} points against "
            f"{base} (always-valid {1 - rule.alpha:.0%} interval {100 * interval.low:+.1f} to "
            f"{100 * interval.high:+.1f}; n={bn} vs {an})"
        )
        findings.append(
            Finding(rule.name, labels, rule.severity if worse else None, False, summary, evidence)
        )
    return findings


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
