"""The kept dashboard: every panel and variable, declared once."""

from __future__ import annotations

from kept_dashboards import filters, health, quality, usage
from kept_dashboards.filters import ROLLUP_WINDOW, variable_filters
from kept_dashboards.spec import Dashboard, Panel, Row, Variable


def _values(column: str) -> str:
    # Each variable lists the values seen in the range under the *other* filters.
    return f"""SELECT DISTINCT {column} AS value FROM outcomes_hourly
WHERE {ROLLUP_WINDOW} AND {variable_filters(excluding=column)}
ORDER BY value"""


_LABELS = {"project": "Project", "model": "Model", "prompt_version": "Prompt version"}
VARIABLES = tuple(Variable(name, _LABELS[name], _values(name)) for name in filters.VARIABLES)

QUALITY = Dashboard(
    uid="kept-quality",
    title="kept — quality",
    description="Did users keep what the model wrote? Acceptance, survival, votes, corrections.",
    variables=VARIABLES,
    rows=(
        Row(
            "Headline",
            (
                usage.TOTAL,
                quality.ACCEPTANCE,
                quality.VOTE_SCORE,
                quality.CORRECTION_RATE,
                quality.CORRECTION_SIMILARITY,
            ),
        ),
        Row("Acceptance", (quality.ACCEPTANCE_BY_PROMPT, quality.ACCEPTANCE_BY_MODEL)),
        Row("Behaviour", (quality.SURVIVAL, quality.TOP_ACTIONS, quality.REGENERATE)),
        Row("Usage", (usage.VOLUME, usage.LATENCY, usage.COST)),
        Row("Prompt versions", (quality.WORST_PROMPTS,)),
        Row("Service health", health.PANELS),
    ),
)

DASHBOARDS = (QUALITY,)


def panel(panel_id: str) -> Panel | None:
    """The panel with this id, in any dashboard."""
    for dashboard in DASHBOARDS:
        for candidate in dashboard.panels:
            if candidate.id == panel_id:
                return candidate
    return None


def variable(name: str) -> Variable | None:
    """The variable with this name."""
    return next((v for v in VARIABLES if v.name == name), None)
