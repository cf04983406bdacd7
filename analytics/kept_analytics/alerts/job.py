"""The alert job: evaluate every rule, step each alert, record the transitions under the
lease's fence, then notify (firing and resolved only; never blocking on a receiver).

The lease holder runs it after the outcomes job, so it sees the outcomes just folded.
`backtest` replays the same steps over history in memory, writing and sending nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from kept_analytics.alerts.delivery import Dispatcher
from kept_analytics.alerts.evaluate import Finding, evaluate
from kept_analytics.alerts.notification import Notification
from kept_analytics.alerts.rules import Rule, RuleFile
from kept_analytics.alerts.state import ACTIVE, Alert, State, current, record, step
from kept_analytics.lease import Fence
from kept_analytics.outcomes import Deposed
from kept_storage import Store, utc

log = logging.getLogger("kept.alerts")


@dataclass(frozen=True)
class AlertRound:
    """What one evaluation round did."""

    at: datetime
    findings: int
    transitions: list[Alert]
    firing: int


def advance(
    rules: tuple[Rule, ...], alerts: dict[str, Alert], findings: list[Finding], at: datetime
) -> list[Alert]:
    """The transitions of one round (pure): each finding steps its alert; an active alert
    without a finding this round steps on no data, and one whose rule is gone resolves."""
    by_name = {rule.name: rule for rule in rules}
    found = {finding.fingerprint: finding for finding in findings}
    transitions = []
    for fingerprint, finding in found.items():
        changed = step(by_name[finding.rule], alerts.get(fingerprint), finding, at)
        if changed is not None:
            transitions.append(changed)
    for fingerprint, alert in alerts.items():
        if fingerprint in found or alert.state not in ACTIVE:
            continue
        rule = by_name.get(alert.rule)
        if rule is None:
            ended: State = "resolved" if alert.state == "firing" else "inactive"
            transitions.append(replace(alert, state=ended, summary="the rule was removed", at=at))
            continue
        changed = step(rule, alert, None, at)
        if changed is not None:
            transitions.append(changed)
    return transitions


def notification(alert: Alert, rules: tuple[Rule, ...]) -> Notification | None:
    """What receivers are told of a transition (firing or resolved; None otherwise)."""
    if alert.state not in ("firing", "resolved") or alert.started_at is None:
        return None
    receivers = next((r.receivers for r in rules if r.name == alert.rule), ())
    return Notification(
        rule=alert.rule,
        kind=alert.kind,
        state=alert.state,
        severity=alert.severity,
        group=alert.labels,
        summary=alert.summary,
        evidence=alert.evidence,
        fingerprint=alert.fingerprint,
        started_at=alert.started_at,
        at=alert.at,
        receivers=receivers,
    )


class AlertJob:
    """Evaluates a rules file against the store and notifies its receivers."""

    def __init__(self, store: Store, rules: RuleFile, dispatcher: Dispatcher | None) -> None:
        self._store = store
        self.rules = rules
        self._dispatcher = dispatcher

    def run(self, fence: Fence, at: datetime | None = None) -> AlertRound:
        """One round as of `at` (default: the server's now). Raises Deposed when the
        term is superseded: then nothing was recorded, and nothing is sent."""
        store = self._store
        moment = utc(at or store.scalar("SELECT now64(3, 'UTC')"))
        findings = evaluate(store, self.rules.rules, moment)
        alerts = current(store)
        transitions = advance(self.rules.rules, alerts, findings, moment)
        record(store, transitions, fence)
        if transitions and not fence.holds(store):
            raise Deposed(f"lease term {fence.term} was superseded: alerts not recorded")
        for alert in transitions:
            log.info("alert %s %s: %s %s", alert.rule, alert.state, alert.labels, alert.summary)
            note = notification(alert, self.rules.rules)
            if note is not None and self._dispatcher is not None:
                self._dispatcher.dispatch(note)
        firing = sum(1 for a in {**alerts, **{t.fingerprint: t for t in transitions}}.values()
                     if a.state == "firing")  # fmt: skip
        return AlertRound(moment, len(findings), transitions, firing)

    def close(self, timeout: float = 10.0) -> None:
        if self._dispatcher is not None:
            self._dispatcher.close(timeout)


def backtest(
    store: Store, rules: RuleFile, since: datetime, until: datetime, step_by: timedelta
) -> Iterator[tuple[datetime, list[Alert]]]:
    """Replay the rules at every step from `since` to `until`: the transitions of each
    step, as the job would have recorded them (nothing is written or sent)."""
    alerts: dict[str, Alert] = {}
    moment = utc(since)
    while moment <= until:
        findings = evaluate(store, rules.rules, moment)
        transitions = advance(rules.rules, alerts, findings, moment)
        for alert in transitions:
            alerts[alert.fingerprint] = alert
        yield moment, transitions
        moment += step_by
