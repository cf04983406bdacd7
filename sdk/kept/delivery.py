"""The delivery policy of the sender thread: what to do with each answer of the sink.

Two small pieces, composed by the worker (and wrapped by :mod:`kept.spooling`):

- :class:`Retrying` sends a part again, on the backoff curve, until the sink gives a
  final answer (transient failures: overload, server errors, the network);
- :class:`Delivery` settles every event of a batch by that answer: sent; split in halves
  when the batch is too large; the events the sink rejects dropped and the rest resent;
  all dropped when the key is refused or the refusal is permanent.

Every event ends up counted through the ``settle`` function it is given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from kept_wire.backoff import BACKOFF_BASE, BACKOFF_CAP, backoff_delay

from .stats import Counter, LogLimiter, Stats
from .transports.base import Outcome, SendResult, Transport

logger = logging.getLogger("kept")

Settle = Callable[[int, Counter], None]
"""Counts ``n`` events as settled under a counter (``sent``, ``dropped_invalid``...)."""
Send = Callable[[list[bytes]], SendResult | None]
"""Sends one part; None when the part was taken care of otherwise (spooled)."""


class Context(Protocol):
    """The worker that runs a delivery policy, as the policy sees it."""

    @property
    def abandoned(self) -> bool:
        """True once close gave up: stop, send and count nothing more."""
        ...

    def pause(self, delay: float, *, hard: bool) -> bool:
        """Wait ``delay`` s, or less when a flush asks (unless ``hard``); False when abandoned."""
        ...


def retry_delay(attempt: int) -> float:
    """Seconds before retry number ``attempt``, on the one backoff curve (kept_wire.backoff)."""
    return backoff_delay(attempt, BACKOFF_BASE, BACKOFF_CAP)


class Retrying:
    """Sends a part until the sink's answer is final, pausing on the backoff curve."""

    def __init__(
        self, transport: Transport, stats: Stats, limiter: LogLimiter, context: Context
    ) -> None:
        self._transport = transport
        self._stats = stats
        self._limiter = limiter
        self._context = context

    def send_once(self, part: list[bytes]) -> SendResult:
        """One attempt; a transport that raises counts as an ``errors`` and a RETRY."""
        try:
            return self._transport.send(part)
        except Exception as exc:
            self._stats.add("errors")
            return SendResult(Outcome.RETRY, detail=f"transport error: {type(exc).__name__}")

    def send(
        self, part: list[bytes], give_up: Callable[[float], bool] | None = None
    ) -> SendResult | None:
        """Send ``part`` until the outcome is not RETRY.

        After each failed attempt ``give_up(failing_since)`` (a monotonic time) may end the
        attempts: then None. Once close gave up, the last RETRY is returned.
        """
        attempt = 0
        failing_since = time.monotonic()
        while True:
            result = self.send_once(part)
            if result.outcome is not Outcome.RETRY:
                return result
            if give_up is not None and give_up(failing_since):
                return None
            attempt += 1
            self._stats.add("retries")
            delay = retry_delay(attempt)
            if result.retry_after is not None:
                delay = max(delay, result.retry_after)
            self._limiter.log(
                logging.WARNING,
                "retry",
                "kept: the sink is unavailable (%s); retrying in %.1f s",
                result.detail,
                delay,
            )
            if not self._context.pause(delay, hard=result.retry_after is not None):
                return result


class Delivery:
    """Settles each event of a batch by the sink's answer, splitting and trimming parts."""

    def __init__(self, stats: Stats, limiter: LogLimiter, context: Context) -> None:
        self._stats = stats
        self._limiter = limiter
        self._context = context
        self._unauthorized_logged = False

    def deliver(self, events: list[bytes], send: Send, settle: Settle) -> bool:
        """Send ``events`` part by part with ``send`` until each is settled.

        A RETRY that reaches here means ``send`` gave up (a replay of spooled events, or
        close): the unsent parts are left as they are and the result is False.
        """
        parts = [events] if events else []
        while parts:
            part = parts.pop()
            result = send(part)
            if result is None:  # spooled
                if self._context.abandoned:
                    return True
                continue
            outcome = result.outcome
            if outcome is Outcome.RETRY:
                return False
            if outcome is Outcome.SENT:
                settle(len(part), "sent")
            elif outcome is Outcome.REJECTED:
                rest = self._drop_rejected(part, result, settle)
                if rest:
                    parts.append(rest)
            elif outcome is Outcome.TOO_LARGE:
                if len(part) == 1:
                    settle(1, "dropped_invalid")
                    self._limiter.log(
                        logging.WARNING,
                        "too_large",
                        "kept: an event is too large for the sink (%s) and was dropped",
                        result.detail,
                    )
                else:
                    half = len(part) // 2
                    parts.append(part[half:])
                    parts.append(part[:half])
            elif outcome is Outcome.UNAUTHORIZED:
                settle(len(part), "dropped_unauthorized")
                if not self._unauthorized_logged:
                    self._unauthorized_logged = True
                    logger.error(
                        "kept: the sink refused the API key (%s); check KEPT_API_KEY. "
                        "Events are dropped while it is refused.",
                        result.detail,
                    )
            else:
                settle(len(part), "dropped_rejected")
                self._limiter.log(
                    logging.ERROR,
                    "fatal",
                    "kept: the sink refused a batch (%s); %d events dropped",
                    result.detail,
                    len(part),
                )
        return True

    def _drop_rejected(self, part: list[bytes], result: SendResult, settle: Settle) -> list[bytes]:
        bad = {r.index for r in result.rejections if 0 <= r.index < len(part)}
        if not bad:  # nothing identifiable: resending the same batch would loop
            bad = set(range(len(part)))
        settle(len(bad), "dropped_invalid")
        for rejection in result.rejections[:3]:
            self._limiter.log(
                logging.WARNING,
                f"invalid:{rejection.field}",
                "kept: the sink rejected an event (field %r: %s); it was dropped",
                rejection.field,
                rejection.message[:200],
            )
        return [event for i, event in enumerate(part) if i not in bad]
