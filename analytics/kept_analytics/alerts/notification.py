"""What the alert evaluator hands to delivery: one state transition of one alert."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

PAGERDUTY_DEDUP_KEY_MAX = 255
"""Events API v2 refuses a longer `dedup_key`, and the fingerprint is sent as one."""


class Notification(BaseModel):
    """An alert that started firing or resolved. `fingerprint` names the alert (rule and
    group) across its episodes; `started_at` names the episode, so a rule that resolves
    and fires again is a new notification, not a duplicate of the first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str = Field(min_length=1)
    kind: Literal["regression", "threshold"]
    state: Literal["firing", "resolved"]
    severity: Literal["warning", "critical"]
    group: dict[str, str]
    summary: str = Field(min_length=1)
    evidence: dict[str, Any]
    fingerprint: str = Field(min_length=1, max_length=PAGERDUTY_DEDUP_KEY_MAX)
    started_at: AwareDatetime
    at: AwareDatetime
    receivers: tuple[str, ...] = ()
    """Receiver names; empty means every receiver."""

    @field_validator("started_at", "at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _ordered(self) -> Notification:
        if self.at < self.started_at:
            raise ValueError("at must not be before started_at")
        return self

    @property
    def transition_id(self) -> str:
        """Stable id of this transition (alert, episode, state): what delivery dedupes on
        and what a webhook receiver can dedupe on across kept restarts."""
        key = f"{self.fingerprint}\n{self.started_at.isoformat()}\n{self.state}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]
