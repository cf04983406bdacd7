"""Instrumentation: log a generation around a model call, from the call's response.

Four helpers over :meth:`Client.log_generation`, all duck-typed (this module never
imports ``openai`` or ``anthropic``; attribute objects and plain dicts such as
``response.model_dump()`` or raw JSON both work)::

    gid = log_openai(client, response, input=messages, prompt_version="summarize@3")
    gid = log_anthropic(client, message, input=messages, system=system_prompt)

    @observe(client, prompt_version="summarize@3", prices=PRICES)
    def summarize(messages: list[dict[str, str]]) -> ChatCompletion:
        return openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    with generation(client, model="gpt-4o-mini", input=messages) as g:
        g.record(openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages))
        return_to_front_end(g.id)

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

Input messages are stored as ``{role, content}`` with string content, as the event
contract requires: text parts of a multi-part content are joined by newlines, other parts
(images, tool calls) are left out, and an item without a role (a Responses API
``function_call_output``) takes its ``type`` as role.

Streaming responses are out of scope: a stream object carries no text or usage until it is
consumed, so only the timing would be logged. Log streamed calls with :func:`generation`
and set ``g.output`` and the token counts once the stream is done.

Nothing here raises into the app except in the client's debug mode, and an exception of
the app's own always propagates unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from .events import Message, new_id
from .stats import LogLimiter

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "Generation",
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

P = ParamSpec("P")
R = TypeVar("R")

Price = tuple[float, float] | tuple[float, float, float]
"""USD per million input tokens, per million output tokens[, per million cached input tokens]."""
Prices = Mapping[str, Price]

UNKNOWN_MODEL = "unknown"
"""The model logged when neither the response nor the app names one (the event needs one)."""

_MAX_ROLE_CHARS = 32  # the contract's limit on a message's role
_limiter = LogLimiter()
_current: ContextVar[Generation | None] = ContextVar("kept_generation", default=None)
_NO_RESULT: Any = object()
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


# --- extraction ---------------------------------------------------------------------------


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
        return _NOTHING if model is None else ResponseInfo(model=_name(model))


def _extract(response: object, prices: Prices | None, fallback: str | None) -> ResponseInfo:
    if isinstance(response, str):
        return ResponseInfo(model=_name(fallback), output=response)
    model = _name(_get(response, "model")) or _name(fallback)
    output = _output(response)
    usage = _get(response, "usage")
    input_tokens = _count(_get(usage, "prompt_tokens"))
    cached = 0
    if input_tokens is None:
        input_tokens = _count(_get(usage, "input_tokens"))
        if input_tokens is not None:
            cache_write = _count(_get(usage, "cache_creation_input_tokens")) or 0
            cached = _count(_get(usage, "cache_read_input_tokens")) or 0
            input_tokens += cache_write + cached
    if not cached:
        details = _get(usage, "prompt_tokens_details") or _get(usage, "input_tokens_details")
        cached = _count(_get(details, "cached_tokens")) or 0
    output_tokens = _count(_get(usage, "completion_tokens"))
    if output_tokens is None:
        output_tokens = _count(_get(usage, "output_tokens"))
    cost = _money(_get(usage, "cost"))
    if cost is None and prices:
        try:
            cost = _priced(model, input_tokens, output_tokens, cached, prices)
        except Exception:  # an odd price table costs the cost, not the rest
            cost = None
    return ResponseInfo(model, output, input_tokens, output_tokens, cost)


def _output(response: object) -> str | None:
    choices = _get(response, "choices")
    if isinstance(choices, (list, tuple)):  # Chat Completions (or legacy Completions)
        if not choices:
            return None
        choice = choices[0]
        message = _get(choice, "message")
        if message is None:
            return _text(_get(choice, "text"))
        content = _get(message, "content")
        text = content if isinstance(content, str) else _parts_text(content, "")
        return text if text is not None else _text(_get(message, "refusal"))
    output = _get(response, "output")
    if isinstance(output, (list, tuple)):  # Responses API
        texts = [
            text
            for item in output
            if _get(item, "type") == "message"
            for part in _seq(_get(item, "content"))
            if (text := _response_part_text(part)) is not None
        ]
        return "".join(texts) if texts else None
    if isinstance(output, str):
        return output
    content = _get(response, "content")  # Anthropic Messages, or a chat message itself
    if content is None:
        return _text(_property(response, "output_text"))
    return content if isinstance(content, str) else _parts_text(content, "")


def _response_part_text(part: object) -> str | None:
    kind = _get(part, "type")
    if kind == "output_text":
        return _text(_get(part, "text"))
    if kind == "refusal":
        return _text(_get(part, "refusal"))
    return None


def _parts_text(parts: object, separator: str) -> str | None:
    """The text parts of a content list joined; None when it has none."""
    if not isinstance(parts, (list, tuple)):
        return None
    texts: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        text = _get(part, "text")
        # A typed part other than text (thinking, tool_use, image) is not what was shown.
        kind = _get(part, "type")
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


def _get(obj: object, name: str) -> Any:
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
    value = _get(obj, name)
    return getattr(obj, name, None) if value is None and not isinstance(obj, dict) else value


def _seq(value: object) -> Sequence[Any]:
    return value if isinstance(value, (list, tuple)) else ()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _name(value: object) -> str | None:
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


# --- input --------------------------------------------------------------------------------


def _input(value: object) -> str | list[Message] | None:
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
    role = _name(_get(item, "role")) or _name(_get(item, "type")) or "user"
    content = _get(item, "content")
    if not isinstance(content, str):
        content = _parts_text(content, "\n")
        if content is None:
            content = _text(_get(item, "output")) or ""  # a function call's output
    return {"role": role[:_MAX_ROLE_CHARS], "content": content}


def _call_input(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | list[Message] | None:
    """The input of a call: see :func:`observe`."""
    for key in ("messages", "input", "prompt"):
        value = kwargs.get(key)
        if isinstance(value, (str, list, tuple)):
            return _input(value)
    for value in args:
        if isinstance(value, (list, tuple)) and value and _is_message(value[0]):
            return _input(value)
    for value in args:
        if isinstance(value, str):
            return value
    return None


def _is_message(item: object) -> bool:
    return _get(item, "role") is not None or _get(item, "type") is not None


def _system_input(system: object, input: str | list[Message] | None) -> str | list[Message] | None:
    if input is None or system is None:
        return input
    text = system if isinstance(system, str) else _parts_text(system, "\n")
    if not text:
        return input
    messages = [{"role": "user", "content": input}] if isinstance(input, str) else input
    return [{"role": "system", "content": text}, *messages]


# --- logging a response -------------------------------------------------------------------


def log_openai(
    client: Client,
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
        _input(input),
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
    client: Client,
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
        logged_input = _system_input(system, _input(input))
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
    client: Client,
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
        latency_ms=_ms(latency_ms),
        input_tokens=info.input_tokens,
        output_tokens=info.output_tokens,
        cost_usd=info.cost_usd,
        metadata=metadata,
        user_id=user_id,
        session_id=session_id,
        generation_id=generation_id,
    )


def _ms(value: float | None) -> int | None:
    if isinstance(value, float) and math.isfinite(value):
        return round(value)
    # An int, None, or something else for the client's own check to refuse.
    return cast("int | None", value)


# --- generation handle, context manager and decorator -------------------------------------


class Generation:
    """One generation being timed; made by :func:`generation` and by :func:`observe`.

    Inside the block (or the decorated function) the app may set any of ``model``,
    ``input``, ``output``, ``prompt_version``, ``input_tokens``, ``output_tokens``,
    ``cost_usd``, ``latency_ms`` (instead of the measured time), ``metadata`` (a dict it
    may update), ``user_id`` and ``session_id``, or call :meth:`record` with the model's
    response. ``id`` is the generation id from the start, for the app to hand to its front
    end (feedback refers to it). The generation is logged once, when the block ends.
    """

    __slots__ = (
        "_client",
        "_input",
        "_prices",
        "_start",
        "_token",
        "cost_usd",
        "id",
        "input_tokens",
        "latency_ms",
        "metadata",
        "model",
        "output",
        "output_tokens",
        "prompt_version",
        "session_id",
        "user_id",
    )

    def __init__(
        self,
        client: Client | None,
        *,
        model: str | None = None,
        input: str | Sequence[Any] | None = None,
        prompt_version: str | None = None,
        metadata: Mapping[str, str] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        generation_id: str | None = None,
        prices: Prices | None = None,
    ) -> None:
        self._client = client
        self._prices = prices
        self._start = perf_counter()
        self._token: Token[Generation | None] | None = None
        self.id: str = new_id() if generation_id is None else generation_id
        self.model = model
        self._input = _input(input)
        self.output: str | None = None
        self.prompt_version = prompt_version
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cost_usd: float | None = None
        self.latency_ms: float | None = None
        self.metadata: dict[str, str] = {} if metadata is None else dict(metadata)
        self.user_id = user_id
        self.session_id = session_id

    @property
    def input(self) -> str | list[Message] | None:
        """The prompt string or ``{role, content}`` messages (normalized when set)."""
        return self._input

    @input.setter
    def input(self, value: str | Sequence[Any] | None) -> None:
        self._input = _input(value)

    def record(self, response: object) -> None:
        """Take model, output, token counts and cost from a model response (or a string).

        What the response carries replaces what was set; what it lacks is kept. Never
        raises.
        """
        info = extract_usage(response, prices=self._prices, model=self.model)
        if info.model is not None:
            self.model = info.model
        if info.output is not None:
            self.output = info.output
        if info.input_tokens is not None:
            self.input_tokens = info.input_tokens
        if info.output_tokens is not None:
            self.output_tokens = info.output_tokens
        if info.cost_usd is not None:
            self.cost_usd = info.cost_usd

    def __enter__(self) -> Generation:
        self._token = _current.set(self)
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = perf_counter() - self._start
        token, self._token = self._token, None
        if token is not None:
            # ValueError: exited in another context than entered, so nothing to undo here.
            with contextlib.suppress(ValueError):
                _current.reset(token)
        self._finish(elapsed, exc)

    async def __aenter__(self) -> Generation:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _finish(self, elapsed: float, exc: BaseException | None, result: Any = _NO_RESULT) -> None:
        """Log the generation; kept's errors propagate only in debug mode, and never over
        the app's own exception ``exc``."""
        client = self._client
        if client is None:
            return
        try:
            if result is not _NO_RESULT:
                self.record(result)
            metadata = self.metadata
            if exc is not None:
                metadata = {**metadata, "error": type(exc).__name__}
            latency = self.latency_ms
            client.log_generation(
                model=self.model or UNKNOWN_MODEL,
                input=self._input,
                output=self.output,
                prompt_version=self.prompt_version,
                latency_ms=_ms(elapsed * 1000.0 if latency is None else latency),
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
                cost_usd=self.cost_usd,
                metadata=metadata or None,
                user_id=self.user_id,
                session_id=self.session_id,
                generation_id=self.id,
            )
        except Exception as error:
            if exc is None and _debug(client):
                raise
            _kept_failed("instrument", error)


