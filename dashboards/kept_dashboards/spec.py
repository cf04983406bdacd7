"""The vocabulary of the panel spec: panels, their queries, variables, thresholds.

A panel's SQL is written once, in the Grafana ClickHouse plugin's dialect (`$__timeFilter`,
`$__fromTime`, `$__toTime`, `$__timeInterval`, `'${project}'`...); `macros.py` expands it
for Grafana-compatible checks and, with typed parameters, for the built-in page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kept_wire.contract import MAX_NAME_CHARS

Viz = Literal["timeseries", "stat", "barchart", "table", "heatmap"]
Source = Literal["clickhouse", "prometheus"]

ALL = "__all__".ljust(MAX_NAME_CHARS + 1, "_")
"""The value of a variable that means "no filter" (Grafana's custom "All" value). Longer
than any project, model or prompt version can be, so no name is mistaken for it."""


@dataclass(frozen=True)
class Threshold:
    """From `value` up, the panel shows `color` (the first step has value None)."""

    value: float | None
    color: str


@dataclass(frozen=True)
class Panel:
    """One panel, declared once.

    `columns` are what the query returns and the visualisation reads, in order:
    - timeseries: `time`, then optionally a `series` column (string), then value columns;
    - stat: one value column;
    - barchart: a label column, then value columns;
    - table: any columns.
    Prometheus panels carry `promql` (Grafana) and `local` (the sample the built-in page
    reads from the server's own registry) instead of `sql`.
    """

    id: str
    title: str
    description: str
    viz: Viz
    columns: tuple[str, ...]
    sql: str = ""
    promql: str = ""
    legend: str = ""
    local: str = ""
    unit: str = "short"
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    thresholds: tuple[Threshold, ...] = (Threshold(None, "green"),)
    width: int = 8
    height: int = 8

    @property
    def source(self) -> Source:
        return "prometheus" if self.promql else "clickhouse"


@dataclass(frozen=True)
class Variable:
    """A dashboard filter; `sql` lists its values within the time range."""

    name: str
    label: str
    sql: str


@dataclass(frozen=True)
class Row:
    """A titled group of panels, laid out left to right in rows of 24 grid units."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: stable uid, title, variables and rows of panels."""

    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    tags: tuple[str, ...] = ("kept",)
    time_from: str = "now-24h"
    refresh: str = "30s"

    @property
    def panels(self) -> tuple[Panel, ...]:
        return tuple(p for row in self.rows for p in row.panels)


def layout(dashboard: Dashboard) -> dict[str, tuple[int, int, int, int]]:
    """Panel id → (x, y, w, h), and each row title's y as `row:<title>`."""
    positions: dict[str, tuple[int, int, int, int]] = {}
    y = 0
    for row in dashboard.rows:
        positions[f"row:{row.title}"] = (0, y, 24, 1)
        y += 1
        x, line_height = 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, line_height = 0, y + line_height, 0
            positions[panel.id] = (x, y, panel.width, panel.height)
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return positions
