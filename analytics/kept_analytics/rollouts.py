"""Rollouts: each prompt version and model in a window against its baseline, with an
always-valid verdict. The built-in page's "rollouts" panel shows them; alert rules with
`baseline: previous` find their baselines here too.

Baselines:
- `previous`: for a prompt version `name@N`, the version of the same prompt (the part
  before the first `@`) first seen just before it in the window; for a model, the model
  first seen just before it. Values first seen in the same hour are ordered by their
  version (numerically when it is a number), then by name.
- `most_used`: the value with the most generations in the window (ties: the first name).
  The default for models, which are not versions of one another: a new model is judged
  against the one carrying most of the traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from kept_analytics.compare import KEY_FILTERS, Comparison, Verdict, compare, empty_group
from kept_analytics.report import ReportSpec, report, rollup_bounds
from kept_analytics.sequential import DEFAULT_ALPHA
from kept_storage import Store, utc
from kept_storage.filters import Filters

BaselineRule = Literal["previous", "most_used"]
Key = Literal["prompt_version", "model"]

RULES: dict[Key, BaselineRule] = {"prompt_version": "previous", "model": "most_used"}
"""The baseline of each kind of rollout on the page."""

_SEVERITY: tuple[Verdict, ...] = (
    "worse",
    "better",
    "no detectable difference",
    "not enough data",
)
"""A rollout's verdict is the first of these any metric has: a regression in one metric
is not hidden by a gain in another."""


@dataclass(frozen=True)
class Seen:
    """A value of the key in the window: when it first had generations, and how many."""

    value: str
    first_seen: datetime
    generations: int


def prompt_name(version: str) -> str:
    """`summarize@3` → `summarize` (a version without `@` is its own prompt)."""
    return version.split("@", 1)[0]


def _version_order(seen: Seen) -> tuple[datetime, float, str]:
    suffix = seen.value.partition("@")[2]
    number = float(suffix) if suffix.isascii() and suffix.isdigit() else math.inf
    return (seen.first_seen, number, seen.value)


def pick_baselines(seen: list[Seen], rule: BaselineRule, key: Key) -> dict[str, str]:
    """candidate → baseline among the values of `key` seen, by `rule`."""
    if rule == "most_used":
        if not seen:
            return {}
        top = min(seen, key=lambda s: (-s.generations, s.value)).value
        return {s.value: top for s in seen if s.value != top}
    pairs: dict[str, str] = {}
    latest: dict[str, str] = {}
    for s in sorted(seen, key=_version_order):
        if not s.value:
            continue  # generations logged without a prompt version
        name = prompt_name(s.value) if key == "prompt_version" else ""
        if name in latest:
            pairs[s.value] = latest[name]
        latest[name] = s.value
    return pairs


def seen_values(store: Store, spec: ReportSpec, key: Key) -> list[Seen]:
    """Every value of `key` with generations in the spec's window: its first hour and its
    generations, in one small query (the rollup, or the outcome rows when `report` would
    read them: metadata filters)."""
    if spec.uses_rollup():
        since, until = rollup_bounds(spec)
        table, column, sql_type, generations = (
            "outcomes_hourly",
            "hour",
            "DateTime('UTC')",
            ("sum(generations)"),
        )
    else:
        since, until = spec.since, spec.until
        table, column, sql_type, generations = (
            "outcomes",
            "gen_ts",
            "DateTime64(3, 'UTC')",
            ("sum(sign)"),
        )
    filters = Filters().window(column, since, until, sql_type).scope(spec)
    rows = store.rows(
        f"SELECT {key}, min(toStartOfHour({column})), {generations} FROM {table} "
        f"WHERE {filters.where()} GROUP BY {key} HAVING {generations} > 0 ORDER BY {key}",
        filters.params,
    )
    return [Seen(str(value), utc(first), int(n)) for value, first, n in rows]


def baselines(store: Store, spec: ReportSpec, key: Key, rule: BaselineRule) -> dict[str, str]:
    """candidate → baseline for the values of `key` in the spec's window. The spec's filter
    on `key` itself is ignored (a baseline is any other value); the others apply."""
    return pick_baselines(seen_values(store, _widened(spec, key), key), rule, key)


class Rollout(BaseModel):
    """A candidate against its baseline: the verdict and the metric behind it."""

    key: Key
    candidate: str
    baseline: str
    rule: BaselineRule
    verdict: Verdict
    evidence: Comparison
    comparisons: list[Comparison]


def _widened(spec: ReportSpec, key: Key) -> ReportSpec:
    return spec.model_copy(update={KEY_FILTERS[key]: ()})


def judge(comparisons: list[Comparison]) -> tuple[Verdict, Comparison]:
    """The verdict of a rollout and its evidence: the first metric with the most severe
    verdict (metrics in order: acceptance first)."""
    for severity in _SEVERITY:
        for c in comparisons:
            if c.verdict == severity:
                return severity, c
    raise ValueError("no comparisons")


def _groups(store: Store, spec: ReportSpec, key: Key) -> dict[str, dict[str, Any]]:
    return {str(g[key]): g for g in report(store, spec.model_copy(update={"by": (key,)}))}


def rollouts(store: Store, spec: ReportSpec, *, alpha: float = DEFAULT_ALPHA) -> list[Rollout]:
    """Every prompt version and model in the window against its baseline, most severe
    verdict first. A filter on prompt versions (models) keeps the rollouts of those
    candidates; the other filters narrow what is compared."""
    result = []
    for key, rule in RULES.items():
        wide = _widened(spec, key)
        pairs = pick_baselines(seen_values(store, wide, key), rule, key)
        wanted = getattr(spec, KEY_FILTERS[key])
        groups = _groups(store, wide, key) if pairs else {}
        for candidate, baseline in pairs.items():
            if wanted and candidate not in wanted:
                continue
            a = groups.get(baseline, empty_group(key, baseline, spec.checkpoints))
            b = groups.get(candidate, empty_group(key, candidate, spec.checkpoints))
            comparisons = compare(a, b, spec.checkpoints, sequential=True, alpha=alpha)
            verdict, evidence = judge(comparisons)
            result.append(
                Rollout(
                    key=key,
                    candidate=candidate,
                    baseline=baseline,
                    rule=rule,
                    verdict=verdict,
                    evidence=evidence,
                    comparisons=comparisons,
                )
            )
    order = {key: i for i, key in enumerate(RULES)}
    result.sort(key=lambda r: (_SEVERITY.index(r.verdict), order[r.key], r.candidate))
    return result
