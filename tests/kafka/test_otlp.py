"""OTLP in Kafka mode: spans and log records are validated at the door, produced to the
event topic like `/v1/events`, and stored by the consumer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_kept, serve_process
from tests.kafka.broker import Broker, read_events, unique
from tests.kafka.test_serve import SHARED_SECRETS, kafka_mode, metric, wait_stored
from tests.otlp.pipelines import exporting_to

pytestmark = pytest.mark.slow


def test_otlp_goes_through_kafka_into_the_store(broker: Broker, data_dir: Path) -> None:
    topic = unique("otlp")
    env = kafka_mode(broker, topic)
    with (
        serve_process(data_dir, None, **env) as server,
        exporting_to(server.url, server.key) as (tracers, loggers),
    ):
        tracer, logger = tracers.get_tracer("app"), loggers.get_logger("app")
        call: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-k1",
            "gen_ai.usage.output_tokens": 3,
        }
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes=call):
            logger.emit(
                event_name="gen_ai.client.inference.operation.details",
                attributes={
                    **call,
                    "gen_ai.output.messages": [
                        {"role": "assistant", "parts": [{"type": "text", "content": "Hi"}]}
                    ],
                },
            )
        with tracer.start_as_current_span("GET /health"):  # not a model call: not produced
            pass
        logger.emit(
            event_name="gen_ai.evaluation.result",
            attributes={
                "gen_ai.response.id": "chatcmpl-k1",
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.9,
                "gen_ai.evaluation.score.label": "relevant",
            },
        )
        logger.emit(
            event_name="kept.feedback",
            attributes={
                "kept.feedback.type": "action",
                "kept.generation_id": "chatcmpl-k1",
                "kept.feedback.name": "accept",
            },
        )
        tracers.force_flush()
        loggers.force_flush()

        found = [event for _, event in read_events(broker, topic, 4, timeout=30)]
        by_type = {(e["type"], e.get("supplement", False)): e for e in found}
        assert len(found) == 4, found
        assert by_type["generation", False]["latency_ms"] >= 0
        assert by_type["generation", True]["output"] == "Hi"
        assert by_type["score", False]["label"] == "relevant"
        assert by_type["action", False]["name"] == "accept"
        assert {e["project"] for e in found} == {"demo"}

        wait_stored(server, 4)
        cli = run_kept("status", "--data", str(data_dir), "--format", "json", **SHARED_SECRETS)
        status = json.loads(cli.stdout)
        assert (status["generations"], status["feedback"]) == (2, 2)
        ignored = 'kept_otlp_records_total{outcome="ignored",signal="traces"}'
        assert metric(server.url, ignored) == 1
