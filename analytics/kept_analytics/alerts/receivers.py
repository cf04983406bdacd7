"""Where alert notifications go, as the rules file declares them under `receivers:`, and
the HTTP request each kind of receiver gets for a notification.

Secrets never sit in the file: a webhook's signing secret (and, if wished, PagerDuty's
routing key) is read from the environment variable the file names, once, at load.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator

from kept_analytics.alerts.notification import Notification

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
PAGERDUTY_SUMMARY_MAX = 1024
"""Events API v2 refuses a longer `payload.summary`."""
SIGNATURE_HEADER = "X-Kept-Signature"
TIMESTAMP_HEADER = "X-Kept-Timestamp"
NOTIFICATION_ID_HEADER = "X-Kept-Notification-Id"
RECEIVER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Names go into metric labels and log lines: short, no spaces."""
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
SLACK_COLOURS = {"critical": "#e01e5a", "warning": "#ecb22e", "resolved": "#2eb67d"}


@dataclass(frozen=True)
class OutboundRequest:
    """One POST to a receiver."""

    url: str
    body: bytes
    headers: Mapping[str, str]


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `X-Kept-Signature` value: `sha256=` and the hex HMAC-SHA256, keyed with the
    secret, of the `X-Kept-Timestamp` value (decimal Unix seconds), a `.`, and the raw body.
    Signing the timestamp lets a receiver refuse old requests replayed with their signature."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _json(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _from_env(variable: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        raise ValueError(f"the environment variable {variable} is not set or is empty")
    return value


class _Receiver(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=RECEIVER_NAME)
    url: str
    timeout_s: float = Field(5.0, gt=0, le=60)
    """Per socket operation of one attempt (connect, send, each read)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        parts.port  # noqa: B018  (raises ValueError for a malformed port, now not at send)
        return value

    def request(self, notification: Notification, now: float) -> OutboundRequest:
        """The POST that delivers `notification`, built afresh for each attempt at `now`
        (Unix seconds)."""
        raise NotImplementedError


class WebhookReceiver(_Receiver):
    """Any HTTP endpoint: the notification as JSON, signed with a shared secret."""

    kind: Literal["webhook"]
    secret_env: str = Field(pattern=ENV_NAME)
    """The environment variable that holds the signing secret."""
    _secret: bytes = PrivateAttr(b"")

    secret: None = Field(None, exclude=True, repr=False)
    """Refused: present only so that a secret written into the file gets an error
    saying where it belongs."""

    @field_validator("secret", mode="before")
    @classmethod
    def _no_secret_in_file(cls, value: object) -> None:
        raise ValueError(
            "the secret must not be in the file: put it in an environment variable "
            "and name that variable in secret_env"
        )

    @field_validator("secret_env")
    @classmethod
    def _secret_set(cls, value: str) -> str:
        _from_env(value)
        return value

    def model_post_init(self, context: Any) -> None:
        self._secret = _from_env(self.secret_env).encode()

    def request(self, notification: Notification, now: float) -> OutboundRequest:
        body = notification.model_dump_json().encode()
        timestamp = int(now)
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            NOTIFICATION_ID_HEADER: notification.transition_id,
        }
        return OutboundRequest(self.url, body, headers)


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (links, mentions): escaped, they show as typed.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackReceiver(_Receiver):
    """A Slack incoming webhook: a text line, and an attachment coloured by severity
    (red critical, amber warning, green once resolved) with the alert's group."""

    kind: Literal["slack"]

    def request(self, notification: Notification, now: float) -> OutboundRequest:
        n = notification
        rule, summary = _slack_escape(n.rule), _slack_escape(n.summary)
        if n.state == "resolved":
            text = f":white_check_mark: Resolved: {rule}: {summary}"
            colour = SLACK_COLOURS["resolved"]
            when = f"firing since {n.started_at.isoformat()}, resolved at {n.at.isoformat()}"
        else:
            text = f":rotating_light: Firing ({n.severity}): {rule}: {summary}"
            colour = SLACK_COLOURS[n.severity]
            when = f"firing since {n.started_at.isoformat()}"
        section: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        fields = [
            {"type": "mrkdwn", "text": f"*{_slack_escape(k)}*\n{_slack_escape(v)}"}
            for k, v in sorted(n.group.items())
        ]
        if fields:
            section["fields"] = fields[:10]  # Slack refuses a section with more than 10
        context = {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"kept {n.kind} alert, {when}"}],
        }
        attachment = {"color": colour, "fallback": text, "blocks": [section, context]}
        body = _json({"text": text, "attachments": [attachment]})
        return OutboundRequest(self.url, body, {"Content-Type": "application/json"})


class PagerDutyReceiver(_Receiver):
    """PagerDuty Events API v2: firing triggers and resolved resolves the alert whose
    `dedup_key` is the notification's fingerprint (PagerDuty dedupes on it too)."""

    kind: Literal["pagerduty"]
    url: str = PAGERDUTY_EVENTS_URL
    routing_key: str | None = Field(None, min_length=1, repr=False)
    _routing_key: str = PrivateAttr("")

    routing_key_env: str | None = Field(None, pattern=ENV_NAME, validate_default=True)

    @field_validator("routing_key_env")
    @classmethod
    def _one_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Checked here, not on the model, so that the error names a field. A routing_key
        # that failed its own checks is absent from info.data: nothing more to say then.
        if "routing_key" in info.data and (info.data["routing_key"] is None) == (value is None):
            raise ValueError("set either routing_key or routing_key_env (exactly one)")
        if value is not None:
            _from_env(value)
        return value

    def model_post_init(self, context: Any) -> None:
        env = self.routing_key_env
        self._routing_key = self.routing_key or (_from_env(env) if env else "")

    def request(self, notification: Notification, now: float) -> OutboundRequest:
        n = notification.model_dump(mode="json")  # evidence and times as JSON values
        event = {
            "routing_key": self._routing_key,
            "event_action": "trigger" if n["state"] == "firing" else "resolve",
            "dedup_key": n["fingerprint"],
            "client": "kept",
            "payload": {
                "summary": n["summary"][:PAGERDUTY_SUMMARY_MAX],
                "source": "kept",
                "severity": n["severity"],
                "timestamp": n["at"],
                "component": n["rule"],
                "group": ",".join(f"{k}={v}" for k, v in sorted(n["group"].items())),
                "class": n["kind"],
                "custom_details": n["evidence"],
            },
        }
        return OutboundRequest(self.url, _json(event), {"Content-Type": "application/json"})


ReceiverConfig = Annotated[
    WebhookReceiver | SlackReceiver | PagerDutyReceiver, Field(discriminator="kind")
]
"""One entry of the rules file's `receivers:` list; `kind` picks the model."""
RECEIVER_KINDS = ("webhook", "slack", "pagerduty")
"""The values of `kind` (the tags pydantic puts in an error's location)."""
