"""The fine-tuning export's records as both sides see them: the formats, and which of a
record's strings are text a person or the model wrote (redacted) and which are names.

Standard library only: the server redacts records with `redact_record` before they leave
the store, and `kept export` applies a custom hook to records a remote server sent.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from kept_wire.redaction import Redactor

Format = Literal["openai-chat", "dpo", "jsonl"]
FORMATS: tuple[Format, ...] = get_args(Format)

NOT_TEXT = frozenset(
    {"role", "generation_id", "project", "ts", "model", "prompt_version", "actions"}
)
"""Record fields that hold identifiers or names, never redacted."""

_FREE_TEXT_MAPS = frozenset({"metadata"})
"""Maps whose values are all text, whatever their keys are called (`metadata.model`)."""


def _walk(value: Any, redact: Redactor, field: str) -> Any:
    if isinstance(value, str):
        return value if field in NOT_TEXT else redact(value)
    if isinstance(value, list):
        return [_walk(v, redact, field) for v in value]
    if isinstance(value, dict):
        if field in _FREE_TEXT_MAPS:
            return {k: _walk(v, redact, "") for k, v in value.items()}
        return {k: _walk(v, redact, k) for k, v in value.items()}
    return value


def redact_record(record: dict[str, Any], redact: Redactor) -> dict[str, Any]:
    """The record with `redact` applied to every text: message contents, outputs,
    corrections, metadata values; not to roles, ids, names, actions or map keys."""
    return {k: _walk(v, redact, k) for k, v in record.items()}
