"""kept: did users keep what the model wrote?

Capture generations and user feedback from an LLM app. Calls only enqueue (microseconds),
never raise, and are sent in the background::

    import kept

    kept.init(endpoint="http://127.0.0.1:8787", api_key="kept_...")  # or KEPT_ENDPOINT/KEPT_API_KEY
    gid = kept.log_generation(model="gpt-4o-mini", prompt_version="summarize@3",
                              input=messages, output=text, latency_ms=840)
    kept.vote(gid, 1)                       # thumbs up
    kept.accept(gid, current_text=editor.text)  # taken; survival checked 30 s ... 15 min
    kept.correct(gid, edited_text)          # what the user ended up with
    kept.score(gid, "faithfulness", 0.9, source="llm")
    kept.flush()                            # optional: also done at exit

The module-level functions use a default :class:`Client`, made from the environment on
first use or by :func:`init`.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from kept_wire.redaction import redact_pii

from . import integrations
from .arguments import Message, ScoreSource
from .client import Client
from .integrations import Generation, ResponseInfo, current_generation, extract_usage
from .process_hooks import after_fork_in_child
from .survival_tracking import survival_score
from .transports import Transport

__all__ = [
    "Client",
    "Generation",
    "Message",
    "ResponseInfo",
    "ScoreSource",
    "Transport",
    "__version__",
    "accept",
    "aclose",
    "action",
    "aflush",
    "close",
    "correct",
    "current_generation",
    "extract_usage",
    "feedback_token",
    "flush",
    "generation",
    "get_client",
    "init",
    "log_anthropic",
    "log_generation",
    "log_openai",
    "observe",
    "redact_pii",
    "score",
    "stats",
    "survival",
    "survival_score",
    "track_survival",
    "vote",
]

__version__ = "0.1.0"

P = ParamSpec("P")
R = TypeVar("R")

_default: Client | None = None
_default_lock = threading.Lock()


def _replacing_default(make: Callable[P, Client]) -> Callable[P, Client]:
    """`init`: `make` the default client (with Client's own signature); closes the old one."""

    def init(*args: P.args, **kwargs: P.kwargs) -> Client:
        global _default
        client = make(*args, **kwargs)
        _fork_hook.ensure()
        with _default_lock:
            previous, _default = _default, client
        if previous is not None:
            previous.close()
        return client

    init.__doc__ = (
        "Make the default client (same arguments as :class:`Client`); closes the previous one."
    )
    init.__signature__ = inspect.signature(make).replace(  # type: ignore[attr-defined]
        return_annotation=Client
    )
    return init


init = _replacing_default(Client)


def get_client() -> Client:
    """The default client, created from ``KEPT_ENDPOINT``/``KEPT_API_KEY`` on first use."""
    global _default
    client = _default
    if client is None:
        _fork_hook.ensure()
        with _default_lock:
            if _default is None:
                _default = Client()
            client = _default
    return client


def _on_default_client(method: Callable[Concatenate[Client, P], R]) -> Callable[P, R]:
    """`method` called on the default client, with the method's own signature and docs."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return method(get_client(), *args, **kwargs)

    signature = inspect.signature(method)
    # help() and IDEs should not show the `self` that the default client fills in.
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    return call


log_generation = _on_default_client(Client.log_generation)
vote = _on_default_client(Client.vote)
action = _on_default_client(Client.action)
accept = _on_default_client(Client.accept)
correct = _on_default_client(Client.correct)
score = _on_default_client(Client.score)
survival = _on_default_client(Client.survival)
track_survival = _on_default_client(Client.track_survival)
feedback_token = _on_default_client(Client.feedback_token)
log_openai = _on_default_client(integrations.log_openai)
log_anthropic = _on_default_client(integrations.log_anthropic)
generation = _on_default_client(integrations.generation)
observe = functools.partial(integrations.observe, get_client)
"""``observe(...)`` of :mod:`kept.integrations` on the default client, made on first use."""


def flush(timeout: float | None = None) -> bool:
    """:meth:`Client.flush` on the default client (True when there is none yet)."""
    client = _default
    return True if client is None else client.flush(timeout)


def close(timeout: float | None = None) -> None:
    """:meth:`Client.close` on the default client, if one was made."""
    client = _default
    if client is not None:
        client.close(timeout)


async def aflush(timeout: float | None = None) -> bool:
    """:meth:`Client.aflush` on the default client (True when there is none yet)."""
    client = _default
    return True if client is None else await client.aflush(timeout)


async def aclose(timeout: float | None = None) -> None:
    """:meth:`Client.aclose` on the default client, if one was made."""
    client = _default
    if client is not None:
        await client.aclose(timeout)


def stats() -> dict[str, int]:
    """:meth:`Client.stats` of the default client."""
    return get_client().stats()


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()


_fork_hook = after_fork_in_child(_after_fork_in_child)
