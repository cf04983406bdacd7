"""What to export: the ExportSpec, and its parser for HTTP query strings and the CLI.

One parser for both, so `kept export` and `GET /v1/export` accept the same inputs and
give the same errors (as `kept report` and `GET /v1/report` do).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kept_analytics.params import (
    InvalidQuery,
    Params,
    check_order,
    one,
    query_errors,
    scope,
)
from kept_wire.contract import KEPT_THRESHOLD_DEFAULT
from kept_wire.export import Format
from kept_wire.timespec import parse_instant

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


class ExportSpec(BaseModel):
    """Which generations to export, in which format, and how to shape the set.

    Feedback filters left unset (`accepted`, `vote`, `corrected`, `kept_at`,
    `min_scores`) mean the default endorsement: see `query.ENDORSED`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Format = "openai-chat"
    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None
    models: tuple[str, ...] = ()
    prompt_versions: tuple[str, ...] = ()
    metadata: dict[str, str] = Field(default_factory=dict)
    accepted: bool | None = None
    vote: Literal[1, -1] | None = None
    corrected: bool | None = None
    kept_at: int | None = Field(
        None, ge=0, le=2**32 - 1, description="checkpoint (s): kept at T (a UInt32 in SQL)"
    )
    threshold: float = Field(KEPT_THRESHOLD_DEFAULT, ge=0.0, le=1.0)
    min_scores: dict[str, float] = Field(default_factory=dict)
    dpo_form: Literal["conversational", "standard"] = "conversational"
    dedup: bool = True
    sample: float = Field(1.0, gt=0.0, le=1.0)
    limit: int | None = Field(None, ge=0)
    split: float | None = Field(None, gt=0.0, lt=1.0, description="share that goes to train")
    redact: bool = True

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    @field_validator("min_scores", "metadata")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"invalid name {name!r}")
        return value

    def filters_feedback(self) -> bool:
        """Whether the caller chose feedback filters (else the default endorsement holds)."""
        return (
            self.accepted is not None
            or self.vote is not None
            or self.corrected is not None
            or self.kept_at is not None
            or bool(self.min_scores)
        )


_KNOWN = {
    "format", "since", "until", "project", "model", "prompt_version", "accepted", "vote",
    "corrected", "kept_at", "threshold", "min_score", "dpo_form", "dedup", "sample", "limit",
    "split", "redact",
}  # fmt: skip


def _bool(params: Params, name: str) -> bool | None:
    raw = one(params, name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise InvalidQuery(f"{name} must be true or false, not {raw!r}")


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidQuery(f"{what} takes NAME=VALUE, not {item!r}")
        out[key.strip()] = value.strip()
    return out


def _number(raw: str, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidQuery(f"{what} must be a number, not {raw!r}")
    return value


def _vote(raw: str | None) -> Literal[1, -1] | None:
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in ("up", "1", "+1"):
        return 1
    if value in ("down", "-1"):
        return -1
    raise InvalidQuery(f"vote must be up or down, not {raw!r}")


def spec_from_params(
    params: Params,
    *,
    threshold: float,
    extra: tuple[str, ...] = (),
    now: datetime | None = None,
) -> ExportSpec:
    """Build the spec from parameters named as over HTTP; `extra` names are ignored here
    (the caller's own). The window defaults to everything up to now."""
    unknown = [k for k in params if k not in _KNOWN and k not in extra]
    unknown = [k for k in unknown if not k.startswith("metadata.")]
    if unknown:
        raise InvalidQuery(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    now = now or datetime.now(timezone.utc)  # one `now` for both ends of the window
    with query_errors():
        since_raw, until_raw = one(params, "since"), one(params, "until")
        since = parse_instant(since_raw, now) if since_raw else None
        until = parse_instant(until_raw, now) if until_raw else None
        check_order(since, until)
        min_scores = {
            k: _number(v, f"min_score {k}")
            for k, v in _pairs(params.get("min_score", ()), "min_score").items()
        }
        raw_threshold, kept_at = one(params, "threshold"), one(params, "kept_at")
        sample, limit, split = one(params, "sample"), one(params, "limit"), one(params, "split")
        redact = one(params, "redact")
        if redact not in (None, "default", "none"):
            raise InvalidQuery("redact must be default or none (custom hooks run in the CLI)")
        return ExportSpec(
            format=one(params, "format") or "openai-chat",
            since=since,
            until=until,
            **scope(params),
            accepted=_bool(params, "accepted"),
            vote=_vote(one(params, "vote")),
            corrected=_bool(params, "corrected"),
            kept_at=int(kept_at) if kept_at is not None else None,
            threshold=float(raw_threshold) if raw_threshold is not None else threshold,
            min_scores=min_scores,
            dpo_form=one(params, "dpo_form") or "conversational",
            dedup=_bool(params, "dedup") is not False,
            sample=float(sample) if sample is not None else 1.0,
            limit=int(limit) if limit is not None else None,
            split=float(split) if split is not None else None,
            redact=redact != "none",
        )
