"""The input of a generation as the event contract stores it: a prompt string, or
``{role, content}`` messages with string content.

Text parts of a multi-part content are joined by newlines, other parts
(images, tool calls) are left out, and an item without a role (a Responses API
``function_call_output``) takes its ``type`` as role.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kept.arguments import Message

from .responses import as_name, as_text, field, parts_text

_MAX_ROLE_CHARS = 32  # the contract's limit on a message's role


def as_input(value: object) -> str | list[Message] | None:
    """``value`` as a generation's input: a string or ``{role, content}`` string messages."""
    if isinstance(value, str) or value is None:
        return value
    if not isinstance(value, (list, tuple)):
        return None
    try:
        # The usual case needs no copying of the messages themselves.
        if all(
            type(m) is dict
            and len(m) == 2
            and type(m.get("role")) is str
            and type(m.get("content")) is str
            for m in value
        ):
            return list(value)
        return [_message(m) for m in value]
    except Exception:
        return None


def _message(item: object) -> Message:
    if isinstance(item, str):
        return {"role": "user", "content": item}
    role = as_name(field(item, "role")) or as_name(field(item, "type")) or "user"
    content = field(item, "content")
    if not isinstance(content, str):
        content = parts_text(content, "\n")
        if content is None:
            content = as_text(field(item, "output")) or ""  # a function call's output
    return {"role": role[:_MAX_ROLE_CHARS], "content": content}


def call_input(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | list[Message] | None:
    """The input of a call: see :func:`~kept.integrations.observe`."""
    for key in ("messages", "input", "prompt"):
        value = kwargs.get(key)
        if isinstance(value, (str, list, tuple)):
            return as_input(value)
    for value in args:
        if isinstance(value, (list, tuple)) and value and _is_message(value[0]):
            return as_input(value)
    for value in args:
        if isinstance(value, str):
            return value
    return None


def _is_message(item: object) -> bool:
    return field(item, "role") is not None or field(item, "type") is not None


def with_system(system: object, input: str | list[Message] | None) -> str | list[Message] | None:
    if input is None or system is None:
        return input
    text = system if isinstance(system, str) else parts_text(system, "\n")
    if not text:
        return input
    messages = [{"role": "user", "content": input}] if isinstance(input, str) else input
    return [{"role": "system", "content": text}, *messages]
