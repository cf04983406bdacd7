"""The spec → Grafana dashboard JSON (ClickHouse plugin + Prometheus), stable and sorted."""

from __future__ import annotations

import json
from typing import Any

from kept_dashboards.spec import ALL, Dashboard, Panel, Variable, layout

CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "kept-clickhouse"}
PROMETHEUS = {"type": "prometheus", "uid": "kept-prometheus"}
SCHEMA_VERSION = 41
# The ClickHouse plugin's query formats (v4): 0 time series, 1 table.
_FORMAT = {"timeseries": 0, "stat": 1, "barchart": 1, "table": 1, "heatmap": 1}


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": {
            "mode": "absolute",
            "steps": [{"value": t.value, "color": t.color} for t in panel.thresholds],
        },
        "color": {"mode": "thresholds" if panel.viz == "stat" else "palette-classic"},
    }
    for key, value in (("decimals", panel.decimals), ("min", panel.min), ("max", panel.max)):
        if value is not None:
            defaults[key] = value
    if panel.viz == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 2,
            "fillOpacity": 10,
            "showPoints": "auto",
            "spanNulls": True,
        }
    return {"defaults": defaults, "overrides": []}


def _options(panel: Panel) -> dict[str, Any]:
    if panel.viz == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "value",
        }
    if panel.viz == "barchart":
        return {
            "orientation": "horizontal",
            "xField": panel.columns[0],
            "showValue": "auto",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        }
    if panel.viz == "table":
        return {"showHeader": True, "cellHeight": "sm"}
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _target(panel: Panel) -> dict[str, Any]:
    if panel.source == "prometheus":
        return {
            "datasource": PROMETHEUS,
            "expr": panel.promql,
            "legendFormat": panel.legend,
            "range": True,
            "refId": "A",
        }
    return {
        "datasource": CLICKHOUSE,
        "editorType": "sql",
        "format": _FORMAT[panel.viz],
        "queryType": "timeseries" if panel.viz == "timeseries" else "table",
        "rawSql": panel.sql,
        "refId": "A",
    }


def panel_json(panel: Panel, panel_id: int, pos: tuple[int, int, int, int]) -> dict[str, Any]:
    """One Grafana panel."""
    x, y, w, h = pos
    return {
        "id": panel_id,
        "type": panel.viz,
        "title": panel.title,
        "description": panel.description,
        "datasource": PROMETHEUS if panel.source == "prometheus" else CLICKHOUSE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [_target(panel)],
        "fieldConfig": _field_config(panel),
        "options": _options(panel),
    }


def variable_json(variable: Variable) -> dict[str, Any]:
    """A query variable on the ClickHouse datasource with an "All" option."""
    return {
        "type": "query",
        "name": variable.name,
        "label": variable.label,
        "datasource": CLICKHOUSE,
        "query": variable.sql,
        "definition": variable.sql,
        "includeAll": True,
        "allValue": ALL,
        "multi": False,
        "refresh": 2,
        "sort": 1,
        "current": {"text": "All", "value": "$__all"},
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    """The whole dashboard; panel ids follow the spec's order, so they are stable."""
    positions = layout(dashboard)
    panels: list[dict[str, Any]] = []
    next_id = 1
    for row in dashboard.rows:
        x, y, w, h = positions[f"row:{row.title}"]
        panels.append(
            {
                "type": "row",
                "id": next_id,
                "title": row.title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"x": x, "y": y, "w": w, "h": h},
            }
        )
        next_id += 1
        for panel in row.panels:
            panels.append(panel_json(panel, next_id, positions[panel.id]))
            next_id += 1
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "editable": True,
        "graphTooltip": 1,
        "timezone": "utc",
        "time": {"from": dashboard.time_from, "to": "now"},
        "refresh": dashboard.refresh,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "panels": panels,
        "templating": {"list": [variable_json(v) for v in dashboard.variables]},
        "annotations": {"list": []},
        "links": [],
    }


def dumps(document: Any) -> str:
    """Stable text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
