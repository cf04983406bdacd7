"""Durations (`15m`, `2h`, `7d`, `1w`) and instants (`now`, `7d` or `now-7d` ago, epoch
milliseconds, ISO 8601): the one time grammar of the CLI, the HTTP parameters and the
built-in dashboard page.

Both parsers are total: every input gives a value or a ValueError, never another
exception. Instants are bounded to what every time column of the store can hold (a
ClickHouse `DateTime` holds 1970 to early 2106), so a query never fails on its window.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

# ASCII digits only: `\d` would also take other scripts' digits (`٣`).
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])", re.ASCII)
_EPOCH_MS = re.compile(r"[0-9]{1,20}", re.ASCII)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST_INSTANT = datetime(2106, 1, 1, tzinfo=timezone.utc)
"""The range of instants the grammar accepts (both included)."""


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
        pass  # longer than a timedelta holds: refused below like any bad duration
    raise ValueError(
        f"invalid duration {text!r}: use a number with a unit s, m, h, d or w "
        "(e.g. 90s, 15m, 2h, 1d), or 0"
    )


def _parse(value: str, current: datetime) -> datetime:
    ago = value.lower().removeprefix("now-")
    if value.lower() == "now":
        return current
    if _DURATION.fullmatch(ago):
        return current - parse_duration(ago)
    if _EPOCH_MS.fullmatch(value):
        return datetime.fromtimestamp(int(value) / 1000, timezone.utc)
    if not value.isascii():
        raise ValueError("not ASCII")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """`now`; a duration meaning that long ago (`7d`, or Grafana's `now-7d`); epoch
    milliseconds (Grafana's absolute times); or an ISO 8601 date or datetime (UTC when it
    has no zone). Always returns an aware UTC datetime between EARLIEST_INSTANT and
    LATEST_INSTANT; anything else raises ValueError."""
    current = now or datetime.now(timezone.utc)
    try:
        moment = _parse(text.strip(), current)
    except (ValueError, OverflowError, OSError):
        # OverflowError and OSError: a number of seconds or years the platform cannot hold.
        raise ValueError(
            f"invalid time {text[:64]!r}: use now, a duration ago such as 7d or now-6h, epoch "
            "milliseconds, or an ISO 8601 date or datetime (2026-11-01, 2026-11-01T12:00:00Z)"
        ) from None
    if not EARLIEST_INSTANT <= moment <= LATEST_INSTANT:
        raise ValueError(
            f"time {text[:64]!r} is out of range: use a time from "
            f"{EARLIEST_INSTANT:%Y-%m-%d} to {LATEST_INSTANT:%Y-%m-%d}"
        )
    return moment
