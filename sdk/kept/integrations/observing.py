"""Timing a model call and logging it as one generation: :func:`generation` (a context
manager), :func:`observe` (a decorator) and the :class:`Generation` handle they share.

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from time import perf_counter
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from kept.arguments import Message
from kept_wire.encoding import new_id

from .base import UNKNOWN_MODEL, GenerationClient, failed, lets_errors_out, milliseconds
from .messages import as_input, call_input
from .responses import Prices, extract_usage

P = ParamSpec("P")
R = TypeVar("R")

_current: ContextVar[Generation | None] = ContextVar("kept_generation", default=None)
_NO_RESULT: Any = object()


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
        client: GenerationClient | None,
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
        self._input = as_input(input)
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
        self._input = as_input(value)

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
                latency_ms=milliseconds(elapsed * 1000.0 if latency is None else latency),
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
                cost_usd=self.cost_usd,
                metadata=metadata or None,
                user_id=self.user_id,
                session_id=self.session_id,
                generation_id=self.id,
            )
        except Exception as error:
            if exc is None and lets_errors_out(client):
                raise
            failed("instrument", error)


def generation(
    client: GenerationClient,
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
    client_or_getter: GenerationClient | Callable[[], GenerationClient | None],
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
        client = cast("GenerationClient", client_or_getter)

        def resolve() -> GenerationClient | None:
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
                    g._input = call_input(args, kwargs)
                return g
            except Exception as error:
                failed("observe", error)
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
