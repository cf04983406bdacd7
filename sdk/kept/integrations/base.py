"""What instrumentation needs of a client, and how it fails: never into the app.

The integrations take the client as a parameter typed by :class:`GenerationClient`, so
they need nothing of :mod:`kept.client` (and any object with these two members will do,
e.g. a test double).
"""

from __future__ import annotations

import math
from typing import Protocol, cast

from kept.arguments import Message
from kept.stats import LogLimiter

UNKNOWN_MODEL = "unknown"
"""The model logged when neither the response nor the app names one (the event needs one)."""

_limiter: LogLimiter | None = None  # made on the first failure: importing makes nothing


class GenerationClient(Protocol):
    """The part of :class:`kept.Client` that instrumentation uses."""

    def log_generation(
        self,
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
    ) -> str:
        """Record one model call; returns its generation id."""
        ...

    @property
    def debug(self) -> bool:
        """True when kept's own errors should raise instead of being logged."""
        ...


def lets_errors_out(client: GenerationClient) -> bool:
    """The client's own rule: only debug mode lets kept's errors out."""
    return getattr(client, "debug", False) is True


def failed(op: str, error: Exception) -> None:
    """Log that instrumentation's ``op`` failed (rate-limited, only the error's type)."""
    global _limiter
    if _limiter is None:
        _limiter = LogLimiter()
    _limiter.failed(op, error)


def milliseconds(value: float | None) -> int | None:
    """A latency as whole milliseconds for ``log_generation``."""
    if isinstance(value, float) and math.isfinite(value):
        return round(value)
    # An int, None, or something else for the client's own check to refuse.
    return cast("int | None", value)
