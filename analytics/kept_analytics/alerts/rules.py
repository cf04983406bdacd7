"""Alert rules as code: the YAML file (`KEPT_ALERT_RULES`, `--rules`) and its models.

Two kinds of rules. `regression`: each candidate group (`by: prompt_version` or `model`)
against its baseline, with an always-valid sequential test at level `alpha`, so looking
every few seconds does not inflate false alarms. `threshold`: a metric over a window
below or above a warning and a critical level, with a minimum sample and a policy for
no data. A bad file is refused whole, with errors naming the rule and the field.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kept_analytics.alerts.receivers import RECEIVER_KINDS, ReceiverConfig
from kept_wire.contract import PROJECT_PATTERN
from kept_wire.timespec import parse_duration

METRIC = re.compile(
    r"^(acceptance_rate|vote_score|correction_rate|kept_rate\[([1-9][0-9]{0,6})\])$"
)
"""The proportions a rule can watch: `kept_rate[300]` is the kept rate at checkpoint 300 s."""
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
Severity = Literal["warning", "critical"]
_RULE_KINDS = ("regression", "threshold")


class RuleError(ValueError):
    """The rules file cannot be used; the message names every rule and field at fault."""


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(str(value))


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=_NAME)
    metric: str
    project: str | None = Field(None, pattern=PROJECT_PATTERN)
    models: tuple[str, ...] = ()
    prompt_versions: tuple[str, ...] = ()
    metadata: dict[str, str] = Field(default_factory=dict)
    for_: timedelta = Field(timedelta(minutes=5), alias="for")
    """How long the condition must hold before the alert fires (pending until then)."""
    receivers: tuple[str, ...] = ()
    """Receiver names to notify; empty: every receiver of the file."""

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if not METRIC.match(value):
            raise ValueError(
                "use acceptance_rate, vote_score, correction_rate or kept_rate[SECONDS]"
            )
        return value

    @field_validator("for_", mode="before")
    @classmethod
    def _parse_for(cls, value: Any) -> timedelta:
        return _duration(value)


class RegressionRule(_Rule):
    """Each candidate against its baseline; fires when the candidate is worse with an
    always-valid test at level `alpha`."""

    kind: Literal["regression"]
    by: Literal["prompt_version", "model"]
    baseline: str = "previous"
    """`previous`: the version of the same prompt (before `@`) first seen before the
    candidate; for models, the model seen the most; or a named version or model."""
    alpha: float = Field(0.05, gt=0, lt=0.5)
    lookback: timedelta = timedelta(days=7)
    """Candidates first seen within this; each compared over the time since it appeared."""
    severity: Severity = "warning"

    @field_validator("lookback", mode="before")
    @classmethod
    def _parse_lookback(cls, value: Any) -> timedelta:
        return _duration(value)


class ThresholdRule(_Rule):
    """A metric over the last `window` below or above a warning and a critical level."""

    kind: Literal["threshold"]
    by: Literal["project", "model", "prompt_version"] | None = None
    window: timedelta = timedelta(hours=1)
    warning_below: float | None = Field(None, ge=0, le=1)
    critical_below: float | None = Field(None, ge=0, le=1)
    warning_above: float | None = Field(None, ge=0, le=1)
    critical_above: float | None = Field(None, ge=0, le=1)
    min_generations: int = Field(0, ge=0)
    """Fewer trials than this (generations, votes or measured survivals) is no data."""
    no_data: Literal["ok", "keep", "alerting"] = "ok"
    """With no data: resolve (`ok`), leave the state as it is (`keep`), or alert."""

    @field_validator("window", mode="before")
    @classmethod
    def _parse_window(cls, value: Any) -> timedelta:
        return _duration(value)

    @model_validator(mode="after")
    def _levels(self) -> ThresholdRule:
        below = (self.warning_below, self.critical_below)
        above = (self.warning_above, self.critical_above)
        if all(v is None for v in below + above):
            raise ValueError("give at least one of warning_below, critical_below, "
                             "warning_above, critical_above")  # fmt: skip
        if None not in below and below[1] > below[0]:  # type: ignore[operator]
            raise ValueError("critical_below must not be above warning_below")
        if None not in above and above[1] < above[0]:  # type: ignore[operator]
            raise ValueError("critical_above must not be below warning_above")
        return self

    def severity_of(self, value: float) -> Severity | None:
        """The level `value` reaches, or None when it is within bounds."""
        if (self.critical_below is not None and value < self.critical_below) or (
            self.critical_above is not None and value > self.critical_above
        ):
            return "critical"
        if (self.warning_below is not None and value < self.warning_below) or (
            self.warning_above is not None and value > self.warning_above
        ):
            return "warning"
        return None


Rule = Annotated[Union[RegressionRule, ThresholdRule], Field(discriminator="kind")]  # noqa: UP007


class RuleFile(BaseModel):
    """What a rules file holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    receivers: tuple[ReceiverConfig, ...] = ()
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _names(self) -> RuleFile:
        for what, names in (
            ("rule", [r.name for r in self.rules]),
            ("receiver", [r.name for r in self.receivers]),
        ):
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"{what} name {', '.join(map(repr, repeated))} used twice")
        known = {r.name for r in self.receivers}
        for rule in self.rules:
            unknown = [name for name in rule.receivers if name not in known]
            if unknown:
                raise ValueError(f"rule {rule.name!r}: unknown receiver {', '.join(unknown)}")
        return self


def parse_rules(text: str, source: str = "rules") -> RuleFile:
    """Rules from YAML text; RuleError naming each rule and field at fault."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"{source}: not YAML: {exc}") from None
    if not isinstance(data, dict) or "rules" not in data:
        raise RuleError(f"{source}: expected a mapping with a `rules:` list")
    try:
        return RuleFile.model_validate(data)
    except ValidationError as exc:
        raise RuleError(
            f"{source}: " + "; ".join(_describe(e, data) for e in exc.errors())
        ) from None


def load_rules(path: Path) -> RuleFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"cannot read the rules file {path}: {exc.strerror}") from None
    return parse_rules(text, str(path))


def _describe(error: Any, data: dict[str, Any]) -> str:
    """`rule 'low-acceptance' (rules[1]) field window: invalid duration ...`."""
    loc = list(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] in ("rules", "receivers") and isinstance(loc[1], int):
        section, index = loc[0], loc[1]
        items = data.get(section) or []
        item = items[index] if index < len(items) and isinstance(items[index], dict) else {}
        # pydantic names the union's branch in the location: not a field.
        rest = [p for p in loc[2:] if p not in _RULE_KINDS + RECEIVER_KINDS]
        what = "rule" if section == "rules" else "receiver"
        field = ".".join(map(str, rest)) or "kind"
        return f"{what} {item.get('name', '?')!r} ({section}[{index}]) field {field}: {message}"
    return f"{'.'.join(map(str, loc)) or 'file'}: {message}"
