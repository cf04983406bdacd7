"""kept: did users keep what the model wrote?

Capture generations and user feedback from an LLM app. Calls only enqueue (microseconds),
never raise, and are sent in the background::

    import kept

    kept.init(endpoint="http://127.0.0.1:8787", api_key="kp_...")  # or KEPT_ENDPOINT/KEPT_API_KEY
    gid = kept.log_generation(model="gpt-4o-mini", prompt_version="summarize@3",
                              input=messages, output=text, latency_ms=840)
    kept.vote(gid, 1)                       # thumbs up
    kept.accept(gid)                        # the user took the suggestion
    kept.correct(gid, edited_text)          # what the user ended up with
    kept.score(gid, "faithfulness", 0.9, source="llm")
    kept.flush()                            # optional: also done at exit

The module-level functions use a default :class:`Client`, made from the environment on
first use or by :func:`init`.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime

from .client import Client, Message, ScoreSource
from .transport import Transport

__all__ = [
    "Client",
    "__version__",
    "accept",
    "action",
    "close",
    "correct",
    "flush",
    "get_client",
    "init",
    "log_generation",
    "score",
    "stats",
    "survival",
    "vote",
]

__version__ = "0.1.0"

_default: Client | None = None
_default_lock = threading.Lock()


def init(
    endpoint: str | None = None,
    api_key: str | None = None,
    *,
    max_queue_size: int = 10_000,
    batch_size: int = 500,
    flush_interval: float = 0.5,
    request_timeout: float = 10.0,
    shutdown_timeout: float = 5.0,
    debug: bool = False,
    enabled: bool = True,
    transport: Transport | None = None,
) -> Client:
    """Make the default client (same arguments as :class:`Client`); closes the previous one."""
    global _default
    client = Client(
        endpoint,
        api_key,
        max_queue_size=max_queue_size,
        batch_size=batch_size,
        flush_interval=flush_interval,
        request_timeout=request_timeout,
        shutdown_timeout=shutdown_timeout,
        debug=debug,
        enabled=enabled,
        transport=transport,
    )
    with _default_lock:
        previous, _default = _default, client
    if previous is not None:
        previous.close()
    return client


def get_client() -> Client:
    """The default client, created from ``KEPT_ENDPOINT``/``KEPT_API_KEY`` on first use."""
    global _default
    client = _default
    if client is None:
        with _default_lock:
            if _default is None:
                _default = Client()
            client = _default
    return client


def log_generation(
    *,
    model: str,
    input: str | list[Message] | None = None,
    output: str | None = None,
    prompt_version: str | None = None,
    latency_ms: int | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cost_usd: float | None = None,
    metadata: dict[str, str] | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    generation_id: str | None = None,
    ts: datetime | None = None,
) -> str:
    """:meth:`Client.log_generation` on the default client."""
    return get_client().log_generation(
        model=model,
        input=input,
        output=output,
        prompt_version=prompt_version,
        latency_ms=latency_ms,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        metadata=metadata,
        user_id=user_id,
        session_id=session_id,
        generation_id=generation_id,
        ts=ts,
    )


def vote(
    generation_id: str,
    value: int,
    *,
    comment: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    ts: datetime | None = None,
) -> bool:
    """:meth:`Client.vote` on the default client."""
    return get_client().vote(
        generation_id, value, comment=comment, user_id=user_id, session_id=session_id, ts=ts
    )


def action(
    generation_id: str,
    name: str,
    *,
    value: str | float | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    ts: datetime | None = None,
) -> bool:
    """:meth:`Client.action` on the default client."""
    return get_client().action(
        generation_id, name, value=value, user_id=user_id, session_id=session_id, ts=ts
    )


def accept(
    generation_id: str,
    *,
    value: str | float | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    ts: datetime | None = None,
) -> bool:
    """:meth:`Client.accept` on the default client."""
    return get_client().accept(
        generation_id, value=value, user_id=user_id, session_id=session_id, ts=ts
    )


def correct(
    generation_id: str,
    text: str,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    ts: datetime | None = None,
) -> bool:
    """:meth:`Client.correct` on the default client."""
    return get_client().correct(generation_id, text, user_id=user_id, session_id=session_id, ts=ts)


def score(
    generation_id: str,
    name: str,
    value: float,
    *,
    source: ScoreSource = "code",
    comment: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    ts: datetime | None = None,
) -> bool:
    """:meth:`Client.score` on the default client."""
    return get_client().score(
        generation_id,
        name,
        value,
        source=source,
        comment=comment,
        user_id=user_id,
        session_id=session_id,
        ts=ts,
    )


def survival(
    generation_id: str,
    checkpoint_s: int,
    score: float,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    ts: datetime | None = None,
) -> bool:
    """:meth:`Client.survival` on the default client."""
    return get_client().survival(
        generation_id, checkpoint_s, score, user_id=user_id, session_id=session_id, ts=ts
    )


def flush(timeout: float | None = None) -> bool:
    """:meth:`Client.flush` on the default client (True when there is none yet)."""
    client = _default
    return True if client is None else client.flush(timeout)


def close(timeout: float | None = None) -> None:
    """:meth:`Client.close` on the default client, if one was made."""
    client = _default
    if client is not None:
        client.close(timeout)


def stats() -> dict[str, int]:
    """:meth:`Client.stats` of the default client."""
    return get_client().stats()


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
