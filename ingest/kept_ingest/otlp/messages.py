"""Chat messages as the GenAI conventions carry them, as kept's `input` and `output`.

Three shapes are read, in this order (README, "OpenTelemetry"):
- OpenTelemetry's current `gen_ai.input.messages` / `gen_ai.output.messages` (and
  `gen_ai.system_instructions`): a JSON string on spans, structured values on the
  `gen_ai.client.inference.operation.details` event; each message has `parts`;
- OpenLLMetry's indexed `gen_ai.prompt.N.role|content` / `gen_ai.completion.N.*`;
- OpenInference's `llm.input_messages.N.message.role|content` (or `.contents.M...`)
  and `llm.output_messages.N.message.*`.
A message's text is its text parts joined; other parts (tool calls, their results,
media references) are kept as compact JSON, so nothing the model was given is silently
dropped. The output is the first choice's text.
"""

from __future__ import annotations

import json
from typing import Any

from kept_ingest.otlp.attributes import Attributes, indexed, text

INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
_TEXT_PART_TYPES = ("text", None)


class MalformedMessages(ValueError):
    """An attribute that should hold messages does not (the span is refused, by name)."""


def _structured(attrs: Attributes, key: str) -> list[Any] | None:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise MalformedMessages(f"{key} is not JSON") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise MalformedMessages(f"{key} must be a list of messages")
    return value


def _part_text(part: Any) -> str:
    if isinstance(part, dict) and part.get("type") in _TEXT_PART_TYPES and "content" in part:
        return text(part["content"]) or ""
    return text(part) or ""


def _parts_text(parts: Any) -> str:
    if not isinstance(parts, list):
        return text(parts) or ""
    return "\n".join(_part_text(p) for p in parts)


def _semconv(messages: list[Any]) -> list[dict[str, str]]:
    out = []
    for message in messages:
        if not isinstance(message, dict):
            raise MalformedMessages("a message must be an object with role and parts")
        content = message.get("parts", message.get("content"))
        out.append({"role": str(message.get("role") or "user"), "content": _parts_text(content)})
    return out


def _openllmetry(items: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for item in items:
        content = item.get("content")
        if content is None and any(k.startswith("tool_calls.") for k in item):
            calls = indexed(item, "tool_calls")
            content = text(calls)
        out.append({"role": str(item.get("role") or "user"), "content": text(content) or ""})
    return out


def _openinference(items: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for item in items:
        content = item.get("message.content")
        if content is None:
            parts = indexed(item, "message.contents")
            content = "\n".join(text(p.get("message_content.text")) or text(p) or "" for p in parts)
        if not content and any(k.startswith("message.tool_calls.") for k in item):
            content = text(indexed(item, "message.tool_calls"))  # as _openllmetry does
        role = str(item.get("message.role") or "user")
        out.append({"role": role, "content": text(content) or ""})
    return out


def input_messages(attrs: Attributes) -> list[dict[str, str]] | None:
    """The messages the model was given, or None when no convention carries them."""
    messages = _structured(attrs, INPUT_MESSAGES)
    if messages is not None:
        chat = _semconv(messages)
        system = _structured(attrs, SYSTEM_INSTRUCTIONS)
        if system:
            chat.insert(0, {"role": "system", "content": _parts_text(system)})
        return chat
    if prompts := indexed(attrs, "gen_ai.prompt"):
        return _openllmetry(prompts)
    if inputs := indexed(attrs, "llm.input_messages"):
        return _openinference(inputs)
    return None


def output_text(attrs: Attributes) -> str | None:
    """The text of the first choice, or None when no convention carries it."""
    messages = _structured(attrs, OUTPUT_MESSAGES)
    if messages is not None:
        chat = _semconv(messages)
        return chat[0]["content"] if chat else ""
    if completions := indexed(attrs, "gen_ai.completion"):
        return _openllmetry(completions)[0]["content"]
    if outputs := indexed(attrs, "llm.output_messages"):
        return _openinference(outputs)[0]["content"]
    return None
