"""Compare two groups (prompt versions, models): differences with intervals and a verdict,
so a regression after a prompt or model change is visible with its evidence.

Two methods:
- `fixed` (default): Newcombe's interval per metric (`stats`), right for one look at a
  sample size chosen in advance, each metric on its own.
- `sequential`: always-valid confidence sequences (`sequential`), right however often the
  comparison is looked at, with the family-wise error over the metrics held at alpha.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from kept_analytics.metrics import GroupCounts, finalize
from kept_analytics.report import ReportSpec, report
from kept_analytics.sequential import DEFAULT_ALPHA, family_alpha, sequential_difference
from kept_analytics.stats import newcombe_difference, z_for
from kept_storage import Store

Verdict = Literal["better", "worse", "no detectable difference", "not enough data"]
Method = Literal["fixed", "sequential"]
Better = Literal["higher", "lower"]

BETTER: dict[str, Better] = {
    "acceptance_rate": "higher",
    "vote_score": "higher",
    "correction_rate": "lower",
    "kept_rate": "higher",
}
"""Which way is good, for every metric compared (`kept_rate[T]` is `kept_rate`'s)."""


def better(metric: str) -> Better:
    """The good direction of a compared metric."""
    return BETTER[metric.split("[", 1)[0]]


def verdict(low: float | None, high: float | None, direction: Better) -> Verdict:
    """B against A from an interval of B - A that excludes 0 (or not)."""
    if low is None or high is None:
        return "not enough data"
    if low <= 0 <= high:
        return "no detectable difference"
    return "better" if (low > 0) == (direction == "higher") else "worse"


class Comparison(BaseModel):
    """One metric of B against A (difference = B - A)."""

    metric: str
    better: Better = Field(description="`higher` or `lower`: which way is good for this metric")
    a: float | None
    b: float | None
    a_n: int = Field(description="A's denominator (generations, votes or survival checks)")
    b_n: int
    difference: float | None = Field(description="B - A; null while an arm has no data")
    ci_low: float | None = Field(
        description="Lower end of B - A: the fixed interval, or the always-valid one"
    )
    ci_high: float | None
    verdict: Verdict = Field(description="From the interval and `better`")


def proportions(group: dict[str, Any], checkpoints: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """metric → (successes, trials) for every proportion compared."""
    pairs = {
        "acceptance_rate": (group["accepted"], group["generations"]),
        "vote_score": (group["votes_up"], group["votes_up"] + group["votes_down"]),
        "correction_rate": (group["corrected"], group["generations"]),
    }
    for t in checkpoints:
        pairs[f"kept_rate[{t}]"] = (group["kept"][str(t)], group["survival_measured"][str(t)])
    return pairs


def metric_alpha(method: Method, alpha: float, checkpoints: tuple[int, ...]) -> float:
    """Each metric's alpha: the whole of it for a fixed interval, a Bonferroni share of it
    over every metric compared for the always-valid ones."""
    if method == "fixed":
        return alpha
    compared = proportions(finalize(GroupCounts(), checkpoints), checkpoints)
    return family_alpha(alpha, len(compared))


def _interval(
    method: Method, alpha: float, sa: int, na: int, sb: int, nb: int
) -> tuple[float | None, float | None]:
    if method == "sequential":
        sequence = sequential_difference(sa, na, sb, nb, alpha)
        return sequence.low, sequence.high
    if not (na and nb):
        return None, None
    interval = newcombe_difference(sa, na, sb, nb, z_for(alpha))
    return interval.low, interval.high


def compare(
    a: dict[str, Any],
    b: dict[str, Any],
    checkpoints: tuple[int, ...],
    *,
    sequential: bool = False,
    alpha: float = DEFAULT_ALPHA,
) -> list[Comparison]:
    """B relative to A for acceptance rate, vote score, correction rate and the kept rate
    at each checkpoint; `a` and `b` are report groups (see `kept_analytics.report`)."""
    method: Method = "sequential" if sequential else "fixed"
    level = metric_alpha(method, alpha, checkpoints)
    result = []
    pb = proportions(b, checkpoints)
    for metric, (sa, na) in proportions(a, checkpoints).items():
        sb, nb = pb[metric]
        low, high = _interval(method, level, sa, na, sb, nb)
        direction = better(metric)
        result.append(
            Comparison(
                metric=metric,
                better=direction,
                a=sa / na if na else None,
                b=sb / nb if nb else None,
                a_n=na,
                b_n=nb,
                difference=sb / nb - sa / na if na and nb else None,
                ci_low=low,
                ci_high=high,
                verdict=verdict(low, high, direction),
            )
        )
    return result


class CompareResult(BaseModel):
    """`kept compare` and `GET /v1/compare`: both groups and the comparisons."""

    key: str
    a: str
    b: str
    method: Method = Field(
        description="`fixed`: Newcombe intervals, valid for one look; `sequential`: "
        "always-valid confidence sequences, valid however often they are looked at"
    )
    alpha: float = Field(
        description="Error rate asked for: per metric (fixed), or over all metrics (sequential)"
    )
    metric_alpha: float = Field(
        description="Each metric's interval level is 1 - metric_alpha (sequential: alpha "
        "split evenly over the metrics compared, Bonferroni)"
    )
    a_group: dict[str, Any]
    b_group: dict[str, Any]
    comparisons: list[Comparison]


KEY_FILTERS = {"model": "models", "prompt_version": "prompt_versions"}
"""What groups can be compared by, and the spec's filter on each."""


def empty_group(key: str, value: str, checkpoints: tuple[int, ...]) -> dict[str, Any]:
    """The report group of a value with no generations in the window."""
    return {key: value} | finalize(GroupCounts(), checkpoints)


def compare_groups(
    store: Store,
    spec: ReportSpec,
    key: str,
    a: str,
    b: str,
    *,
    sequential: bool = False,
    alpha: float = DEFAULT_ALPHA,
) -> CompareResult:
    """Report both values of `key` over the spec's window and compare B against A."""
    if key not in KEY_FILTERS:
        raise ValueError(f"compare by {', '.join(KEY_FILTERS)}, not {key!r}")
    narrowed = spec.model_copy(update={"by": (key,), KEY_FILTERS[key]: (a, b)})
    groups = {g[key]: g for g in report(store, narrowed)}
    a_group = groups.get(a, empty_group(key, a, spec.checkpoints))
    b_group = groups.get(b, empty_group(key, b, spec.checkpoints))
    method: Method = "sequential" if sequential else "fixed"
    return CompareResult(
        key=key,
        a=a,
        b=b,
        method=method,
        alpha=alpha,
        metric_alpha=metric_alpha(method, alpha, spec.checkpoints),
        a_group=a_group,
        b_group=b_group,
        comparisons=compare(a_group, b_group, spec.checkpoints, sequential=sequential, alpha=alpha),
    )
