"""Reading a model's response: model, output text, token counts and cost.

All duck-typed: this module never imports ``openai`` or ``anthropic``; attribute objects
and plain dicts such as ``response.model_dump()`` or raw JSON both work.

What is read from a response (:func:`extract_usage`):

- OpenAI Chat Completions: ``model``, ``choices[0].message.content`` (its ``refusal`` when
  there is no content), ``usage.prompt_tokens`` / ``completion_tokens``.
- OpenAI Responses: the text of the ``output_text`` parts of the ``output`` message items
  (or an ``output_text`` field when there is no ``output`` list), ``usage.input_tokens`` /
  ``output_tokens``.
- Anthropic Messages: the ``text`` blocks of ``content`` joined, ``usage.input_tokens`` plus
  ``cache_creation_input_tokens`` and ``cache_read_input_tokens``: Anthropic counts cached
  prompt tokens apart, OpenAI includes them in its count, so kept's ``input_tokens`` is the
  whole prompt for both. (The cache fields are added only to an ``input_tokens`` count: a
  ``prompt_tokens`` count, e.g. LiteLLM's, already includes them.)
- A plain ``str``: the output only. Anything else gives what it has, or nothing.

Cost: a cost the response carries itself (OpenRouter's ``usage.cost``) wins. Otherwise it is
computed from an optional ``prices`` mapping ``model -> (usd_per_million_input_tokens,
usd_per_million_output_tokens[, usd_per_million_cached_input_tokens])``, looked up by the
exact model name first, then by the longest key that prefixes it (``"gpt-4o-mini"`` prices
``"gpt-4o-mini-2024-07-18"``; list every model family you use, since ``"gpt-4o"`` alone would
also prefix ``"gpt-4o-mini-..."``). Without the third price, cache reads are priced as
input; cache writes are always priced as input (providers charge them somewhat more).
There is no built-in price table on purpose: prices change, and a stale table would report
wrong costs with confidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Price = tuple[float, float] | tuple[float, float, float]
"""USD per million input tokens, per million output tokens[, per million cached input tokens]."""
Prices = Mapping[str, Price]

_MISSING = object()


@dataclass(frozen=True, slots=True)
class ResponseInfo:
    """What :func:`extract_usage` found in a model response; None for what it lacks."""

    model: str | None = None
    output: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


_NOTHING = ResponseInfo()


def extract_usage(
    response: object, *, prices: Prices | None = None, model: str | None = None
) -> ResponseInfo:
    """Model, output text, token counts and cost of ``response`` (see the module's notes).

    ``model`` is used when the response names none. Never raises: an object it cannot
    read gives a :class:`ResponseInfo` of Nones (it runs on the app's thread).
    """
    try:
        return _extract(response, prices, model)
    except Exception:
        return _NOTHING if model is None else ResponseInfo(model=as_name(model))


def _extract(response: object, prices: Prices | None, fallback: str | None) -> ResponseInfo:
    if isinstance(response, str):
        return ResponseInfo(model=as_name(fallback), output=response)
    model = as_name(field(response, "model")) or as_name(fallback)
    output = _output(response)
    usage = field(response, "usage")
    input_tokens = _count(field(usage, "prompt_tokens"))
    cached = 0
    if input_tokens is None:
        input_tokens = _count(field(usage, "input_tokens"))
        if input_tokens is not None:
            cache_write = _count(field(usage, "cache_creation_input_tokens")) or 0
            cached = _count(field(usage, "cache_read_input_tokens")) or 0
            input_tokens += cache_write + cached
    if not cached:
        details = field(usage, "prompt_tokens_details") or field(usage, "input_tokens_details")
        cached = _count(field(details, "cached_tokens")) or 0
    output_tokens = _count(field(usage, "completion_tokens"))
    if output_tokens is None:
        output_tokens = _count(field(usage, "output_tokens"))
    cost = _money(field(usage, "cost"))
    if cost is None and prices:
        try:
            cost = _priced(model, input_tokens, output_tokens, cached, prices)
        except Exception:  # an odd price table costs the cost, not the rest
            cost = None
    return ResponseInfo(model, output, input_tokens, output_tokens, cost)


def _output(response: object) -> str | None:
    choices = field(response, "choices")
    if isinstance(choices, (list, tuple)):  # Chat Completions (or legacy Completions)
        if not choices:
            return None
        choice = choices[0]
        message = field(choice, "message")
        if message is None:
            return as_text(field(choice, "text"))
        content = field(message, "content")
        text = content if isinstance(content, str) else parts_text(content, "")
        return text if text is not None else as_text(field(message, "refusal"))
    output = field(response, "output")
    if isinstance(output, (list, tuple)):  # Responses API
        texts = [
            text
            for item in output
            if field(item, "type") == "message"
            for part in _seq(field(item, "content"))
            if (text := _response_part_text(part)) is not None
        ]
        return "".join(texts) if texts else None
    if isinstance(output, str):
        return output
    content = field(response, "content")  # Anthropic Messages, or a chat message itself
    if content is None:
        return as_text(_property(response, "output_text"))
    return content if isinstance(content, str) else parts_text(content, "")


def _response_part_text(part: object) -> str | None:
    kind = field(part, "type")
    if kind == "output_text":
        return as_text(field(part, "text"))
    if kind == "refusal":
        return as_text(field(part, "refusal"))
    return None


def parts_text(parts: object, separator: str) -> str | None:
    """The text parts of a content list joined; None when it has none."""
    if not isinstance(parts, (list, tuple)):
        return None
    texts: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        text = field(part, "text")
        # A typed part other than text (thinking, tool_use, image) is not what was shown.
        kind = field(part, "type")
        if isinstance(text, str) and (kind is None or kind in _TEXT_PART_TYPES):
            texts.append(text)
    return separator.join(texts) if texts else None


_TEXT_PART_TYPES = frozenset(("text", "input_text", "output_text"))


def _priced(
    model: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cached: int,
    prices: Prices,
) -> float | None:
    if model is None or input_tokens is None or output_tokens is None:
        return None
    price = _price(model, prices)
    if price is None:
        return None
    per_input, per_output = price[0], price[1]
    per_cached = price[2] if len(price) > 2 else per_input
    cached = min(cached, input_tokens)
    cost = (
        (input_tokens - cached) * per_input + cached * per_cached + output_tokens * per_output
    ) / 1e6
    return _money(cost)


def _price(model: str, prices: Prices) -> Price | None:
    price = prices.get(model)
    if price is None:
        best = ""
        for key in prices:
            if isinstance(key, str) and len(key) > len(best) and model.startswith(key):
                best = key
        if not best:
            return None
        price = prices[best]
    if (
        isinstance(price, (tuple, list))  # a list, as prices loaded from JSON come
        and len(price) in (2, 3)
        and all(_money(p) is not None for p in price)
    ):
        return price
    return None


def field(obj: object, name: str) -> Any:
    """``obj[name]`` of a mapping, else ``obj.name``; None when missing."""
    if isinstance(obj, dict):
        return obj.get(name)
    if obj is None:
        return None
    fields = getattr(obj, "__dict__", None)
    if isinstance(fields, dict):
        value = fields.get(name, _MISSING)
        if value is not _MISSING:
            return value
        extra = getattr(obj, "__pydantic_extra__", _MISSING)
        if extra is not _MISSING:
            # A pydantic model (the OpenAI and Anthropic types) keeps its fields in
            # __dict__ and unknown ones in __pydantic_extra__; asking it for a missing
            # attribute raises inside pydantic, which costs microseconds per field.
            return extra.get(name) if isinstance(extra, dict) else None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _property(obj: object, name: str) -> Any:
    """Like :func:`_get`, but also finds a computed property of a pydantic model."""
    value = field(obj, name)
    return getattr(obj, name, None) if value is None and not isinstance(obj, dict) else value


def _seq(value: object) -> Sequence[Any]:
    return value if isinstance(value, (list, tuple)) else ()


def as_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def as_name(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _money(value: object) -> float | None:
    """``value`` as a cost (a finite number >= 0), else None; 0 is a cost, so test for None."""
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        return float(value)
    return None