def generation(
    client: Client,
    *,
    model: str,
    input: str | Sequence[Any] | None = None,
    prompt_version: str | None = None,
    metadata: Mapping[str, str] | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    generation_id: str | None = None,
    prices: Prices | None = None,
) -> Generation:
    """A context manager (``with`` or ``async with``) that logs one generation on exit.

    The block is timed; inside it set ``g.output`` (and token counts) or call
    ``g.record(response)``; ``g.id`` is the generation id. ``model`` is replaced by the
    model a recorded response names (it is what actually ran, e.g. a dated snapshot). If
    the block raises, the generation is logged with ``metadata["error"]`` set to the
    exception's type name and the exception propagates unchanged. Streaming is not read
    by :meth:`Generation.record`: set ``g.output`` once the stream is consumed.
    """
    return Generation(
        client,
        model=model,
        input=input,
        prompt_version=prompt_version,
        metadata=metadata,
        user_id=user_id,
        session_id=session_id,
        generation_id=generation_id,
        prices=prices,
    )


def current_generation() -> Generation | None:
    """The generation of the innermost :func:`observe`-decorated call or :func:`generation`
    block running in this context (thread or task), or None.

    A decorated function uses it to learn its generation id for the front end, or to set
    ``user_id``, ``session_id``, ``metadata`` and the like before it returns.
    """
    return _current.get()


