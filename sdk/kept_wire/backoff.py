"""The one retry schedule: the SDK's sender and the Kafka consumer wait on the same curve."""

from __future__ import annotations

import random

BACKOFF_BASE = 0.5
"""Seconds before the first retry."""
BACKOFF_CAP = 30.0
"""The longest wait between two attempts."""


def backoff_delay(attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): about base * 2**(attempt-1),
    capped, with jitter (half to all of it), so that many clients do not retry in step."""
    delay = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 32))
    return delay * random.uniform(0.5, 1.0)
