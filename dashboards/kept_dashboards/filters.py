"""SQL fragments every panel shares: the variable filters and the rollup's time window.

They are in the Grafana ClickHouse plugin's dialect (`'${project}'`, `$__fromTime`), not
kept_storage's filter builder: Grafana expands them itself, and `macros.typed_sql` turns
them into typed parameters for the built-in page.
"""

from __future__ import annotations

from kept_dashboards.spec import ALL

VARIABLES = ("project", "model", "prompt_version")


def var_filter(name: str) -> str:
    """`column = ${name}` unless the variable is "All"."""
    return f"('${{{name}}}' = '{ALL}' OR {name} = '${{{name}}}')"


def variable_filters(excluding: str | None = None) -> str:
    """The variables' filters, all of them or all but one."""
    return " AND ".join(var_filter(name) for name in VARIABLES if name != excluding)


FILTERS = variable_filters()
"""Project, model and prompt version, as chosen on the dashboard."""

ROLLUP_WINDOW = "hour >= toStartOfHour($__fromTime, 'UTC') AND hour <= $__toTime"
"""The hours of the time range in `outcomes_hourly` (whole hours: the rollup's grain)."""

ROLLUP_WHERE = f"{ROLLUP_WINDOW} AND {FILTERS}"