def observe(
    client_or_getter: Client | Callable[[], Client | None],
    *,
    model: str | None = None,
    prompt_version: str | None = None,
    name: str | None = None,
    capture_input: bool = True,
    prices: Prices | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a sync or async function so that each call logs one generation.

    ``client_or_getter`` is a client, or a function returning the client (or None to skip
    logging) that is called on every call, so that a default client can be made late.

    The call is timed. Its input, unless ``capture_input=False``, is the first of the
    ``messages``, ``input`` and ``prompt`` keyword arguments that is a string or a list;
    else the first positional list of messages (items with a ``role`` or ``type``); else
    the first positional string. It is read before the call, so a function that appends
    to its messages does not change what is logged. The return value is read with
    :func:`extract_usage` (an OpenAI or Anthropic response, or a string) and returned
    unchanged; ``model`` is logged when the return value names none (else ``"unknown"``).
    ``metadata`` is logged with each call, with ``name`` (default: the function's
    qualified name) under ``"name"``. Inside the call, :func:`current_generation` gives
    the :class:`Generation`, e.g. for its ``id``.

    If the function raises, the generation is logged with ``metadata["error"]`` set to the
    exception's type name and the exception propagates unchanged. kept's own failures are
    logged, never raised, except in the client's debug mode. Streaming responses and
    generator functions are not supported (a generator function is returned undecorated).
    """
    static_metadata = dict(metadata or {})
    if hasattr(client_or_getter, "log_generation"):
        client = cast("Client", client_or_getter)

        def resolve() -> Client | None:
            return client
    else:
        resolve = client_or_getter

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if _is_generator_function(fn):
            logging.getLogger("kept").warning(
                "kept.observe: %s is a generator function (streaming); not instrumented",
                getattr(fn, "__qualname__", fn),
            )
            return fn
        label = getattr(fn, "__qualname__", "?") if name is None else name
        call_metadata = {**static_metadata, "name": label}

        def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Generation | None:
            try:
                client = resolve()
                if client is None:
                    return None
                g = Generation(
                    client,
                    model=model,
                    prompt_version=prompt_version,
                    metadata=call_metadata,
                    prices=prices,
                )
                if capture_input:
                    g._input = _call_input(args, kwargs)
                return g
            except Exception as error:
                _kept_failed("observe", error)
                return None

        if inspect.iscoroutinefunction(fn):
            afn = cast("Callable[P, Awaitable[Any]]", fn)

            async def acall(*args: P.args, **kwargs: P.kwargs) -> Any:
                g = start(args, kwargs)
                if g is None:
                    return await afn(*args, **kwargs)
                token = _current.set(g)
                begin = perf_counter()
                try:
                    result = await afn(*args, **kwargs)
                except BaseException as exc:
                    elapsed = perf_counter() - begin
                    _current.reset(token)
                    g._finish(elapsed, exc)
                    raise
                elapsed = perf_counter() - begin
                _current.reset(token)
                g._finish(elapsed, None, result)
                return result

            return cast("Callable[P, R]", functools.wraps(fn)(acall))

        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            g = start(args, kwargs)
            if g is None:
                return fn(*args, **kwargs)
            token = _current.set(g)
            begin = perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                elapsed = perf_counter() - begin
                _current.reset(token)
                g._finish(elapsed, exc)
                raise
            elapsed = perf_counter() - begin
            _current.reset(token)
            g._finish(elapsed, None, result)
            return result

        return functools.wraps(fn)(call)

    return decorate


def _is_generator_function(fn: Callable[..., Any]) -> bool:
    return inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)


def _debug(client: Client) -> bool:
    # The client's own rule (Client._fail): only debug mode lets kept's errors out.
    return getattr(client, "debug", False) is True


def _kept_failed(op: str, error: Exception) -> None:
    # Only the type: the message could quote the app's data.
    _limiter.log(logging.ERROR, f"fail:{op}", "kept: %s failed (%s)", op, type(error).__name__)
