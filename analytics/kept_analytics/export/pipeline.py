"""The export pipeline: select → format (with redaction) → deduplicate → sample → limit →
split, as one stream of records, counting what it skips and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from kept_analytics.export import formats, query, shape
from kept_analytics.export.formats import Example
from kept_analytics.export.spec import ExportSpec
from kept_storage import Store
from kept_wire.redaction import Redactor


@dataclass
class Summary:
    """What an export wrote and skipped, by reason."""

    written: int = 0
    parts: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "parts": dict(sorted(self.parts.items())),
            "skipped": dict(sorted(self.skipped.items())),
        }


def candidates(store: Store, spec: ExportSpec, redact: Redactor) -> Iterator[Example | str]:
    """Formatted examples (or skip reasons) in the order they are read."""
    if spec.format == "openai-chat":
        for gen in query.generations(store, spec, default=query.ENDORSED):
            yield formats.openai_chat(gen, redact)
    elif spec.format == "jsonl":
        for gen in query.generations(store, spec):
            yield formats.jsonl(gen, redact)
    else:
        for gen in query.generations(store, spec, required="o_corrected = 1"):
            yield formats.dpo_correction(gen, redact, spec.dpo_form)
        for group in query.prompt_groups(store, spec):
            yield from formats.dpo_prompt_pairs(group, redact, spec.dpo_form)


def run(
    store: Store, spec: ExportSpec, redact: Redactor, summary: Summary
) -> Generator[tuple[str, dict[str, Any]], None, None]:
    """(part, record) pairs: part is `train` or `validation` (`train` without a split).
    `summary` is updated as records are yielded; closing the generator ends the query."""
    dedup = shape.Deduplicator() if spec.dedup else None
    for item in candidates(store, spec, redact):
        if spec.limit is not None and summary.written >= spec.limit:
            return
        if isinstance(item, str):
            summary.skipped[item] += 1
            continue
        if dedup is not None and not dedup.first(item.prompt, item.target):
            summary.skipped["duplicate"] += 1
            continue
        if not shape.sampled(item.prompt, item.target, spec.sample):
            summary.skipped["not_sampled"] += 1
            continue
        part = "train" if spec.split is None else shape.part(item.prompt, spec.split)
        summary.written += 1
        summary.parts[part] += 1
        yield part, item.record
