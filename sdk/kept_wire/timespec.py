"""Durations (`15m`, `2h`, `7d`, `1w`) and instants (`now`, `7d` or `now-7d` ago, epoch
milliseconds, ISO 8601): the one time grammar of the CLI, the HTTP parameters and the
built-in dashboard page."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `15m`, `2h`, `1d`, `1w` (decimals allowed) or `0` into a timedelta."""
    value = text.strip().lower()
    if value == "0":
        return timedelta(0)
    match = _DURATION.fullmatch(value)
    try:
        if match:
            return timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    except OverflowError:
        pass
    raise ValueError(
        f"invalid duration {text!r}: use a number with a unit s, m, h, d or w "
        "(e.g. 90s, 15m, 2h, 1d), or 0"
    )


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """`now`; a duration meaning that long ago (`7d`, or Grafana's `now-7d`); epoch
    milliseconds (Grafana's absolute times); or an ISO 8601 date or datetime (UTC when it
    has no zone). Always returns an aware UTC datetime."""
    current = now or datetime.now(timezone.utc)
    value = text.strip()
    ago = value.lower().removeprefix("now-")
    try:
        if value.lower() == "now":
            return current
        if _DURATION.fullmatch(ago):
            return current - parse_duration(ago)
        if value.isascii() and value.isdigit():
            return datetime.fromtimestamp(int(value) / 1000, timezone.utc)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        # OverflowError and OSError: a number of seconds or years the platform cannot hold.
        raise ValueError(
            f"invalid time {text!r}: use now, a duration ago such as 7d or now-6h, epoch "
            "milliseconds, or an ISO 8601 date or datetime (2026-11-01, 2026-11-01T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
