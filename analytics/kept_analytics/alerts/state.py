"""Alert states: pending → firing → resolved, one step per evaluation (pure), and the
transitions kept in ClickHouse (`alert_events`), written under the lease's fence.

Prometheus' model: a condition that holds starts a *pending* alert; one that still holds
after the rule's `for` fires; one whose condition goes away resolves (or, still pending,
goes *inactive* without anyone told). A firing alert whose severity changes is recorded
again. No data follows the rule's `no_data` policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from kept_analytics.alerts.evaluate import Finding
from kept_analytics.alerts.rules import Rule, ThresholdRule
from kept_analytics.lease import Fence
from kept_storage import Store, utc

State = Literal["pending", "firing", "resolved", "inactive"]
ACTIVE = ("pending", "firing")


@dataclass(frozen=True)
class Alert:
    """An alert's state since its last transition."""

    fingerprint: str
    rule: str
    kind: str
    labels: dict[str, str]
    state: State
    severity: str
    summary: str
    evidence: dict[str, Any]
    since: datetime
    """When the condition started to hold (pending)."""
    started_at: datetime | None
    """When it started firing."""
    at: datetime
    """When this state was reached."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint, "rule": self.rule, "kind": self.kind,
            "labels": self.labels, "state": self.state, "severity": self.severity,
            "summary": self.summary, "evidence": self.evidence,
            "since": self.since.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "at": self.at.isoformat(),
        }  # fmt: skip


def step(rule: Rule, previous: Alert | None, finding: Finding | None, at: datetime) -> Alert | None:
    """The alert after this evaluation, or None when its state does not change.

    `finding` is None when the group had no finding this round (it left the window)."""
    holds = _holds(rule, finding)
    if holds is None:  # no data, and the policy is to leave the state as it is
        return None
    summary = finding.summary if finding is not None else "no data"
    active = previous if previous is not None and previous.state in ACTIVE else None
    if not holds:
        if active is None:
            return None
        ended: State = "resolved" if active.state == "firing" else "inactive"
        return replace(active, state=ended, summary=summary, at=at)
    severity = finding.severity if finding is not None and finding.severity else "warning"
    evidence = finding.evidence if finding is not None else {}
    if active is None:
        if finding is None:
            return None  # nothing known about the group: no alert to start
        alert = Alert(
            finding.fingerprint, rule.name, rule.kind, finding.labels, "pending", severity,
            summary, evidence, since=at, started_at=None, at=at,
        )  # fmt: skip
        return _fire(alert, at) if rule.for_.total_seconds() <= 0 else alert
    updated = replace(active, severity=severity, summary=summary, evidence=evidence)
    if active.state == "pending":
        return _fire(updated, at) if at - active.since >= rule.for_ else None
    return replace(updated, at=at) if severity != active.severity else None


def _fire(alert: Alert, at: datetime) -> Alert:
    return replace(alert, state="firing", started_at=at, at=at)


def _holds(rule: Rule, finding: Finding | None) -> bool | None:
    """Whether the condition holds; None: no data, and the state stays as it is."""
    if finding is not None and not finding.no_data:
        return finding.severity is not None
    policy = rule.no_data if isinstance(rule, ThresholdRule) else "keep"
    return None if policy == "keep" else policy == "alerting"


# ---- in ClickHouse --------------------------------------------------------------------

_COLUMNS = (
    "fingerprint, rule, kind, labels, state, severity, summary, evidence, since, "
    "started_at, at, term"
)
_ROW_TYPE = (
    "Array(Tuple(fingerprint String, rule String, kind String, labels Map(String, String), "
    "state String, severity String, summary String, evidence String, since String, "
    "started_at Nullable(String), at String))"
)
_INSERT = f"""
INSERT INTO alert_events ({_COLUMNS})
SELECT r.fingerprint, r.rule, r.kind, r.labels, r.state, r.severity, r.summary, r.evidence,
    parseDateTime64BestEffort(r.since, 3, 'UTC'),
    parseDateTime64BestEffortOrNull(r.started_at, 3, 'UTC'),
    parseDateTime64BestEffort(r.at, 3, 'UTC'), {{fence_term:UInt64}}
FROM (SELECT arrayJoin(JSONExtract({{rows:String}}, '{_ROW_TYPE}')) AS r)
WHERE {Fence.condition}
"""
_LATEST = f"""
SELECT {_COLUMNS} FROM alert_events
WHERE (fingerprint, at) IN (SELECT fingerprint, max(at) FROM alert_events GROUP BY fingerprint)
"""


def record(store: Store, alerts: list[Alert], fence: Fence) -> None:
    """Store transitions, in one statement that writes nothing once the term is stale."""
    if not alerts:
        return
    rows = [_row(a) for a in alerts]
    store.command(_INSERT, {"rows": json.dumps(rows), **fence.params}, settings=fence.settings())


def _row(a: Alert) -> dict[str, Any]:
    return {
        "fingerprint": a.fingerprint, "rule": a.rule, "kind": a.kind, "labels": a.labels,
        "state": a.state, "severity": a.severity, "summary": a.summary,
        "evidence": json.dumps(a.evidence, default=str), "since": a.since.isoformat(),
        "started_at": a.started_at.isoformat() if a.started_at else None,
        "at": a.at.isoformat(),
    }  # fmt: skip


def current(store: Store) -> dict[str, Alert]:
    """Every alert's latest state, by fingerprint."""
    return {a.fingerprint: a for a in (_alert(r) for r in store.rows(_LATEST))}


def history(store: Store, since: datetime, until: datetime) -> list[Alert]:
    """Transitions between `since` and `until`, oldest first."""
    rows = store.rows(
        f"SELECT {_COLUMNS} FROM alert_events WHERE at >= {{since:DateTime64(3, 'UTC')}} "
        "AND at < {until:DateTime64(3, 'UTC')} ORDER BY at, rule, fingerprint",
        {"since": since, "until": until},
    )
    return [_alert(r) for r in rows]


def _alert(row: tuple[Any, ...]) -> Alert:
    fp, rule, kind, labels, state, severity, summary, evidence, since, started, at, _ = row
    return Alert(
        str(fp), str(rule), str(kind), dict(labels), state, str(severity), str(summary),
        json.loads(evidence or "{}"), utc(since), utc(started) if started else None, utc(at),
    )  # fmt: skip
