"""The SDK against a real kept server: what an app logs lands in ClickHouse."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kept import Client
from tests.helpers import InProcessServer, free_port, run_kept, serve_process


def test_every_call_lands_in_clickhouse(server: InProcessServer) -> None:
    with Client(endpoint=server.url, api_key=server.key, debug=True) as client:
        gid = client.log_generation(
            model="gpt-4o-mini",
            prompt_version="reply@2",
            input=[{"role": "user", "content": "Hello?"}],
            output="Hi there.",
            latency_ms=420,
            input_tokens=12,
            output_tokens=4,
            cost_usd=0.0001,
            metadata={"app": "bot"},
            user_id="u1",
            session_id="s1",
        )
        assert client.vote(gid, -1, comment="too short")
        assert client.accept(gid)
        assert client.action(gid, "copy", value=11)
        assert client.correct(gid, "Hi there, how can I help?")
        assert client.score(gid, "helpful", 0.25, source="human")
        assert client.survival(gid, checkpoint_s=120, score=0.75)
        assert client.flush(timeout=10)
        assert client.stats()["sent"] == 7
    generation = server.runtime.store.rows(
        "SELECT generation_id, model, prompt_version, input_format, output, latency_ms, "
        "input_tokens, output_tokens, cost_usd, metadata, user_id, session_id FROM generations"
    )
    assert generation == [
        (
            gid,
            "gpt-4o-mini",
            "reply@2",
            "chat",
            "Hi there.",
            420,
            12,
            4,
            0.0001,
            {"app": "bot"},
            "u1",
            "s1",
        )
    ]
    feedback = server.runtime.store.rows(
        "SELECT toString(type), name, value, text, comment, source, checkpoint_s FROM feedback "
        "WHERE generation_id = {g:String} ORDER BY type, name",
        {"g": gid},
    )
    assert feedback == [
        ("vote", "", -1.0, "", "too short", "", 0),
        ("action", "accept", None, "", "", "", 0),
        ("action", "copy", 11.0, "", "", "", 0),
        ("correction", "", None, "Hi there, how can I help?", "", "", 0),
        ("survival", "", 0.75, "", "", "", 120),
        ("score", "helpful", 0.25, "", "", "human", 0),
    ]


def test_server_down_never_raises_and_flush_keeps_its_deadline() -> None:
    client = Client(endpoint=f"http://127.0.0.1:{free_port()}", api_key="kept_x", spool_dir=False)
    for _ in range(100):
        gid = client.log_generation(model="m", output="o")
        client.vote(gid, 1)
    started = time.monotonic()
    assert client.flush(timeout=0.5) is False
    assert time.monotonic() - started < 2.0
    started = time.monotonic()
    client.close(timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert client.stats()["dropped_shutdown"] == 200


@pytest.mark.slow
def test_events_logged_while_the_server_is_down_arrive_when_it_is_up(data_dir: Path) -> None:
    port = free_port()
    with serve_process(data_dir, port=port) as proc:  # first start creates the demo key
        key = proc.key
        proc.stop()
    client = Client(endpoint=f"http://127.0.0.1:{port}", api_key=key)
    ids = [client.log_generation(model="m", output=str(i)) for i in range(300)]
    assert client.flush(timeout=0.3) is False  # nobody listens yet
    with serve_process(data_dir, port=port):
        assert client.flush(timeout=30) is True
        client.close()
        status = json.loads(run_kept("status", "--data", str(data_dir), "--format", "json").stdout)
    assert status["generations"] == len(set(ids)) == 300


@pytest.mark.slow
def test_demo_fills_the_store(data_dir: Path) -> None:
    with serve_process(data_dir) as proc:
        demo = run_kept(
            "demo", "--data", str(data_dir), "--duration", "3s", "--backfill", "10m", "--rate", "10"
        )
        assert demo.returncode == 0, demo.stderr
        proc.stop()
    # The server is gone: this opens the embedded store directly and queries it.
    status = json.loads(run_kept("status", "--data", str(data_dir), "--format", "json").stdout)
    assert status["generations"] >= 100
    assert status["feedback"] > status["generations"]
    assert [p["project"] for p in status["projects"]] == ["demo"]


def test_demo_without_a_server_says_so(data_dir: Path) -> None:
    result = run_kept(
        "demo",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "--api-key",
        "kept_x",
        "--duration",
        "1s",
    )
    assert result.returncode == 1
    assert "no kept server answers" in result.stderr
