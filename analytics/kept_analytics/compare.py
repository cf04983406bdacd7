"""Compare two groups (prompt versions, models): differences with 95% intervals and a
verdict, so a regression after a prompt or model change is visible with its evidence."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from kept_analytics.metrics import GroupCounts, finalize
from kept_analytics.report import ReportSpec, report
from kept_analytics.stats import newcombe_difference
from kept_storage import Store

Verdict = Literal["better", "worse", "no detectable difference", "not enough data"]


class Comparison(BaseModel):
    """One metric of B against A (difference = B - A; higher is better for all of them)."""

    metric: str
    a: float | None
    b: float | None
    a_n: int
    b_n: int
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: Verdict


def _proportions(group: dict[str, Any], checkpoints: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """metric → (successes, trials) for every proportion compared."""
    pairs = {
        "acceptance_rate": (group["accepted"], group["generations"]),
        "vote_score": (group["votes_up"], group["votes_up"] + group["votes_down"]),
    }
    for t in checkpoints:
        pairs[f"kept_rate[{t}]"] = (group["kept"][str(t)], group["survival_measured"][str(t)])
    return pairs


def compare(a: dict[str, Any], b: dict[str, Any], checkpoints: tuple[int, ...]) -> list[Comparison]:
    """B relative to A for acceptance rate, vote score and kept rate at each checkpoint.

    `a` and `b` are report groups (see `kept_analytics.report`)."""
    result = []
    pa, pb = _proportions(a, checkpoints), _proportions(b, checkpoints)
    for metric, (sa, na) in pa.items():
        sb, nb = pb[metric]
        difference = low = high = None
        verdict: Verdict = "not enough data"
        if na and nb:
            interval = newcombe_difference(sa, na, sb, nb)
            difference, low, high = sb / nb - sa / na, interval.low, interval.high
            verdict = "better" if low > 0 else "worse" if high < 0 else "no detectable difference"
        result.append(
            Comparison(
                metric=metric,
                a=sa / na if na else None,
                b=sb / nb if nb else None,
                a_n=na,
                b_n=nb,
                difference=difference,
                ci_low=low,
                ci_high=high,
                verdict=verdict,
            )
        )
    return result


class CompareResult(BaseModel):
    """`kept compare` and `GET /v1/compare`: both groups and the comparisons."""

    key: str
    a: str
    b: str
    a_group: dict[str, Any]
    b_group: dict[str, Any]
    comparisons: list[Comparison]


_FILTERS = {"model": "models", "prompt_version": "prompt_versions"}


def compare_groups(store: Store, spec: ReportSpec, key: str, a: str, b: str) -> CompareResult:
    """Report both values of `key` over the spec's window and compare B against A."""
    if key not in _FILTERS:
        raise ValueError(f"compare by {', '.join(_FILTERS)}, not {key!r}")
    narrowed = spec.model_copy(update={"by": (key,), _FILTERS[key]: (a, b)})
    groups = {g[key]: g for g in report(store, narrowed)}
    empty = finalize(GroupCounts(), spec.checkpoints)
    a_group, b_group = groups.get(a, {key: a} | empty), groups.get(b, {key: b} | empty)
    comparisons = compare(a_group, b_group, spec.checkpoints)
    return CompareResult(
        key=key, a=a, b=b, a_group=a_group, b_group=b_group, comparisons=comparisons
    )
