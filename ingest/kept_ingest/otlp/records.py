"""What every OTLP mapping shares: ids, times, the contract check, and the tally."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from kept_ingest.contract import EVENT_ADAPTER, Event

OTLP_NAMESPACE = uuid.UUID("6f9c2f43-3b8a-5b7e-9a61-6b0c1d7e2a10")
"""Event ids of OTLP records are UUIDv5 in this namespace, from what identifies the
record (a span's trace and span ids): a re-sent record gets the same id, so it is
stored once, as a re-sent SDK event is."""
MAX_MESSAGES_IN_ANSWER = 5
"""Rejections described in a partial-success message; the rest are counted."""


class Rejected(ValueError):
    """A record that should become an event but cannot; the message says why."""


def event_id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(OTLP_NAMESPACE, ":".join(parts))


def span_ref(trace_id: bytes, span_id: bytes) -> str | None:
    """`trace-span` in hex, or None when either id is absent or all zeros."""
    if not trace_id.strip(b"\0") or not span_id.strip(b"\0"):
        return None
    return f"{trace_id.hex()}-{span_id.hex()}"


def timestamp(nanos: int) -> datetime:
    """Exact to the microsecond (through a float, a time can be 1 µs off)."""
    seconds = datetime.fromtimestamp(nanos // 10**9, tz=timezone.utc)
    return seconds.replace(microsecond=nanos // 1000 % 10**6)


def validated(fields: dict[str, Any]) -> Event:
    """`fields` as a contract event; Rejected naming the first broken field."""
    try:
        return EVENT_ADAPTER.validate_python({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"][1:]) or "event"
        raise Rejected(f"{where}: {error['msg']}") from None


@dataclass
class Tally:
    """The events made from one request, and what was left out."""

    events: list[Event] = field(default_factory=list)
    rejected: int = 0
    ignored: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, what: str, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < MAX_MESSAGES_IN_ANSWER:
            self.reasons.append(f"{what}: {reason}")

    def message(self) -> str:
        """The partial-success message: the first reasons, and how many more."""
        if not self.rejected:
            return ""
        more = self.rejected - len(self.reasons)
        suffix = f"; and {more} more" if more > 0 else ""
        return f"{self.rejected} record(s) not stored: " + "; ".join(self.reasons) + suffix
