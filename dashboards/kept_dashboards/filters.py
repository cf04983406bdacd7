"""SQL fragments every panel shares: the variable filters and the rollup's time window."""

from __future__ import annotations

from kept_dashboards.spec import ALL

VARIABLES = ("project", "model", "prompt_version")


def var_filter(name: str) -> str:
    """`column = ${name}` unless the variable is "All"."""
    return f"('${{{name}}}' = '{ALL}' OR {name} = '${{{name}}}')"


FILTERS = " AND ".join(var_filter(name) for name in VARIABLES)
"""Project, model and prompt version, as chosen on the dashboard."""

ROLLUP_WINDOW = "hour >= toStartOfHour($__fromTime) AND hour <= $__toTime"
"""The hours of the time range in `outcomes_hourly` (whole hours: the rollup's grain)."""

ROLLUP_WHERE = f"{ROLLUP_WINDOW} AND {FILTERS}"
