"""Training formats: a generation (or a prompt's liked and disliked outputs) → records.

- `openai-chat`: `{"messages": [...]}` as OpenAI's chat fine-tuning and TRL's SFTTrainer
  (conversational form) read it: the input messages (a text input becomes one user
  message; a logged system message stays) and an assistant turn with the correction
  when there is one, else the output.
- `dpo`: `{"prompt", "chosen", "rejected"}` as TRL's DPOTrainer reads it, conversational
  (message lists) by default, or standard (plain strings; chat inputs are skipped).
- `jsonl`: TRL's conversational prompt-completion form (`prompt`, `completion`) plus the
  generation's ids, labels and every feedback signal, for your own filtering.
Each function gets the redaction hook and applies it to every text it emits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from kept_analytics.export.query import PAIRS_PER_PROMPT, Generation, PromptGroup

Redact = Callable[[str], str]
Message = dict[str, str]


@dataclass(frozen=True)
class Example:
    """A record to write, with the prompt and target it is deduplicated and split by."""

    record: dict[str, Any]
    prompt: Any
    target: Any


def messages(input_format: str, text: str, redact: Redact) -> list[Message] | None:
    """The input as chat messages, or None when the generation was logged without one."""
    if input_format == "chat":
        return [
            {"role": str(m["role"]), "content": redact(str(m["content"]))} for m in json.loads(text)
        ]
    if input_format == "text":
        return [{"role": "user", "content": redact(text)}]
    return None


def target(gen: Generation) -> str | None:
    """What the assistant should have said: the latest correction, else the output."""
    if gen.corrected and gen.correction:
        return gen.correction
    if gen.output_captured and gen.output:
        return gen.output
    return None


def openai_chat(gen: Generation, redact: Redact) -> Example | str:
    """An SFT example, or the reason for skipping the generation."""
    prompt = messages(gen.input_format, gen.input, redact)
    if prompt is None:
        return "no_input"
    text = target(gen)
    if text is None:
        return "no_output"
    answer = redact(text)
    return Example(
        {"messages": [*prompt, {"role": "assistant", "content": answer}]}, prompt, answer
    )


def _utc(moment: datetime) -> datetime:
    """Naive UTC (the store's DateTime64(3, 'UTC') may come back naive or aware)."""
    return moment if moment.tzinfo is None else moment.astimezone(timezone.utc).replace(tzinfo=None)


def jsonl(gen: Generation, redact: Redact) -> Example | str:
    """The prompt, the target and the feedback of one generation."""
    prompt = messages(gen.input_format, gen.input, redact)
    if prompt is None:
        return "no_input"
    text = target(gen)
    if text is None:
        return "no_output"
    completion = redact(text)
    record = {
        "generation_id": gen.generation_id,
        "project": gen.project,
        "ts": _utc(gen.ts).isoformat(timespec="milliseconds") + "Z",
        "model": gen.model,
        "prompt_version": gen.prompt_version,
        "metadata": {k: redact(v) for k, v in sorted(gen.metadata.items())},
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": completion}],
        "output": redact(gen.output) if gen.output_captured else None,
        "correction": redact(gen.correction) if gen.corrected else None,
        "accepted": gen.accepted,
        "vote": gen.vote or None,
        "corrected": gen.corrected,
        "survival": {str(k): v for k, v in sorted(gen.survival.items())},
        "scores": dict(sorted(gen.scores.items())),
        "actions": sorted(set(gen.actions)),
    }
    return Example(record, prompt, completion)


DpoForm = Literal["conversational", "standard"]


def _dpo(prompt: list[Message], chosen: str, rejected: str, form: DpoForm) -> Example | str:
    if form == "conversational":
        record: dict[str, Any] = {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
    elif len(prompt) == 1 and prompt[0]["role"] == "user":
        record = {"prompt": prompt[0]["content"], "chosen": chosen, "rejected": rejected}
    else:
        return "chat_input_in_standard_form"
    return Example(record, prompt, (chosen, rejected))


def dpo_correction(gen: Generation, redact: Redact, form: DpoForm) -> Example | str:
    """A preference pair: the user's correction over the model's output."""
    prompt = messages(gen.input_format, gen.input, redact)
    if prompt is None:
        return "no_input"
    if not (gen.output_captured and gen.output):
        return "no_output"
    if not gen.correction:
        return "not_corrected"
    chosen, rejected = redact(gen.correction), redact(gen.output)
    if chosen == rejected:
        return "correction_unchanged"
    return _dpo(prompt, chosen, rejected, form)


def dpo_prompt_pairs(group: PromptGroup, redact: Redact, form: DpoForm) -> Iterator[Example | str]:
    """Pairs of a liked and a disliked output of the same prompt (at most
    PAIRS_PER_PROMPT per prompt, so one popular prompt cannot dominate the set)."""
    prompt = messages(group.input_format, group.input, redact)
    if prompt is None:
        return
    made = 0
    for chosen in group.chosen:
        for rejected in group.rejected:
            if chosen == rejected:
                continue
            if made == PAIRS_PER_PROMPT:
                return
            made += 1
            yield _dpo(prompt, redact(chosen), redact(rejected), form)
