"""What every transport shares: the :class:`Transport` protocol and its :class:`SendResult`.

A transport sends one batch and reports what happened; it never sleeps, retries or
counts: the worker's delivery policy owns that (:mod:`kept.delivery`, :mod:`kept.spooling`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Outcome(enum.Enum):
    """What the sink did with a batch."""

    SENT = "sent"
    """Every event was accepted."""
    RETRY = "retry"
    """Transient failure (overload, server error, network); nothing was stored."""
    REJECTED = "rejected"
    """The events in ``rejections`` are invalid; nothing was stored; resend the rest."""
    TOO_LARGE = "too_large"
    """The batch is too big for the sink; nothing was stored; send it in smaller parts."""
    UNAUTHORIZED = "unauthorized"
    """The API key was refused; retrying will not help."""
    FATAL = "fatal"
    """Any other permanent refusal; retrying will not help."""


@dataclass(frozen=True)
class Rejection:
    """One invalid event of a batch, as the sink explained it."""

    index: int
    field: str
    message: str


@dataclass(frozen=True)
class SendResult:
    """The result of :meth:`Transport.send`.

    ``retry_after`` is the delay the sink asked for (seconds) when it gave one;
    ``detail`` is a short, payload-free description for logs.
    """

    outcome: Outcome
    retry_after: float | None = None
    rejections: tuple[Rejection, ...] = ()
    detail: str = ""


class Transport(Protocol):
    """Sends batches of JSON-encoded events (one ``bytes`` object per event)."""

    def send(self, events: Sequence[bytes]) -> SendResult:
        """Send one batch; called only from the worker thread. Should not raise."""
        ...

    def reset(self) -> None:
        """Forget connection state inherited through ``os.fork()``; reconnect lazily."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
