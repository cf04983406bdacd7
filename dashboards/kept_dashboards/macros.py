"""The Grafana ClickHouse plugin's macros and `${var}` variables, expanded two ways.

- `grafana_sql`: literally, the way the plugin (v4) and Grafana expand them, so tests can
  run a panel's SQL exactly as Grafana would send it.
- `typed_sql`: into typed query parameters, for the built-in page: user input never
  becomes SQL text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kept_dashboards.filters import VARIABLES
from kept_dashboards.spec import ALL

_TIME_FILTER = re.compile(r"\$__timeFilter\(([A-Za-z_][A-Za-z0-9_.]*)\)")
_TIME_INTERVAL = re.compile(r"\$__timeInterval\(([A-Za-z_][A-Za-z0-9_.]*)\)")
_VARIABLE = re.compile(r"\$\{(?:" + "|".join(VARIABLES) + r")\}")
_NICE_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


class UnknownMacro(ValueError):
    """A panel uses a macro or variable that neither expansion knows."""


@dataclass(frozen=True)
class Window:
    """The dashboard's time range and the filter values (ALL for no filter)."""

    start: datetime
    end: datetime
    values: dict[str, str]
    interval_s: int = 0
    tenant: str | None = None
    """The one project a project key reads (None: any); `values["project"]` is then it."""

    @property
    def step_s(self) -> int:
        """Grafana-like bucket width: about 120 points over the range, on a nice step."""
        if self.interval_s:
            return self.interval_s
        wanted = (self.end - self.start).total_seconds() / 120
        return next((s for s in _NICE_STEPS if s >= wanted), _NICE_STEPS[-1])


def _epoch_s(moment: datetime) -> int:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return math.floor(moment.timestamp())


def _check(sql: str) -> str:
    if "$" in sql:
        raise UnknownMacro(f"unexpanded macro or variable in: {sql[sql.index('$') :][:40]}")
    return sql


def grafana_sql(sql: str, window: Window) -> str:
    """The SQL Grafana sends: macros as the plugin writes them, variables as plain text."""
    start, end = _epoch_s(window.start), _epoch_s(window.end)
    out = _TIME_FILTER.sub(
        lambda m: f"{m[1]} >= toDateTime({start}) AND {m[1]} <= toDateTime({end})", sql
    )
    out = _TIME_INTERVAL.sub(
        lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {window.step_s} second)", out
    )
    out = out.replace("$__fromTime", f"toDateTime({start})")
    out = out.replace("$__toTime", f"toDateTime({end})")
    out = out.replace("$__interval_s", str(window.step_s))
    # Checked before the values go in: a value may hold a `$` (a model named `$__all`).
    _check(_VARIABLE.sub("", out))
    for name in VARIABLES:
        out = out.replace(f"${{{name}}}", window.values.get(name, ALL))
    return out


def typed_sql(sql: str) -> str:
    """The same SQL with `{name:Type}` parameters in place of every macro and variable."""
    out = _TIME_FILTER.sub(
        lambda m: (
            f"{m[1]} >= toDateTime({{__from:DateTime64(3, 'UTC')}}) "
            f"AND {m[1]} <= toDateTime({{__to:DateTime64(3, 'UTC')}})"
        ),
        sql,
    )
    out = _TIME_INTERVAL.sub(
        lambda m: (
            f"toStartOfInterval(toDateTime({m[1]}), toIntervalSecond({{__interval_s:UInt32}}))"
        ),
        out,
    )
    out = out.replace("$__fromTime", "toDateTime({__from:DateTime64(3, 'UTC')})")
    out = out.replace("$__toTime", "toDateTime({__to:DateTime64(3, 'UTC')})")
    out = out.replace("$__interval_s", "{__interval_s:UInt32}")
    for name in VARIABLES:
        out = out.replace(f"'${{{name}}}'", f"{{{name}:String}}")
    return _check(out)


def parameters(window: Window) -> dict[str, Any]:
    """The parameters `typed_sql` refers to."""
    params: dict[str, Any] = {
        "__from": window.start,
        "__to": window.end,
        "__interval_s": window.step_s,
    }
    for name in VARIABLES:
        params[name] = window.values.get(name) or ALL
    return params
