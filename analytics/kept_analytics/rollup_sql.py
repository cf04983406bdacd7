"""The rollup path's query: whole UTC days from the rollup's daily projection, the hours at
the window's edges from its hourly rows, merged in one statement.

Merging the hourly t-digests was most of a report over many days (measured at 10M
generations, 30 days by model, prompt version and day: 150 of 188 ms); the `by_day`
projection of `outcomes_hourly` (migration 0008) holds one merged state per day, which
ClickHouse reads in place of the day's hours whenever a query filters and groups by what
the projection has. Each part of the window is one branch of a UNION ALL that keeps its
aggregates as states; the outer query merges them, so every group gets the same numbers
as from the hours alone. Parts not yet in the projection (right after the migration) are
read from their rows: slower, never different.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from kept_storage import utc
from kept_storage.filters import Filters, Scope

TABLE = "outcomes_hourly"

ROLLUP_PARTS = (
    ("sum(generations)", "sum"),
    ("sum(accepted)", "sum"),
    ("sum(votes_up)", "sum"),
    ("sum(votes_down)", "sum"),
    ("sum(corrected)", "sum"),
    ("sum(similarity_sum)", "sum"),
    ("sum(similarity_n)", "sum"),
    ("sumMap(survival_hist)", "sumMap"),
    ("sumMap(actions)", "sumMap"),
    ("sum(cost_usd_total)", "sum"),
    ("sum(output_tokens_total)", "sum"),
    ("quantilesTDigestMergeState(0.5, 0.95)(latency)", "quantilesTDigestMerge(0.5, 0.95)"),
)
"""Each rollup aggregate as (within a branch, across the branches). The first ones are the
`by_day` projection's aggregates word for word: ClickHouse reads a projection only for the
aggregates it stores (tests/analytics/test_rollup_days.py checks that it does)."""

SETTINGS = {"optimize_time_filter_with_preimage": 0}
"""Settings of the query: ClickHouse would otherwise rewrite the days' `toDate(hour)`
bounds into bounds on `hour`, which the projection does not have, and read every hour."""

_HOUR = "DateTime('UTC')"


def windows(since: datetime, until: datetime) -> list[tuple[str, date, date, str]]:
    """`[since, until)` (whole hours) as (time expression, from, to, SQL type) parts: the
    whole UTC days by their date, the hours before and after them by the hour."""
    since, until = utc(since), utc(until)  # days of the rollup's `hour`: UTC days
    first = datetime.combine(since.date(), time(), timezone.utc)
    if first < since:
        first += timedelta(days=1)
    last = datetime.combine(until.date(), time(), timezone.utc)
    if first >= last:
        return [("hour", since, until, _HOUR)]
    parts: list[tuple[str, date, date, str]] = [("toDate(hour)", first.date(), last.date(), "Date")]
    if since < first:
        parts.insert(0, ("hour", since, first, _HOUR))
    if last < until:
        parts.append(("hour", last, until, _HOUR))
    return parts


def rollup_sql(
    keys: list[tuple[str, str]], scope: Scope, since: datetime, until: datetime
) -> tuple[str, dict[str, Any]]:
    """The query and its parameters: one row per group of `keys` (name, SQL expression over
    the rollup's columns), the group's values, then the aggregates of ROLLUP_PARTS."""
    names = [f"k{i}" for i in range(len(keys))]
    selected = [f"{expr} AS {name}" for name, (_, expr) in zip(names, keys, strict=True)]
    inner = [f"{aggregate} AS a{i}" for i, (aggregate, _) in enumerate(ROLLUP_PARTS)]
    outer = [f"{merge}(a{i})" for i, (_, merge) in enumerate(ROLLUP_PARTS)]
    group = f" GROUP BY {', '.join(names)}" if names else ""
    branches: list[str] = []
    params: dict[str, Any] = {}
    for i, (column, start, end, sql_type) in enumerate(windows(since, until)):
        filters = Filters().window(column, start, end, sql_type, prefix=f"w{i}_").scope(scope)
        branches.append(
            f"SELECT {', '.join([*selected, *inner])} FROM {TABLE} WHERE {filters.where()}{group}"
        )
        params.update(filters.params)
    order = f" ORDER BY {', '.join(names)}" if names else ""
    sql = (
        f"SELECT {', '.join([*names, *outer])} FROM ({' UNION ALL '.join(branches)}){group}{order}"
    )
    return sql, params
