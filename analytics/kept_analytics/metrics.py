"""Counts per group → the metrics of README "Metrics". Pure Python; rates with an empty
denominator are None (null in JSON), never 0."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class GroupCounts:
    """Everything the metrics of one group are computed from."""

    generations: int = 0
    accepted: int = 0
    votes_up: int = 0
    votes_down: int = 0
    corrected: int = 0
    similarity_sum: float = 0.0
    similarity_n: int = 0
    survival_measured: dict[int, int] = field(default_factory=dict)
    """Accepted generations with a survival score at checkpoint T."""
    survival_kept: dict[int, int] = field(default_factory=dict)
    """... of which the score is at least the kept threshold."""
    actions: dict[str, int] = field(default_factory=dict)
    cost_usd_total: float = 0.0
    output_tokens_total: int = 0
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None


def rate(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def finalize(counts: GroupCounts, checkpoints: tuple[int, ...]) -> dict[str, Any]:
    """The metric object of one group (checkpoint keys are strings, as in JSON)."""
    c = counts
    measured = {t: c.survival_measured.get(t, 0) for t in checkpoints}
    kept = {t: c.survival_kept.get(t, 0) for t in checkpoints}
    actions = {name: n for name, n in sorted(c.actions.items()) if n}
    return {
        "generations": c.generations,
        "accepted": c.accepted,
        "acceptance_rate": rate(c.accepted, c.generations),
        "survival_measured": {str(t): measured[t] for t in checkpoints},
        "kept": {str(t): kept[t] for t in checkpoints},
        "kept_rate": {str(t): rate(kept[t], measured[t]) for t in checkpoints},
        "kept_of_shown": {str(t): rate(kept[t], c.generations) for t in checkpoints},
        "votes_up": c.votes_up,
        "votes_down": c.votes_down,
        "vote_score": rate(c.votes_up, c.votes_up + c.votes_down),
        "corrected": c.corrected,
        "correction_rate": rate(c.corrected, c.generations),
        "correction_similarity": rate(c.similarity_sum, c.similarity_n),
        "action_counts": actions,
        "action_rates": {name: rate(n, c.generations) for name, n in actions.items()},
        "latency_ms_p50": c.latency_ms_p50,
        "latency_ms_p95": c.latency_ms_p95,
        "cost_usd_total": round(c.cost_usd_total, 10),
        "output_tokens_total": c.output_tokens_total,
    }
