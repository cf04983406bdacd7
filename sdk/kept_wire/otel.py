"""kept's OpenTelemetry event for user feedback: its name and attributes (README,
"OpenTelemetry"). The server reads them on `/v1/logs`; the SDK's `kept.otel` emits them."""

from __future__ import annotations

FEEDBACK_EVENT = "kept.feedback"
FEEDBACK_TYPES = ("vote", "action", "correction", "survival")

TYPE = "kept.feedback.type"
GENERATION_ID = "kept.generation_id"
VALUE = "kept.feedback.value"
NAME = "kept.feedback.name"
TEXT = "kept.feedback.text"
COMMENT = "kept.feedback.comment"
CHECKPOINT_S = "kept.feedback.checkpoint_s"
EVENT_ID = "kept.event_id"
USER_ID = "user.id"
SESSION_ID = "session.id"
