"""`kept serve` with KEPT_KAFKA: the intake produces to Kafka and the server consumes it."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import ServeProcess, feedback, generation, http, run_kept, serve_process
from tests.kafka.broker import Broker, read_events, unique

pytestmark = pytest.mark.slow

SHARED_SECRETS = {
    "KEPT_ADMIN_TOKEN": "an-admin-token-for-kafka-mode",
    "KEPT_FEEDBACK_SECRET": "a-feedback-secret-for-kafka-mode",
}
"""Kafka mode refuses to start without them (replicas share them)."""


def metric(url: str, name: str) -> float:
    text = str(http("GET", url + "/metrics").body)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def wait_stored(server: ServeProcess, events: int) -> None:
    """Until the server's consumer has inserted `events` events (a minute at most)."""
    deadline = time.monotonic() + 60
    while metric(server.url, "kept_consumer_events_inserted_total") < events:
        assert time.monotonic() < deadline, "not stored:\n" + "".join(server.output)
        time.sleep(0.1)


def kafka_mode(broker: Broker, topic: str) -> dict[str, str]:
    """`kept serve`'s environment in Kafka mode: a topic and group of the test's own."""
    return {
        "KEPT_KAFKA": broker.bootstrap,
        "KEPT_KAFKA_TOPIC": topic,
        "KEPT_KAFKA_GROUP": unique("g"),
        "KEPT_KAFKA_BATCH_MAX_MS": "100",
        **SHARED_SECRETS,
    }


def test_intake_goes_through_kafka_into_the_store(broker: Broker, data_dir: Path) -> None:
    topic = unique("serve")
    env = kafka_mode(broker, topic)
    with serve_process(data_dir, None, **env) as server:
        events = []
        for _ in range(50):
            g = generation()
            events += [g, feedback("vote", g["generation_id"], value=1)]
        answer = server.post(events)
        assert answer.status == 202, answer.body
        assert answer.body == {"accepted": 100}
        # Acknowledged by Kafka means readable there now, as one message (the request's
        # events fit in one), in order; the key's project travels along.
        found = read_events(broker, topic, 100, timeout=10)
        assert {event["project"] for _, event in found} == {"demo"}
        assert [event["event_id"] for _, event in found] == [e["event_id"] for e in events]
        assert len({record.offset for record, _ in found}) == 1

        wait_stored(server, 100)
        # The admin token is the setting's, not in the data directory: the CLI needs it too.
        cli = run_kept("status", "--data", str(data_dir), "--format", "json", **SHARED_SECRETS)
        status = json.loads(cli.stdout)
        assert (status["generations"], status["feedback"]) == (50, 50)
        ready = http("GET", server.url + "/readyz")
        assert ready.status == 200 and ready.body["checks"]["consumer"] is True
        text = str(http("GET", server.url + "/metrics").body)
        for name in (
            "kept_consumer_lag{",
            "kept_consumer_batch_messages_bucket",
            "kept_http_requests",
        ):
            assert name in text

        again = server.post(events)  # a client retry: stored once
        assert again.status == 202
        deadline = time.monotonic() + 60
        while metric(server.url, "kept_consumer_messages_total") < 2:  # a message a request
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert metric(server.url, "kept_consumer_events_inserted_total") == 100
        assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done


def test_intake_answers_503_while_kafka_is_unreachable(data_dir: Path) -> None:
    from tests.helpers import free_port

    env = {
        "KEPT_KAFKA": f"127.0.0.1:{free_port()}",
        "KEPT_KAFKA_TIMEOUT_S": "1",
        **SHARED_SECRETS,
    }
    with serve_process(data_dir, None, **env) as server:
        answer = server.post([generation()])
        assert answer.status == 503
        assert {k.lower(): v for k, v in answer.headers.items()}["retry-after"] == "5"
        assert "Kafka did not take the events" in answer.body["message"]
        # OTLP the same, in its own words: 503, Retry-After and a google.rpc.Status.
        body = {
            "resourceSpans": [{"scopeSpans": [{"spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "name": "chat", "startTimeUnixNano": str(time.time_ns() - 10**9),
                "endTimeUnixNano": str(time.time_ns()),
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.request.model", "value": {"stringValue": "m"}},
                ],
            }]}]}]
        }  # fmt: skip
        headers = {"Authorization": f"Bearer {server.key}"}
        answer = http("POST", server.url + "/v1/traces", body, headers)
        assert answer.status == 503
        assert {k.lower(): v for k, v in answer.headers.items()}["retry-after"] == "5"
        assert answer.body["code"] == 14  # UNAVAILABLE
        assert "Kafka did not take the events" in answer.body["message"]
        assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
