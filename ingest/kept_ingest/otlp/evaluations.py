"""`gen_ai.evaluation.result` (OpenTelemetry's GenAI evaluation event) as a `score`.

It arrives as a log record or as a span event; either way its attributes name the
evaluation, its score and the response it judges.
"""

from __future__ import annotations

from typing import Any

from kept_ingest.otlp.attributes import Attributes, first, number, text
from kept_wire import otel

EVALUATION_EVENT = "gen_ai.evaluation.result"
DEFAULT_SOURCE = "llm"
"""Evaluations are mostly LLM judges; `kept.score.source` says otherwise (human, code)."""


def score_fields(attrs: Attributes, generation_id: str) -> dict[str, Any]:
    """The score's fields (no event id, no time); `generation_id` when the event names
    no response of its own."""
    return {
        "type": "score",
        "generation_id": text(first(attrs, ("gen_ai.response.id", otel.GENERATION_ID)))
        or generation_id,
        "name": text(attrs.get("gen_ai.evaluation.name")),
        "value": number(attrs.get("gen_ai.evaluation.score.value")),
        "label": text(attrs.get("gen_ai.evaluation.score.label")),
        "comment": text(attrs.get("gen_ai.evaluation.explanation")),
        "source": text(attrs.get("kept.score.source")) or DEFAULT_SOURCE,
        "user_id": text(attrs.get("user.id")),
        "session_id": text(first(attrs, ("session.id", "gen_ai.conversation.id"))),
    }
