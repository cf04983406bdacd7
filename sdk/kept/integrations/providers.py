"""Logging a response the app already has: OpenAI's and Anthropic's APIs.

    gid = log_openai(client, response, input=messages, prompt_version="summarize@3")
    gid = log_anthropic(client, message, input=messages, system=system_prompt)

What is read from the response: see :mod:`kept.integrations.responses`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kept.arguments import Message

from .base import UNKNOWN_MODEL, GenerationClient, milliseconds
from .messages import as_input, with_system
from .responses import Prices, extract_usage


def log_openai(
    client: GenerationClient,
    response: object,
    *,
    input: str | Sequence[Any] | None = None,
    prompt_version: str | None = None,
    latency_ms: float | None = None,
    metadata: dict[str, str] | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    generation_id: str | None = None,
    prices: Prices | None = None,
    model: str | None = None,
) -> str:
    """Log an OpenAI Chat Completions or Responses API response; returns the generation id.

    ``input`` is the prompt string or the messages sent (the ``messages`` or ``input``
    argument of the call). ``model`` is used when the response names none (then
    ``"unknown"``). Never raises except in the client's debug mode.
    """
    return _log_response(
        client,
        response,
        as_input(input),
        prompt_version=prompt_version,
        latency_ms=latency_ms,
        metadata=metadata,
        user_id=user_id,
        session_id=session_id,
        generation_id=generation_id,
        prices=prices,
        model=model,
    )


def log_anthropic(
    client: GenerationClient,
    response: object,
    *,
    input: str | Sequence[Any] | None = None,
    system: str | Sequence[Any] | None = None,
    prompt_version: str | None = None,
    latency_ms: float | None = None,
    metadata: dict[str, str] | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    generation_id: str | None = None,
    prices: Prices | None = None,
    model: str | None = None,
) -> str:
    """Log an Anthropic Messages API response; returns the generation id.

    ``input`` is the ``messages`` argument of the call (or a prompt string). Anthropic
    takes the system prompt apart, so ``system`` (a string or text blocks) is logged as a
    ``system`` message in front of them; a string ``input`` then becomes a ``user``
    message. Without an ``input`` the system prompt is not logged either: leaving
    ``input`` out is how an app keeps prompts out of kept. ``model`` is used when the
    response names none (then ``"unknown"``). Never raises except in the client's debug
    mode.
    """
    try:
        logged_input = with_system(system, as_input(input))
    except Exception:
        logged_input = None
    return _log_response(
        client,
        response,
        logged_input,
        prompt_version=prompt_version,
        latency_ms=latency_ms,
        metadata=metadata,
        user_id=user_id,
        session_id=session_id,
        generation_id=generation_id,
        prices=prices,
        model=model,
    )


def _log_response(
    client: GenerationClient,
    response: object,
    input: str | list[Message] | None,
    *,
    prompt_version: str | None,
    latency_ms: float | None,
    metadata: dict[str, str] | None,
    user_id: str | None,
    session_id: str | None,
    generation_id: str | None,
    prices: Prices | None,
    model: str | None,
) -> str:
    info = extract_usage(response, prices=prices, model=model)
    return client.log_generation(
        model=info.model or UNKNOWN_MODEL,
        input=input,
        output=info.output,
        prompt_version=prompt_version,
        latency_ms=milliseconds(latency_ms),
        input_tokens=info.input_tokens,
        output_tokens=info.output_tokens,
        cost_usd=info.cost_usd,
        metadata=metadata,
        user_id=user_id,
        session_id=session_id,
        generation_id=generation_id,
    )
