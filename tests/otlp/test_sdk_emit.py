"""`kept.otel.emit_feedback`: the SDK's way for an OpenTelemetry-only app to send what
users did, through the app's own logger provider, into kept's `/v1/logs`."""

from __future__ import annotations

import logging

import pytest

from kept.otel import emit_feedback, feedback_attributes
from tests.helpers import InProcessServer
from tests.otlp.pipelines import exporting_to


def test_each_kind_of_feedback_is_stored(server: InProcessServer) -> None:
    with exporting_to(server.url, server.key) as (_, loggers):
        sent = [
            emit_feedback("vote", "chatcmpl-1", value=-1, comment="wrong date", provider=loggers),
            emit_feedback("action", "chatcmpl-1", name="accept", provider=loggers),
            emit_feedback("correction", "chatcmpl-1", text="The 3rd of May.", provider=loggers),
            emit_feedback(
                "survival",
                "chatcmpl-1",
                value=0.75,
                checkpoint_s=30,
                user_id="u-1",
                provider=loggers,
            ),
        ]
    assert sent == [True] * 4
    rows = server.runtime.store.rows(
        "SELECT type, name, value, text, comment, checkpoint_s, user_id FROM feedback "
        "WHERE generation_id = 'chatcmpl-1' ORDER BY type"
    )
    assert rows == [
        ("vote", "", -1.0, "", "wrong date", 0, ""),
        ("action", "accept", None, "", "", 0, ""),
        ("correction", "", None, "The 3rd of May.", "", 0, ""),
        ("survival", "", 0.75, "", "", 30, "u-1"),
    ]


def test_an_event_id_makes_a_resent_event_stored_once(server: InProcessServer) -> None:
    key = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    with exporting_to(server.url, server.key) as (_, loggers):
        for _ in range(2):
            emit_feedback("action", "chatcmpl-2", name="copy", event_id=key, provider=loggers)
    assert server.count("feedback", "generation_id = 'chatcmpl-2'") == 1


def test_a_wrong_kind_emits_nothing_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="kept"):
        assert emit_feedback("thumbs", "chatcmpl-3") is False
        assert emit_feedback("vote", "chatcmpl-3", colour="red") is False
    assert "kind must be one of" in caplog.text
    assert "colour" in caplog.text
    with pytest.raises(ValueError, match="kind must be one of"):
        feedback_attributes("thumbs", "chatcmpl-3")
