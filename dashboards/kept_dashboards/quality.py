"""Quality panels: acceptance, survival, votes, corrections, implicit actions."""

from __future__ import annotations

from kept_dashboards.filters import FILTERS, ROLLUP_WHERE
from kept_dashboards.spec import Panel, Threshold

RATE_STEPS = (Threshold(None, "red"), Threshold(0.3, "orange"), Threshold(0.5, "green"))
LOW_IS_GOOD = (Threshold(None, "green"), Threshold(0.1, "orange"), Threshold(0.2, "red"))


def _stat(expression: str) -> str:
    return f"SELECT {expression} AS value FROM outcomes_hourly WHERE {ROLLUP_WHERE}"


def _headline(
    panel_id: str,
    title: str,
    description: str,
    ratio: str,
    thresholds: tuple[Threshold, ...] = RATE_STEPS,
) -> Panel:
    """A ratio over the whole range, as a percentage in the headline row."""
    return Panel(
        id=panel_id,
        title=title,
        description=description,
        viz="stat",
        columns=("value",),
        sql=_stat(ratio),
        unit="percentunit",
        decimals=1,
        thresholds=thresholds,
        width=5,
        height=5,
    )


def _acceptance_by(key: str, title: str, description: str) -> Panel:
    """Hourly acceptance rate, one series per value of `key`."""
    return Panel(
        id=f"acceptance_by_{key}",
        title=title,
        description=description,
        viz="timeseries",
        columns=("time", "series", "acceptance_rate"),
        sql=f"""SELECT $__timeInterval(hour) AS time, {key} AS series,
    sum(accepted) / nullIf(sum(generations), 0) AS acceptance_rate
FROM outcomes_hourly
WHERE {ROLLUP_WHERE}
GROUP BY time, series
ORDER BY time, series""",
        unit="percentunit",
        min=0,
        max=1,
        width=12,
    )


ACCEPTANCE = _headline(
    "acceptance_rate",
    "Acceptance rate",
    "Generations with an accept or copy action, over all generations in the range.",
    "sum(accepted) / nullIf(sum(generations), 0)",
)
VOTE_SCORE = _headline(
    "vote_score",
    "Vote score",
    "Thumbs up over all votes (the latest vote of each generation).",
    "sum(votes_up) / nullIf(sum(votes_up) + sum(votes_down), 0)",
)
CORRECTION_RATE = _headline(
    "correction_rate",
    "Correction rate",
    "Generations the user corrected (edited text reported), over all generations.",
    "sum(corrected) / nullIf(sum(generations), 0)",
    LOW_IS_GOOD,
)
CORRECTION_SIMILARITY = _headline(
    "correction_similarity",
    "Correction similarity",
    "How much of the output survived correction: 1 - normalised edit distance.",
    "sum(similarity_sum) / nullIf(sum(similarity_n), 0)",
)

ACCEPTANCE_BY_PROMPT = _acceptance_by(
    "prompt_version",
    "Acceptance rate by prompt version",
    "Hourly acceptance rate per prompt version: a bad prompt change shows here.",
)
ACCEPTANCE_BY_MODEL = _acceptance_by(
    "model", "Acceptance rate by model", "Hourly acceptance rate per model."
)

# Histogram keys are checkpoint * 100 + score bucket of 0.05: buckets 10..20 are
# scores of at least 0.5, the default kept threshold.
SURVIVAL = Panel(
    id="survival_curve",
    title="Kept rate after accept",
    description="Accepted output still present (similarity ≥ 0.5) 30 s to 15 min later.",
    viz="barchart",
    columns=("checkpoint", "kept_rate"),
    sql=f"""SELECT multiIf(c < 60, concat(toString(c), ' s'), concat(toString(intDiv(c, 60)),
    ' min')) AS checkpoint, kept_rate
FROM (
    SELECT intDiv(k, 100) AS c, sumIf(v, k % 100 >= 10) / nullIf(sum(v), 0) AS kept_rate
    FROM (SELECT sumMap(survival_hist) AS h FROM outcomes_hourly WHERE {ROLLUP_WHERE})
    ARRAY JOIN mapKeys(h) AS k, mapValues(h) AS v
    GROUP BY c
)
ORDER BY c""",
    unit="percentunit",
    min=0,
    max=1,
)

TOP_ACTIONS = Panel(
    id="top_actions",
    title="Top implicit actions",
    description="Share of generations with each action (accept, copy, regenerate, ...).",
    viz="barchart",
    columns=("action", "rate"),
    sql=f"""SELECT a AS action, n / nullIf(g, 0) AS rate
FROM (
    SELECT sumMap(actions) AS m, sum(generations) AS g
    FROM outcomes_hourly WHERE {ROLLUP_WHERE}
)
ARRAY JOIN mapKeys(m) AS a, mapValues(m) AS n
WHERE n > 0
ORDER BY rate DESC, action
LIMIT 8""",
    unit="percentunit",
)

REGENERATE = Panel(
    id="regenerate_rate",
    title="Regenerate rate",
    description="Generations the user asked to regenerate: a rejection signal.",
    viz="timeseries",
    columns=("time", "regenerate_rate"),
    sql=f"""SELECT $__timeInterval(hour) AS time,
    sum(actions['regenerate']) / nullIf(sum(generations), 0) AS regenerate_rate
FROM outcomes_hourly
WHERE {ROLLUP_WHERE}
GROUP BY time
ORDER BY time""",
    unit="percentunit",
    min=0,
    thresholds=LOW_IS_GOOD,
)

WORST_PROMPTS = Panel(
    id="worst_prompt_versions",
    title="Worst prompt versions this week",
    description="Lowest acceptance over the 7 days up to the end of the range (≥ 20 generations).",
    viz="table",
    columns=("prompt_version", "generations", "acceptance_rate", "vote_score", "correction_rate"),
    sql=f"""SELECT prompt_version, sum(outcomes_hourly.generations) AS generations,
    sum(accepted) / nullIf(generations, 0) AS acceptance_rate,
    sum(votes_up) / nullIf(sum(votes_up) + sum(votes_down), 0) AS vote_score,
    sum(corrected) / nullIf(generations, 0) AS correction_rate
FROM outcomes_hourly
WHERE hour >= toStartOfHour($__toTime - INTERVAL 7 DAY, 'UTC') AND hour <= $__toTime AND {FILTERS}
GROUP BY prompt_version
HAVING generations >= 20
ORDER BY acceptance_rate, prompt_version
LIMIT 10""",
    unit="percentunit",
    decimals=1,
    width=24,
)
