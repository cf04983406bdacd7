"""Reports: the metrics (README, "Metrics") per group, from the rollup or the outcome rows.

Two paths compute the same counts:
- the hourly rollup (`outcomes_hourly`): fast, cost grows with the hours at the window's
  edges and its whole days (rollup_sql.py) × models × prompt versions. The window is
  widened to whole UTC hours.
- the outcome rows (`outcomes`, sign-weighted): exact to the millisecond, any kept
  threshold, grouping and filtering by metadata. Used when asked (`exact`) or needed.
Group keys come from an allow-list; metadata keys and every filter value travel as typed
query parameters, never as SQL text.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kept_analytics.metrics import GroupCounts, finalize
from kept_analytics.rollup_sql import SETTINGS as ROLLUP_SETTINGS
from kept_analytics.rollup_sql import rollup_sql
from kept_storage import Store, utc
from kept_storage.filters import Filters
from kept_wire.contract import KEPT_THRESHOLD_DEFAULT, SURVIVAL_CHECKPOINTS_DEFAULT

DEFAULT_CHECKPOINTS = SURVIVAL_CHECKPOINTS_DEFAULT
_BUCKETS = 20  # survival histogram buckets of width 0.05 in the rollup
_METADATA_KEY = re.compile(r"^metadata\.([A-Za-z0-9_.:-]{1,128})$")
_PLAIN_KEYS = ("project", "model", "prompt_version", "day", "hour")


class ReportSpec(BaseModel):
    """What to report on: the window, the grouping, the filters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: datetime
    until: datetime
    by: tuple[str, ...] = ()
    project: str | None = None
    models: tuple[str, ...] = ()
    prompt_versions: tuple[str, ...] = ()
    metadata: dict[str, str] = Field(default_factory=dict)
    threshold: float = Field(KEPT_THRESHOLD_DEFAULT, ge=0.0, le=1.0)
    checkpoints: tuple[int, ...] = DEFAULT_CHECKPOINTS
    exact: bool = False

    @field_validator("by")
    @classmethod
    def _known_keys(cls, by: tuple[str, ...]) -> tuple[str, ...]:
        for key in by:
            if key not in _PLAIN_KEYS and not _METADATA_KEY.match(key):
                raise ValueError(
                    f"cannot group by {key!r}: use {', '.join(_PLAIN_KEYS)} or metadata.KEY"
                )
        if len(set(by)) != len(by):
            raise ValueError("a group key is repeated")
        return by

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value

    def uses_rollup(self) -> bool:
        """The rollup answers unless metadata is involved, the threshold is off its grid,
        or exact bounds were asked for."""
        on_grid = abs(self.threshold * _BUCKETS - round(self.threshold * _BUCKETS)) < 1e-9
        return not (self.exact or self.metadata or not on_grid or any(
            k.startswith("metadata.") for k in self.by
        ))  # fmt: skip


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def rollup_bounds(spec: ReportSpec) -> tuple[datetime, datetime]:
    """The window the rollup answers for `spec`: widened to whole UTC hours."""
    return _hour_floor(spec.since), _hour_ceil(spec.until)


def _hour_ceil(moment: datetime) -> datetime:
    floor = _hour_floor(moment)
    return floor if floor == moment else floor + timedelta(hours=1)


class _Query:
    """The group keys (output name, SQL expression) and the filters of one report query."""

    def __init__(
        self, spec: ReportSpec, time_column: str, since: datetime, until: datetime, time_type: str
    ) -> None:
        self.filters = Filters().window(time_column, since, until, time_type).scope(spec)
        self.keys: list[tuple[str, str]] = []
        hour = time_column if time_column == "hour" else f"toStartOfHour({time_column})"
        plain = {
            "project": "project",
            "model": "model",
            "prompt_version": "prompt_version",
            "day": f"toDate({time_column})",
            "hour": hour,
        }
        for i, key in enumerate(spec.by):
            if key in plain:
                self.keys.append((key, plain[key]))
            else:
                self.keys.append((key, f"metadata[{{mk{i}:String}}]"))
                self.filters.params[f"mk{i}"] = key.removeprefix("metadata.")

    @property
    def params(self) -> dict[str, Any]:
        return self.filters.params

    def sql(self, table: str, aggregates: str) -> str:
        keys = ", ".join(f"{expr} AS k{i}" for i, (_, expr) in enumerate(self.keys))
        group = ", ".join(f"k{i}" for i in range(len(self.keys)))
        return (
            f"SELECT {keys + ', ' if keys else ''}{aggregates} FROM {table} "
            f"WHERE {self.filters.where()}"
            + (f" GROUP BY {group} ORDER BY {group}" if group else "")
        )


