"""Instrumentation: log a generation around a model call, from the call's response.

Four helpers over a client's ``log_generation``, each taking the client first (any
:class:`GenerationClient`; :class:`kept.Client` has them as methods too)::

    gid = log_openai(client, response, input=messages, prompt_version="summarize@3")
    gid = log_anthropic(client, message, input=messages, system=system_prompt)

    @observe(client, prompt_version="summarize@3", prices=PRICES)
    def summarize(messages: list[dict[str, str]]) -> ChatCompletion:
        return openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    with generation(client, model="gpt-4o-mini", input=messages) as g:
        g.record(openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages))
        return_to_front_end(g.id)

Responses are read by :func:`extract_usage` (:mod:`.responses`: OpenAI Chat Completions
and Responses, Anthropic Messages, plain dicts; cost from ``prices``), inputs normalized
by :mod:`.messages`. Nothing here raises into the app except in the client's debug mode,
and an exception of the app's own always propagates unchanged.
"""

from __future__ import annotations

from .base import UNKNOWN_MODEL, GenerationClient
from .observing import Generation, current_generation, generation, observe
from .providers import log_anthropic, log_openai
from .responses import Price, Prices, ResponseInfo, extract_usage

__all__ = [
    "UNKNOWN_MODEL",
    "Generation",
    "GenerationClient",
    "Price",
    "Prices",
    "ResponseInfo",
    "current_generation",
    "extract_usage",
    "generation",
    "log_anthropic",
    "log_openai",
    "observe",
]
