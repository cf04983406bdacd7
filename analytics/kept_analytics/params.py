"""Report parameters as they arrive from HTTP query strings or the CLI → a ReportSpec.

One parser for both, so `kept report` and `GET /v1/report` accept exactly the same
inputs and give the same errors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from kept_analytics.report import ReportSpec
from kept_analytics.sequential import DEFAULT_ALPHA
from kept_wire.timespec import parse_instant

Params = Mapping[str, Sequence[str]]


class InvalidQuery(ValueError):
    """A report parameter is wrong; the message says which and how."""


def one(params: Params, name: str) -> str | None:
    values = params.get(name) or ()
    return values[-1] if values else None


def many(params: Params, name: str) -> tuple[str, ...]:
    """Repeated parameters and comma-separated lists both work."""
    return tuple(
        part.strip() for v in params.get(name, ()) for part in v.split(",") if part.strip()
    )


def flag(params: Params, name: str) -> bool:
    """A boolean parameter: true, false, 1 or 0 (absent: false)."""
    value = (one(params, name) or "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidQuery(f"{name} must be true or false")
    return value in ("true", "1")


def scope(params: Params) -> dict[str, Any]:
    """The filters reports and exports share (kept_storage.filters.Scope): project, models,
    prompt versions and `metadata.KEY=VALUE` (the last value of each)."""
    return {
        "project": one(params, "project"),
        "models": many(params, "model"),
        "prompt_versions": many(params, "prompt_version"),
        "metadata": {
            k.removeprefix("metadata."): v[-1]
            for k, v in params.items()
            if k.startswith("metadata.") and v
        },
    }


def check_order(since: datetime | None, until: datetime | None) -> None:
    """A window must not be empty."""
    if since is not None and until is not None and since >= until:
        raise InvalidQuery(
            f"since ({since.isoformat()}) must be before until ({until.isoformat()})"
        )


@contextmanager
def query_errors() -> Iterator[None]:
    """Any error building a spec as one InvalidQuery naming the parameter at fault."""
    try:
        yield
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "query"
        raise InvalidQuery(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None
    except InvalidQuery:
        raise
    except ValueError as exc:
        raise InvalidQuery(str(exc)) from None


def spec_from_params(
    params: Params,
    *,
    threshold: float,
    checkpoints: tuple[int, ...],
    now: datetime | None = None,
) -> ReportSpec:
    """Build the spec; `since` defaults to 7 days ago, `until` to now."""
    known = {"since", "until", "by", "project", "model", "prompt_version", "threshold", "exact"}
    unknown = [k for k in params if k not in known and not k.startswith("metadata.")]
    if unknown:
        raise InvalidQuery(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    now = now or datetime.now(timezone.utc)  # one `now` for both ends of the window
    with query_errors():
        since = parse_instant(one(params, "since") or "7d", now)
        until = parse_instant(one(params, "until") or "now", now)
        raw_threshold = one(params, "threshold")
        exact = flag(params, "exact")
        check_order(since, until)
        return ReportSpec(
            since=since,
            until=until,
            by=many(params, "by"),
            **scope(params),
            threshold=float(raw_threshold) if raw_threshold is not None else threshold,
            checkpoints=checkpoints,
            exact=exact,
        )


ALPHA_RANGE = (1e-6, 0.5)
"""What `alpha` may be (smaller asks for more certainty than any sample here can give)."""


@dataclass(frozen=True)
class CompareOptions:
    """How `kept compare` and `GET /v1/compare` compare: fixed-horizon intervals or
    always-valid confidence sequences, and the error rate."""

    sequential: bool = False
    alpha: float = DEFAULT_ALPHA


def compare_options(params: Params) -> tuple[CompareOptions, dict[str, Sequence[str]]]:
    """`sequential` and `alpha`, and the other parameters (the report's) without them."""
    rest = {k: v for k, v in params.items() if k not in ("sequential", "alpha")}
    raw = one(params, "alpha")
    try:
        alpha = DEFAULT_ALPHA if raw is None else float(raw)
    except ValueError:
        raise InvalidQuery(f"alpha must be a number, not {raw!r}") from None
    low, high = ALPHA_RANGE
    if not (math.isfinite(alpha) and low <= alpha <= high):
        raise InvalidQuery(f"alpha must be between {low:g} and {high:g}")
    return CompareOptions(sequential=flag(params, "sequential"), alpha=alpha), rest
