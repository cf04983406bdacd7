"""Panel data for the built-in page: the spec's SQL with typed parameters, and service
health read from the server's own Prometheus registry."""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from typing import Any

from prometheus_client import CollectorRegistry

from kept_dashboards.catalog import QUALITY
from kept_dashboards.filters import VARIABLES
from kept_dashboards.macros import Window, parameters, typed_sql
from kept_dashboards.spec import ALL, Panel, Variable, layout
from kept_storage import Store
from kept_wire.contract import MAX_NAME_CHARS
from kept_wire.timespec import parse_instant

MAX_VALUE_LEN = MAX_NAME_CHARS
"""No name is longer, and the "All" sentinel is: a request can only name a value."""


class BadWindow(ValueError):
    """A time range or filter value the page cannot use."""


def window(query: dict[str, str], project: str | None = None) -> Window:
    """The window of a request's `from`, `to` and variables; `project` (a project key's)
    confines it to that project."""
    now = datetime.now(timezone.utc)
    try:
        start = parse_instant(query.get("from") or "now-24h", now)
        end = parse_instant(query.get("to") or "now", now)
    except ValueError as exc:
        raise BadWindow(str(exc)) from None
    if end <= start:
        raise BadWindow("`from` must be before `to`")
    values: dict[str, str] = {}
    for name in VARIABLES:
        value = query.get(name) or ""
        if len(value) > MAX_VALUE_LEN:
            raise BadWindow(f"{name} is longer than {MAX_VALUE_LEN} characters")
        values[name] = value or ALL
    if project is not None:
        values["project"] = project
    return Window(start, end, values, tenant=project)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.replace(tzinfo=value.tzinfo or timezone.utc).timestamp() * 1000)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_sql(store: Store, sql: str, win: Window) -> list[list[Any]]:
    """Rows of a spec query, times as epoch milliseconds."""
    rows = store.rows(typed_sql(sql), parameters(win))
    return [[_json_value(v) for v in row] for row in rows]


def _samples(registry: CollectorRegistry, name: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for metric in registry.collect()
        for s in metric.samples
        if s.name.startswith(name)
    ]


def _p95(samples: list[tuple[str, dict[str, str], float]]) -> float | None:
    buckets = sorted(
        (float(labels["le"]), value) for name, labels, value in samples if name.endswith("_bucket")
    )
    if not buckets or buckets[-1][1] <= 0:
        return None
    wanted = 0.95 * buckets[-1][1]
    return next(bound for bound, count in buckets if count >= wanted)


def local_metric(registry: CollectorRegistry, panel: Panel) -> dict[str, Any]:
    """A health panel's current value: counters as totals (the page derives rates)."""
    samples = _samples(registry, panel.local)
    if panel.local.endswith("_seconds"):
        return {"kind": "gauge", "value": _p95(samples)}
    kind = "counter" if panel.local.endswith("_total") else "gauge"
    value = sum(v for name, _, v in samples if name == panel.local)
    return {"kind": kind, "value": value}


def panel_data(store: Store, registry: CollectorRegistry, panel: Panel, win: Window) -> Any:
    """`{"columns": [...], "rows": [[...]]}` for SQL panels, `{"kind", "value"}` for health."""
    if panel.source == "prometheus":
        return {"columns": list(panel.columns), **local_metric(registry, panel)}
    return {"columns": list(panel.columns), "rows": run_sql(store, panel.sql, win)}


def variable_values(store: Store, variable: Variable, win: Window) -> list[str]:
    """The values a filter offers in the window (under the other filters); a project
    key's window offers its own project only."""
    values = [str(row[0]) for row in run_sql(store, variable.sql, win)]
    if variable.name == "project" and win.tenant is not None:
        # The project variable lists projects under the *other* filters, so the forced
        # project filter does not narrow it: narrow it here.
        return [v for v in values if v == win.tenant]
    return values


ROLLOUTS_ID = "rollouts"
ROLLOUT_COLUMNS = ("key", "candidate", "baseline", "verdict", "metric", "better", "difference",
                   "low", "high", "n", "baseline_n")  # fmt: skip
"""One row per rollout: what is compared, the verdict, and the metric behind it with its
always-valid interval of candidate - baseline and the denominators of both."""
ROLLOUTS_PANEL: dict[str, Any] = {
    "id": ROLLOUTS_ID,
    "title": "Rollouts: each prompt version and model against its baseline",
    "description": (
        "A prompt version against the version of the same prompt first seen before it; a "
        "model against the most used model. Verdicts come from always-valid 95% confidence "
        "sequences over acceptance, votes, corrections and kept rates (family-wise), "
        "right however often the page refreshes."
    ),
    "viz": "rollouts",
    "columns": list(ROLLOUT_COLUMNS),
    "unit": "percentunit",
    "decimals": 1,
    "min": None,
    "max": None,
    "source": "analytics",
    "w": 24,
    "h": 8,
    "thresholds": [],
    "empty": "No prompt version or model with a baseline to compare with in this range.",
}
"""The rollouts panel: computed by the analytics layer (no SQL of its own), so it is on
this page and not in Grafana."""


ALERTS_ID = "alerts"
ALERT_COLUMNS = ("at", "state", "severity", "rule", "group", "summary")
"""One row per alert active now (pending or firing), then the transitions of the range,
newest first: what the analytics lease holder recorded."""
ALERTS_PANEL: dict[str, Any] = {
    "id": ALERTS_ID,
    "title": "Alerts: active now, then what happened in the range",
    "description": (
        "The alert rules (KEPT_ALERT_RULES) as the analytics lease holder evaluated them: "
        "alerts pending or firing now, then every transition of the range with its summary."
    ),
    "viz": "table",
    "columns": list(ALERT_COLUMNS),
    "unit": "short",
    "decimals": 0,
    "min": None,
    "max": None,
    "source": "analytics",
    "w": 24,
    "h": 6,
    "thresholds": [],
    "empty": "No alert active or recorded in this range (or no rules: KEPT_ALERT_RULES).",
}


def page_spec() -> dict[str, Any]:
    """What the page needs to lay out and format the panels (no SQL)."""
    positions = layout(QUALITY)
    rows = []
    for row in QUALITY.rows:
        panels = []
        for p in row.panels:
            _, _, w, h = positions[p.id]
            panels.append(
                {
                    "id": p.id,
                    "title": p.title,
                    "description": p.description,
                    "viz": p.viz,
                    "columns": list(p.columns),
                    "unit": p.unit,
                    "decimals": p.decimals,
                    "min": p.min,
                    "max": p.max,
                    "source": p.source,
                    "w": w,
                    "h": h,
                    "thresholds": [{"value": t.value, "color": t.color} for t in p.thresholds],
                }
            )
        rows.append({"title": row.title, "panels": panels})
    # Rollouts right after the headline: what changed, and whether it hurt.
    rows.insert(1, {"title": "Rollouts", "panels": [ROLLOUTS_PANEL]})
    rows.insert(2, {"title": "Alerts", "panels": [ALERTS_PANEL]})
    variables = [{"name": v.name, "label": v.label} for v in QUALITY.variables]
    return {"uid": QUALITY.uid, "title": QUALITY.title, "rows": rows, "variables": variables}