_EXACT_AGGREGATES = """
    sum(sign), sum(sign * accepted), sum(sign * (vote = 1)), sum(sign * (vote = -1)),
    sum(sign * corrected), sum(sign * ifNull(correction_similarity, 0)),
    sum(sign * isNotNull(correction_similarity)),
    sumMap(CAST(mapFromArrays(mapKeys(survival),
        arrayMap(s -> toInt64(sign * accepted), mapValues(survival))), 'Map(UInt32, Int64)')),
    sumMap(CAST(mapFromArrays(mapKeys(survival),
        arrayMap(s -> toInt64(sign * accepted * (s >= {threshold:Float64})), mapValues(survival))),
        'Map(UInt32, Int64)')),
    sumMap(CAST(mapFromArrays(arrayMap(a -> toString(a), actions),
        arrayMap(a -> toInt64(sign), actions)), 'Map(String, Int64)')),
    sum(sign * ifNull(cost_usd, 0)), sum(sign * ifNull(output_tokens, 0)),
    quantilesTDigestIf(0.5, 0.95)(assumeNotNull(latency_ms), sign = 1 AND isNotNull(latency_ms)
        AND (project, generation_id, version) NOT IN (
            SELECT project, generation_id, version FROM outcomes WHERE sign = -1 AND {window}))
"""
"""The latencies are those of live rows: +1 rows whose version has no cancel row yet. (Not
the rows marked is_first: a merge collapses a generation's first version with its cancel;
and not sign-weighted like the sums: a t-digest cannot take a row out again.)"""


def _key_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _latency(quantiles: list[float], measured: bool) -> tuple[float | None, float | None]:
    if not measured or not quantiles:
        return None, None
    return float(quantiles[0]), float(quantiles[1])


def _from_rollup_row(row: tuple[Any, ...], threshold: float) -> tuple[GroupCounts, bool]:
    gens, acc, up, down, corr, sim_sum, sim_n, hist, actions, cost, tokens, lat = row
    measured: dict[int, int] = {}
    kept: dict[int, int] = {}
    first_kept_bucket = round(threshold * _BUCKETS)
    for key, n in hist.items():
        checkpoint, bucket = divmod(int(key), 100)
        measured[checkpoint] = measured.get(checkpoint, 0) + int(n)
        if bucket >= first_kept_bucket:
            kept[checkpoint] = kept.get(checkpoint, 0) + int(n)
    counts = GroupCounts(
        int(gens), int(acc), int(up), int(down), int(corr), float(sim_sum), int(sim_n),
        measured, kept, {str(k): int(v) for k, v in actions.items()}, float(cost), int(tokens),
    )  # fmt: skip
    return counts, _has_latency(lat)


def _has_latency(quantiles: list[float]) -> bool:
    # An empty t-digest reports NaN.
    return bool(quantiles) and all(q == q for q in quantiles)


def _from_exact_row(row: tuple[Any, ...]) -> tuple[GroupCounts, bool]:
    gens, acc, up, down, corr, sim_sum, sim_n, measured, kept, actions, cost, tokens, lat = row
    counts = GroupCounts(
        int(gens), int(acc), int(up), int(down), int(corr), float(sim_sum), int(sim_n),
        {int(k): int(v) for k, v in measured.items()}, {int(k): int(v) for k, v in kept.items()},
        {str(k): int(v) for k, v in actions.items()}, float(cost), int(tokens),
    )  # fmt: skip
    return counts, _has_latency(lat)


def report(store: Store, spec: ReportSpec) -> list[dict[str, Any]]:
    """One object per group: the group's keys, then every metric (README, "Metrics")."""
    if spec.uses_rollup():
        since, until = rollup_bounds(spec)
        query = _Query(spec, "hour", since, until, "DateTime('UTC')")
        sql, params = rollup_sql(query.keys, spec, since, until)
        rows = store.rows(sql, params, settings=ROLLUP_SETTINGS)
        parse = [(_from_rollup_row(r[len(query.keys) :], spec.threshold), r) for r in rows]
    else:
        query = _Query(spec, "gen_ts", spec.since, spec.until, "DateTime64(3, 'UTC')")
        query.params["threshold"] = spec.threshold
        aggregates = _EXACT_AGGREGATES.replace("{window}", query.filters.where())
        rows = store.rows(query.sql("outcomes", aggregates), query.params)
        parse = [(_from_exact_row(r[len(query.keys) :]), r) for r in rows]
    groups = []
    for (counts, has_latency), row in parse:
        if counts.generations <= 0:
            continue
        counts.latency_ms_p50, counts.latency_ms_p95 = _latency(list(row[-1]), has_latency)
        keys = {name: _key_value(row[i]) for i, (name, _) in enumerate(query.keys)}
        groups.append(keys | finalize(counts, spec.checkpoints))
    return groups
