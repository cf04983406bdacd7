"""Validated events → column-oriented rows for the two event tables (a pure function)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from kept_ingest import contract, fast_contract
from kept_ingest.fast_contract import AnyEvent

GENERATION_COLUMNS = (
    "project", "ts", "generation_id", "event_id", "received_at", "user_id", "session_id",
    "model", "prompt_version", "input_format", "input", "output_captured", "output",
    "latency_ms", "input_tokens", "output_tokens", "cost_usd", "metadata", "supplement",
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


# Either decoder's events: the same fields under the same names (kept_ingest.fast_contract).
Generation = contract.Generation | fast_contract.Generation
Vote = contract.Vote | fast_contract.Vote
Action = contract.Action | fast_contract.Action
Correction = contract.Correction | fast_contract.Correction
Survival = contract.Survival | fast_contract.Survival
Score = contract.Score | fast_contract.Score


def _input(event: Generation) -> tuple[str, str]:
    if event.input is None:
        return "none", ""
    if isinstance(event.input, str):
        return "text", event.input
    messages = [{"role": m.role, "content": m.content} for m in event.input]
    return "chat", json.dumps(messages, ensure_ascii=False, separators=(",", ":"))


def _owners(events: list[Any], project: str | None) -> list[str]:
    if project is not None:
        return [project] * len(events)
    owners = [e.project for e in events]
    if None in owners:
        raise ValueError("an event without a project reached the row mapper")
    return owners


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """A time as rows carry it: microseconds since the epoch (exact). pyarrow converts an
    aware datetime at 660 ns, an int at 90 (measured): the row makers inline this."""
    return (moment - _EPOCH) // _MICROSECOND


def _ids(event_ids: list[UUID | str]) -> list[str]:
    """Event ids as their canonical text in lower case, as rows carry them (and the
    recent-id window keys them): pydantic gives UUIDs, the fast path the text as written,
    in either case. One join, lower and split for the batch, not a call per id."""
    texts = [i if type(i) is str else str(i) for i in event_ids]
    return "\n".join(texts).lower().split("\n") if texts else []


def _common(events: list[Any], project: str | None) -> dict[str, list[Any]]:
    """The columns both tables have, from the events' shared fields."""
    return {
        "project": _owners(events, project),
        "ts": [(e.ts - _EPOCH) // _MICROSECOND for e in events],
        "generation_id": [e.generation_id for e in events],
        "event_id": _ids([e.event_id for e in events]),
        "user_id": [e.user_id or "" for e in events],
        "session_id": [e.session_id or "" for e in events],
    }


def _generation_columns(events: list[Generation], project: str | None) -> dict[str, list[Any]]:
    columns = _common(events, project)
    inputs = [_input(e) for e in events]
    columns |= {
        "model": [e.model for e in events],
        "prompt_version": [e.prompt_version or "" for e in events],
        "input_format": [i[0] for i in inputs],
        "input": [i[1] for i in inputs],
        "output_captured": [e.output is not None for e in events],
        "output": [e.output or "" for e in events],
        "latency_ms": [e.latency_ms for e in events],
        "input_tokens": [e.input_tokens for e in events],
        "output_tokens": [e.output_tokens for e in events],
        "cost_usd": [e.cost_usd for e in events],
        "metadata": [e.metadata or {} for e in events],
        "supplement": [bool(e.supplement) for e in events],
    }
    return columns


# Each feedback type's own columns, built column by column over that type's events (a
# function call per event cost as much as the rest of the row); the rest take defaults.
_OWN_DEFAULTS: dict[str, Any] = {
    "name": "", "value": None, "text": "", "comment": "", "source": "", "checkpoint_s": 0,
}  # fmt: skip


def _vote(events: list[Vote]) -> dict[str, list[Any]]:
    return {
        "value": [float(e.value) for e in events],
        "comment": [e.comment or "" for e in events],
    }


def _action(events: list[Action]) -> dict[str, list[Any]]:
    values = [e.value for e in events]
    return {
        "name": [e.name for e in events],
        "value": [None if v is None or isinstance(v, str) else float(v) for v in values],
        "text": [v if isinstance(v, str) else "" for v in values],
    }


def _correction(events: list[Correction]) -> dict[str, list[Any]]:
    return {"text": [e.text for e in events]}


def _survival(events: list[Survival]) -> dict[str, list[Any]]:
    return {"value": [e.score for e in events], "checkpoint_s": [e.checkpoint_s for e in events]}


def _score(events: list[Score]) -> dict[str, list[Any]]:
    return {
        "name": [e.name for e in events],
        "value": [e.value for e in events],
        "text": [e.label or "" for e in events],
        "comment": [e.comment or "" for e in events],
        "source": [e.source for e in events],
    }


_FEEDBACK_OWN: dict[str, Callable[[list[Any]], dict[str, list[Any]]]] = {
    "vote": _vote,
    "action": _action,
    "correction": _correction,
    "survival": _survival,
    "score": _score,
}


def _feedback_columns(kind: str, events: list[Any], project: str | None) -> dict[str, list[Any]]:
    columns = _common(events, project)
    columns["type"] = [kind] * len(events)
    own = _FEEDBACK_OWN[kind](events)
    for name, default in _OWN_DEFAULTS.items():
        columns[name] = own.get(name) or [default] * len(events)
    return columns


def to_rows(
    events: Iterable[AnyEvent], received_at: datetime, project: str | None = None
) -> EventRows:
    """Rows for `events`; `project` overrides the events' own (HTTP: the key decides it).

    Built column by column, with no tuple per row: a batch's rows were tens of thousands
    of tuples that the garbage collector walked again and again (measured, a third of
    the row building's CPU), and transposing them cost as much again."""
    by_type: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        by_type[event.type].append(event)
    rows = EventRows()
    generations = by_type.pop("generation", None)
    if generations:
        _fill(rows.generations, _generation_columns(generations, project), micros(received_at))
    for kind, group in by_type.items():  # feedback rows, type by type
        _fill(rows.feedback, _feedback_columns(kind, group, project), micros(received_at))
    return rows


def _fill(columns: Columns, made: dict[str, list[Any]], received_at: int) -> None:
    made["received_at"] = [received_at] * len(made["ts"])
    for name in columns.names:
        columns.data[name].extend(made[name])
