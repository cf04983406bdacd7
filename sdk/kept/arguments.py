"""The types the app passes to the SDK, the cheap checks on its arguments, and the
estimate of what an accepted event costs in memory while it waits in the queue.

They run on the app's thread, so each is a few type tests; what an event looks like on
the wire is :mod:`kept_wire.encoding`'s business.
"""

from __future__ import annotations

import math
from typing import Literal

from kept_wire import contract

Message = dict[str, str]
ScoreSource = Literal["human", "llm", "code"]

SCORE_SOURCES = frozenset(contract.SCORE_SOURCES)

RECORD_OVERHEAD = 256
"""Bytes a queued record takes besides its texts (the tuple, its fields, small values)."""


def text_size(value: object) -> int:
    """Characters of a text or of a list of messages' contents (a cheap memory estimate)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        total = 0
        for message in value:
            content = message.get("content") if isinstance(message, dict) else None
            total += len(content) if isinstance(content, str) else RECORD_OVERHEAD
        return total
    return 0


class InvalidArgumentError(ValueError):
    """Raised (in debug mode only) for an argument the SDK drops as invalid."""


def str_or_none(value: object) -> bool:
    return value is None or isinstance(value, str)


def is_name(value: object) -> bool:
    return isinstance(value, str) and value != ""


def count_or_none(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_string_map(value: dict[str, str]) -> bool:
    # A loop rather than all(...): no generator on the hot path, twice as fast.
    for key, item in value.items():  # noqa: SIM110
        if not (isinstance(key, str) and isinstance(item, str)):
            return False
    return True
