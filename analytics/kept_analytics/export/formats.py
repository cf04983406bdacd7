"""Training formats: a generation (or a prompt's liked and disliked outputs) → records.

- `openai-chat`: `{"messages": [...]}` as OpenAI's chat fine-tuning and TRL's SFTTrainer
  (conversational form) read it: the input messages (a text input becomes one user
  message; a logged system message stays) and an assistant turn with the correction
  when there is one, else the output.
- `dpo`: `{"prompt", "chosen", "rejected"}` as TRL's DPOTrainer reads it, conversational
  (message lists) by default, or standard (plain strings; chat inputs are skipped).
- `jsonl`: TRL's conversational prompt-completion form (`prompt`, `completion`) plus the
  generation's ids, labels and every feedback signal, for your own filtering.
Each function builds a record from the stored text and redacts it with the walker of
`kept_wire.export`, the same one `kept export` applies to records from a remote server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from kept_analytics.export.query import PAIRS_PER_PROMPT, Generation, PromptGroup
from kept_wire.export import redact_record
from kept_wire.redaction import Redactor

Message = dict[str, str]


@dataclass(frozen=True)
class Example:
    """A record to write, with the prompt and target it is deduplicated and split by."""

    record: dict[str, Any]
    prompt: Any
    target: Any


def messages(input_format: str, text: str) -> list[Message] | None:
    """The input as chat messages, or None when the generation was logged without one."""
    if input_format == "chat":
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in json.loads(text)]
    if input_format == "text":
        return [{"role": "user", "content": text}]
    return None


def _assistant(text: str) -> list[Message]:
    return [{"role": "assistant", "content": text}]


def target(gen: Generation) -> str | None:
    """What the assistant should have said: the latest correction, else the output."""
    if gen.corrected and gen.correction:
        return gen.correction
    if gen.output_captured and gen.output:
        return gen.output
    return None


def _prompt_and_target(gen: Generation) -> tuple[list[Message], str] | str:
    """The input messages and the target, or the reason for skipping the generation."""
    prompt = messages(gen.input_format, gen.input)
    if prompt is None:
        return "no_input"
    text = target(gen)
    if text is None:
        return "no_output"
    return prompt, text


def openai_chat(gen: Generation, redact: Redactor) -> Example | str:
    """An SFT example, or the reason for skipping the generation."""
    found = _prompt_and_target(gen)
    if isinstance(found, str):
        return found
    prompt, text = found
    record = redact_record({"messages": [*prompt, *_assistant(text)]}, redact)
    return Example(record, record["messages"][:-1], record["messages"][-1]["content"])


def _utc(moment: datetime) -> datetime:
    """Naive UTC (the store's DateTime64(3, 'UTC') may come back naive or aware)."""
    return moment if moment.tzinfo is None else moment.astimezone(timezone.utc).replace(tzinfo=None)


def jsonl(gen: Generation, redact: Redactor) -> Example | str:
    """The prompt, the target and the feedback of one generation."""
    found = _prompt_and_target(gen)
    if isinstance(found, str):
        return found
    prompt, text = found
    record = redact_record(
        {
            "generation_id": gen.generation_id,
            "project": gen.project,
            "ts": _utc(gen.ts).isoformat(timespec="milliseconds") + "Z",
            "model": gen.model,
            "prompt_version": gen.prompt_version,
            "metadata": dict(sorted(gen.metadata.items())),
            "prompt": prompt,
            "completion": _assistant(text),
            "output": gen.output if gen.output_captured else None,
            "correction": gen.correction if gen.corrected else None,
            "accepted": gen.accepted,
            "vote": gen.vote or None,
            "corrected": gen.corrected,
            "survival": {str(k): v for k, v in sorted(gen.survival.items())},
            "scores": dict(sorted(gen.scores.items())),
            "actions": sorted(set(gen.actions)),
        },
        redact,
    )
    return Example(record, record["prompt"], record["completion"][0]["content"])


DpoForm = Literal["conversational", "standard"]


def _pair(prompt: list[Message], chosen: str, rejected: str, redact: Redactor) -> dict[str, Any]:
    """A conversational preference record, redacted."""
    record = {"prompt": prompt, "chosen": _assistant(chosen), "rejected": _assistant(rejected)}
    return redact_record(record, redact)


def _dpo(record: dict[str, Any], form: DpoForm) -> Example | str:
    """The example in the asked form (standard: plain strings, for a lone user message)."""
    prompt: list[Message] = record["prompt"]
    chosen, rejected = record["chosen"][0]["content"], record["rejected"][0]["content"]
    if form == "standard":
        if len(prompt) != 1 or prompt[0]["role"] != "user":
            return "chat_input_in_standard_form"
        record = {"prompt": prompt[0]["content"], "chosen": chosen, "rejected": rejected}
    return Example(record, prompt, (chosen, rejected))


def dpo_correction(gen: Generation, redact: Redactor, form: DpoForm) -> Example | str:
    """A preference pair: the user's correction over the model's output."""
    prompt = messages(gen.input_format, gen.input)
    if prompt is None:
        return "no_input"
    if not (gen.output_captured and gen.output):
        return "no_output"
    if not gen.correction:
        return "not_corrected"
    record = _pair(prompt, gen.correction, gen.output, redact)
    if record["chosen"] == record["rejected"]:
        return "correction_unchanged"
    return _dpo(record, form)


def dpo_prompt_pairs(
    group: PromptGroup, redact: Redactor, form: DpoForm
) -> Iterator[Example | str]:
    """Pairs of a liked and a disliked output of the same prompt (at most
    PAIRS_PER_PROMPT per prompt, so one popular prompt cannot dominate the set)."""
    prompt = messages(group.input_format, group.input)
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
            yield _dpo(_pair(prompt, chosen, rejected, redact), form)
