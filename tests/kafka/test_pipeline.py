"""SDK → Kafka → `kept consume` → ClickHouse, with real processes: nothing lost, nothing doubled.

Each test has its own topic and group; each `kept consume` its own embedded store, read
back by a subprocess after the consumer stopped (one chDB store per process).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from kept import Client
from tests.helpers import free_port
from tests.kafka.broker import (
    Broker,
    broker_done,
    consume_process,
    end_offsets,
    kept_status,
    store_contents,
    unique,
)

pytestmark = pytest.mark.slow


def sdk(broker: Broker, topic: str, **options: Any) -> Client:
    """An SDK client whose queue holds a whole test's traffic (the app logs faster than
    one producer sends)."""
    options.setdefault("max_queue_size", 200_000)
    options.setdefault("batch_size", 2000)
    return Client(endpoint=broker.endpoint(topic), project="p", **options)


def log_traffic(client: Client, generations: int, tag: str = "") -> list[str]:
    """Each generation with two feedback events: 3 events per generation."""
    gids = []
    for i in range(generations):
        gid = client.log_generation(
            model="gpt-test", prompt_version=f"p@{i % 3}", output=f"{tag}{i}"
        )
        client.accept(gid)
        client.vote(gid, 1 if i % 4 else -1)
        gids.append(gid)
    return gids


def assert_exactly_once(target: str, gids: list[str], tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    counts = store_contents(target, ids_file)
    stored = ids_file.read_text().split("\n") if counts["generations"]["rows"] else []
    assert counts["generations"] == {"rows": len(gids), "distinct": len(gids)}
    assert counts["feedback"] == {"rows": 2 * len(gids), "distinct": 2 * len(gids)}
    assert sorted(stored) == sorted(gids)


def test_a_run_of_100k_events_lands_exactly_once(broker: Broker, tmp_path: Path) -> None:
    topic, group, data = unique("e2e"), unique("g"), tmp_path / "data"
    with consume_process(broker, topic, group, KEPT_DATA=str(data)) as consumer:
        client = sdk(broker, topic, spool_dir=False)
        gids = log_traffic(client, 34_000)  # 102,000 events
        assert client.flush(timeout=120)
        stats = client.stats()
        client.close()
        assert (stats["sent"], stats["queued"]) == (102_000, 0)
        consumer.wait_for(lambda: consumer.inserted() >= 102_000, "every event stored")
        assert consumer.stop() == 0
        assert consumer.metric("kept_consumer_dead_lettered_total") == 0
    status = kept_status(data)
    assert (status["generations"], status["feedback"]) == (34_000, 68_000)
    assert [p["project"] for p in status["projects"]] == ["p"]
    assert_exactly_once(str(data), gids, tmp_path)


def test_kill_9_in_the_middle_then_restart(broker: Broker, tmp_path: Path) -> None:
    topic, group, data = unique("kill"), unique("g"), tmp_path / "data"
    with sdk(broker, topic) as client:
        gids = log_traffic(client, 20_000)
        assert client.flush(timeout=120)
    settings = {"KEPT_DATA": str(data), "KEPT_KAFKA_BATCH_MAX_EVENTS": "3000"}
    with consume_process(broker, topic, group, **settings) as consumer:
        consumer.wait_for(lambda: consumer.inserted() >= 10_000, "a part stored")
        assert consumer.stop(signal.SIGKILL) == -signal.SIGKILL
    assert any(o is not None for o in broker.committed(topic, group).values())
    with consume_process(broker, topic, group, **settings) as consumer:
        # Whatever was stored but not committed is read again and skipped as a repeat.
        consumer.wait_for(
            lambda: consumer.metric("kept_consumer_lag") == 0 and broker_done(broker, topic, group),
            "the rest stored and committed",
        )
        assert consumer.stop() == 0
    assert_exactly_once(str(data), gids, tmp_path)


def test_broker_down_while_the_app_logs_then_back(broker: Broker, tmp_path: Path) -> None:
    topic, group, data = unique("outage"), unique("g"), tmp_path / "data"
    spool = tmp_path / "spool"
    with consume_process(broker, topic, group, KEPT_DATA=str(data)) as consumer:
        first = sdk(broker, topic, spool_dir=spool, request_timeout=2)
        gids = log_traffic(first, 100, "before-")
        assert first.flush(timeout=30)
        broker.stop()
        try:
            gids += log_traffic(first, 300, "during-")
            first.close(timeout=5)  # the app restarts while the broker is down
            assert first.stats()["spooled"] == 900
            assert first.stats()["dropped_shutdown"] == 0
            second = sdk(broker, topic, spool_dir=spool, request_timeout=2)
            gids += log_traffic(second, 100, "restarted-")
            assert second.flush(timeout=0.5) is False
        finally:
            broker.start()
        assert second.flush(timeout=120)
        second.close()
        consumer.wait_for(lambda: consumer.inserted() >= 1500, "every event stored")
        assert consumer.stop() == 0
    assert not list(spool.rglob("*.seg"))
    assert_exactly_once(str(data), gids, tmp_path)


@pytest.mark.embedded_only("the embedded store's file lock; it names its chdb:// DSN")
def test_clickhouse_locked_by_another_process_holds_offsets_then_recovers(
    broker: Broker, tmp_path: Path
) -> None:
    topic, group = unique("locked"), unique("g")
    store_dir = tmp_path / "clickhouse"
    dsn = f"chdb://{store_dir}"
    # Another process owns the embedded store: ClickHouse is unavailable to the consumer.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from kept_storage import Store, migrate
                store = Store({dsn!r})  # holds the store's lock while it lives
                migrate(store)
                print("holding", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with sdk(broker, topic) as client:
            gids = log_traffic(client, 2000)
            assert client.flush(timeout=60)
        settings = {"KEPT_DSN": dsn, "KEPT_KAFKA_BATCH_MAX_EVENTS": "1000"}
        with consume_process(broker, topic, group, **settings) as consumer:
            consumer.wait_for(
                lambda: consumer.metric("kept_consumer_insert_failures_total") >= 2,
                "failed inserts",
            )
            assert consumer.metric("kept_consumer_paused") == 1
            assert consumer.inserted() == 0
            assert all(o is None for o in broker.committed(topic, group).values())
            assert consumer.metric("kept_consumer_messages_total") <= 2000  # one poll, no more
            assert holder.stdin is not None
            holder.stdin.close()  # ClickHouse is back
            holder.wait(60)
            consumer.wait_for(lambda: consumer.inserted() >= 6000, "recovery", timeout=180)
            assert consumer.metric("kept_consumer_paused") == 0
            consumer.wait_for(lambda: broker_done(broker, topic, group), "commits")
            assert consumer.stop() == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)
    assert_exactly_once(dsn, gids, tmp_path)


def test_clickhouse_server_unreachable_holds_offsets_and_stops_cleanly(
    broker: Broker, tmp_path: Path
) -> None:
    topic, group, data = unique("down"), unique("g"), tmp_path / "data"
    with sdk(broker, topic) as client:
        gids = log_traffic(client, 500)
        assert client.flush(timeout=60)
    unreachable = {
        "KEPT_DSN": f"http://127.0.0.1:{free_port()}",
        "KEPT_KAFKA_SHUTDOWN_GRACE_S": "1",
        # Batches of 500: while the first fails on the insert thread, the next is read; it
        # must not be stored (nor committed) past the first.
        "KEPT_KAFKA_BATCH_MAX_EVENTS": "500",
    }
    with consume_process(broker, topic, group, **unreachable) as consumer:
        consumer.wait_for(
            lambda: consumer.metric("kept_consumer_insert_failures_total") >= 2, "failed inserts"
        )
        assert all(o is None for o in broker.committed(topic, group).values())
        started = time.monotonic()
        assert consumer.stop() == 0  # SIGTERM: gives up the batch uncommitted after the grace
        assert time.monotonic() - started < 30
        assert "will be consumed again" in consumer.log
    assert all(o is None for o in broker.committed(topic, group).values())
    with consume_process(broker, topic, group, KEPT_DATA=str(data)) as consumer:
        consumer.wait_for(lambda: consumer.inserted() >= 1500, "every event stored")
        assert consumer.stop() == 0
    assert_exactly_once(str(data), gids, tmp_path)


def test_poison_messages_go_to_the_dead_letter_topic(broker: Broker, tmp_path: Path) -> None:
    topic, group, data = unique("poison"), unique("g"), tmp_path / "data"
    with sdk(broker, topic) as client:
        gids = log_traffic(client, 100)
        assert client.flush(timeout=60)
    valid = json.dumps(
        {"type": "vote", "event_id": "00000000-0000-4000-8000-000000000001",
         "generation_id": "g", "ts": "2026-01-01T00:00:00Z", "value": 1}
    )  # fmt: skip
    poison = {
        "not_json": b"this is not json{",
        "invalid_event": b'{"type": "vote", "value": 7}',
        "no_project": valid.encode(),
        "empty": b"",
        "huge": json.dumps({"type": "generation", "model": "m" * 900_000}).encode(),
    }
    broker.produce(topic, list(poison.values()), [b"k"] * len(poison))
    with sdk(broker, topic) as client:
        gids += log_traffic(client, 100, "after-")
        assert client.flush(timeout=60)
    with consume_process(broker, topic, group, KEPT_DATA=str(data)) as consumer:
        consumer.wait_for(lambda: consumer.inserted() >= 600, "the healthy stream stored")
        consumer.wait_for(lambda: broker_done(broker, topic, group), "all committed")
        assert consumer.metric("kept_consumer_dead_lettered_total") == 5
        assert consumer.stop() == 0
    records = broker.read_all(topic + ".dlq", 5)
    letters = [json.loads(r.value) for r in records]
    reasons = {letter["reason"] for letter in letters}
    assert reasons == {"not_json", "invalid_event", "no_project", "empty"}
    for record, letter in zip(records, letters, strict=True):
        assert letter["topic"] == topic and letter["error"] and letter["offset"] >= 0
        # The headers say the same, for tools that route dead letters without parsing them.
        assert record.key == b"k"
        headers = dict(record.headers)
        assert headers == {
            "kept.reason": letter["reason"].encode(),
            "kept.origin.topic": topic.encode(),
            "kept.origin.partition": str(letter["partition"]).encode(),
            "kept.origin.offset": str(letter["offset"]).encode(),
            "kept.error": letter["error"].encode()[:1024],
        }
    # The origins are the poison messages' own places in the event topic.
    origins = {
        (h["kept.origin.partition"], h["kept.origin.offset"])
        for h in map(dict, (r.headers for r in records))
    }
    poisoned = {
        (str(r.partition).encode(), str(r.offset).encode())
        for r in broker.read_all(topic, sum(end_offsets(broker, topic).values()))
        if r.key == b"k"
    }
    assert origins == poisoned
    huge = next(x for x in letters if x["original_bytes"] > 100_000)
    assert huge["reason"] == "invalid_event" and "model" in huge["error"]
    assert huge["truncated"] and len(huge["original"]) == 65_536
    not_json = next(x for x in letters if x["reason"] == "not_json")
    assert not_json["original"] == "this is not json{"
    assert_exactly_once(str(data), gids, tmp_path)


def test_too_many_invalid_messages_stop_the_consumer(broker: Broker, tmp_path: Path) -> None:
    topic, group, data = unique("flood"), unique("g"), tmp_path / "data"
    with sdk(broker, topic) as client:
        log_traffic(client, 100)
        assert client.flush(timeout=60)
    broker.produce(topic, [b"garbage"] * 300)  # a bad deploy
    limits = {
        "KEPT_DATA": str(data),
        "KEPT_KAFKA_INVALID_WINDOW": "200",
        "KEPT_KAFKA_INVALID_MAX_SHARE": "0.2",
    }
    with consume_process(broker, topic, group, **limits) as consumer:
        code = consumer.process.wait(120)
        consumer.stop()
    assert code == 1
    assert "were invalid, more than the limit of 20%" in consumer.log
    assert "KEPT_KAFKA_INVALID_MAX_SHARE" in consumer.log
    status = kept_status(data)
    assert status["generations"] + status["feedback"] <= 300  # stopped, nothing invented
