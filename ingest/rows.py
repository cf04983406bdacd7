"""Validated events → column-oriented rows for the two event tables (a pure function)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kept.ingest.contract import (
    Action,
    Correction,
    Event,
    Generation,
    Score,
    Survival,
    Vote,
)

GENERATION_COLUMNS = (
    "project", "ts", "generation_id", "event_id", "received_at", "user_id", "session_id",
    "model", "prompt_version", "input_format", "input", "output_captured", "output",
    "latency_ms", "input_tokens", "output_tokens", "cost_usd", "metadata",
)  # fmt: skip
FEEDBACK_COLUMNS = (
    "project", "ts", "generation_id", "type", "event_id", "received_at", "user_id",
    "session_id", "name", "value", "text", "comment", "source", "checkpoint_s",
)  # fmt: skip


@dataclass
class Columns:
    """Column-oriented rows of one table, ready for `Store.insert_columns`."""

    names: tuple[str, ...]
    data: dict[str, list[Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.data = {n: [] for n in self.names}

    def __len__(self) -> int:
        return len(self.data[self.names[0]])

    def append(self, row: tuple[Any, ...]) -> None:
        for name, value in zip(self.names, row, strict=True):
            self.data[name].append(value)

    def extend(self, other: Columns) -> None:
        for name in self.names:
            self.data[name].extend(other.data[name])

    def keep(self, mask: list[bool]) -> Columns:
        """A copy with only the rows whose mask entry is true."""
        out = Columns(self.names)
        for name in self.names:
            out.data[name] = [v for v, k in zip(self.data[name], mask, strict=True) if k]
        return out


@dataclass
class EventRows:
    """The rows that a batch of events becomes."""

    generations: Columns = field(default_factory=lambda: Columns(GENERATION_COLUMNS))
    feedback: Columns = field(default_factory=lambda: Columns(FEEDBACK_COLUMNS))

    def __len__(self) -> int:
        return len(self.generations) + len(self.feedback)

    def extend(self, other: EventRows) -> None:
        self.generations.extend(other.generations)
        self.feedback.extend(other.feedback)


def _input(event: Generation) -> tuple[str, str]:
    if event.input is None:
        return "none", ""
    if isinstance(event.input, str):
        return "text", event.input
    messages = [{"role": m.role, "content": m.content} for m in event.input]
    return "chat", json.dumps(messages, ensure_ascii=False, separators=(",", ":"))


def _generation_row(e: Generation, project: str, received_at: datetime) -> tuple[Any, ...]:
    input_format, input_text = _input(e)
    return (
        project, e.ts, e.generation_id, e.event_id, received_at, e.user_id or "",
        e.session_id or "", e.model, e.prompt_version or "", input_format, input_text,
        e.output is not None, e.output or "", e.latency_ms, e.input_tokens, e.output_tokens,
        e.cost_usd, e.metadata,
    )  # fmt: skip


def _feedback_row(e: Event, project: str, received_at: datetime) -> tuple[Any, ...]:
    name, value, text, comment, source, checkpoint = "", None, "", "", "", 0
    if isinstance(e, Vote):
        value, comment = float(e.value), e.comment or ""
    elif isinstance(e, Action):
        name = e.name
        if isinstance(e.value, str):
            text = e.value
        elif e.value is not None:
            value = float(e.value)
    elif isinstance(e, Correction):
        text = e.text
    elif isinstance(e, Survival):
        value, checkpoint = e.score, e.checkpoint_s
    elif isinstance(e, Score):
        name, value, source, comment = e.name, e.value, e.source, e.comment or ""
    return (
        project, e.ts, e.generation_id, e.type, e.event_id, received_at, e.user_id or "",
        e.session_id or "", name, value, text, comment, source, checkpoint,
    )  # fmt: skip


def to_rows(
    events: Iterable[Event], received_at: datetime, project: str | None = None
) -> EventRows:
    """Rows for `events`; `project` overrides the events' own (HTTP: the key decides it)."""
    rows = EventRows()
    for event in events:
        owner = project or event.project
        if owner is None:
            raise ValueError("an event without a project reached the row mapper")
        if isinstance(event, Generation):
            rows.generations.append(_generation_row(event, owner, received_at))
        else:
            rows.feedback.append(_feedback_row(event, owner, received_at))
    return rows
