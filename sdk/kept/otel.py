"""User feedback as OpenTelemetry log events, for an app that sends everything over OTel.

An app whose model calls already reach kept as GenAI spans can send what users did the
same way, through the logger provider it configured (an OTLP exporter pointed at kept)::

    from kept.otel import emit_feedback
    emit_feedback("action", response.id, name="accept")
    emit_feedback("vote", response.id, value=-1, comment="wrong date")

Each call emits one `kept.feedback` event (attributes in kept_wire.otel). It needs the
`opentelemetry-api` package, which kept itself does not install; without it, or when the
arguments are not a feedback event, the call logs a warning and emits nothing: as with
the client's calls, nothing here raises into the app.
"""

from __future__ import annotations

import logging
from typing import Any

from kept_wire import otel

logger = logging.getLogger("kept")


def feedback_attributes(
    kind: str,
    generation_id: str,
    *,
    value: float | str | None = None,
    name: str | None = None,
    text: str | None = None,
    comment: str | None = None,
    checkpoint_s: int | None = None,
    event_id: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    """The attributes of one `kept.feedback` event (ValueError for an unknown `kind`)."""
    if kind not in otel.FEEDBACK_TYPES:
        raise ValueError(f"kind must be one of {', '.join(otel.FEEDBACK_TYPES)}, not {kind!r}")
    attributes = {
        otel.TYPE: kind,
        otel.GENERATION_ID: generation_id,
        otel.VALUE: value,
        otel.NAME: name,
        otel.TEXT: text,
        otel.COMMENT: comment,
        otel.CHECKPOINT_S: checkpoint_s,
        otel.EVENT_ID: event_id,
        otel.USER_ID: user_id,
        otel.SESSION_ID: session_id,
    }
    return {key: v for key, v in attributes.items() if v is not None}


def emit_feedback(kind: str, generation_id: str, *, provider: Any = None, **fields: Any) -> bool:
    """Emit a `kept.feedback` event through `provider` (an OpenTelemetry LoggerProvider;
    default: the global one the app set); the fields are `feedback_attributes`'. True
    when it was handed to OpenTelemetry."""
    try:
        attributes = feedback_attributes(kind, generation_id, **fields)
        from opentelemetry._logs import get_logger_provider  # the app's, not kept's
    except ImportError:
        logger.warning("kept.otel needs the opentelemetry-api package; nothing was emitted")
        return False
    except (TypeError, ValueError) as exc:
        logger.warning("kept.otel: no feedback event emitted: %s", exc)
        return False
    loggers = provider if provider is not None else get_logger_provider()
    loggers.get_logger("kept").emit(event_name=otel.FEEDBACK_EVENT, attributes=attributes)
    return True
