"""Kafka 4 as the tests run it, and a 3-node cluster losing a broker with nothing lost.

The failure test kills -9 the node that leads every partition of the event topic while the
SDK's kafka:// transport and the HTTP intake in Kafka mode are sending: every event
acknowledged to the app (the SDK's call returned and the client reported no drop; HTTP
answered 202) must be stored, each exactly once.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kept import Client
from tests.helpers import serve_process
from tests.kafka.broker import (
    KAFKA_VERSION,
    Broker,
    Cluster,
    broker_versions,
    started_version,
    store_contents,
    unique,
)
from tests.kafka.senders import HttpSender, SdkSender, eventually, metric, wait_for

pytestmark = pytest.mark.slow

PROTOCOL_VERSION = tuple(int(part) for part in KAFKA_VERSION.split(".")[:2])
"""What kafka-python infers from a broker's API versions: major and minor, (4, 1)."""
PARTITIONS = 3


def test_the_single_node_is_kafka_4_1_1(broker: Broker) -> None:
    assert started_version(broker.directory / "kafka.log") == KAFKA_VERSION
    assert broker_versions([broker.bootstrap]) == {1: PROTOCOL_VERSION}


def test_the_cluster_is_three_kafka_4_1_1_brokers_replicating(cluster: Cluster) -> None:
    assert cluster.nodes == (1, 2, 3)
    for node in cluster.nodes:
        assert started_version(cluster.node_dir(node) / "kafka.log") == KAFKA_VERSION
    assert broker_versions(cluster.servers) == dict.fromkeys(cluster.nodes, PROTOCOL_VERSION)
    assert cluster.brokers() == dict.fromkeys(cluster.nodes, False)  # none fenced
    defaults = {
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
    }
    assert cluster.configs("broker", "1", *defaults) == defaults

    topic = unique("replicated")
    cluster.create_topic(topic, partitions=PARTITIONS)
    assert cluster.configs("topic", topic, "min.insync.replicas") == {"min.insync.replicas": "2"}
    partitions = cluster.partitions(topic)
    assert sorted(partitions) == list(range(PARTITIONS))
    for partition in partitions.values():
        assert sorted(partition["replicas"]) == partition["isr"] == [1, 2, 3]
        assert partition["leader"] in cluster.nodes


# --- broker failure, nothing lost -------------------------------------------------------


@pytest.mark.timeout(900)
def test_killing_the_leader_loses_nothing_acknowledged(
    cluster: Cluster, data_dir: Path, spool_dir: Path, tmp_path: Path
) -> None:
    topic = unique("failover")
    # One node leads every partition (the first replica is the preferred leader), so its
    # death moves the leadership of all of them; the others hold full replicas.
    victim = cluster.nodes[1]
    others = [n for n in cluster.nodes if n != victim]
    cluster.create_topic(
        topic,
        assignments={p: [victim, *others[p % 2 :], *others[: p % 2]] for p in range(PARTITIONS)},
    )
    leaders = {p: cluster.leader_of(topic, p) for p in range(PARTITIONS)}
    assert set(leaders.values()) == {victim}, leaders  # found through the metadata

    env = {
        "KEPT_KAFKA": cluster.bootstrap,
        "KEPT_KAFKA_TOPIC": topic,
        "KEPT_KAFKA_DLQ_TOPIC": topic + ".dlq",
        "KEPT_KAFKA_GROUP": unique("g"),
        "KEPT_KAFKA_BATCH_MAX_MS": "100",
        "KEPT_KAFKA_TIMEOUT_S": "3",  # answer 503 soon while the leader is gone
        # Kafka mode refuses to start without the secrets its replicas share.
        "KEPT_ADMIN_TOKEN": "an-admin-token-for-kafka-mode",
        "KEPT_FEEDBACK_SECRET": "a-feedback-secret-for-kafka-mode",
    }
    figures: dict[str, Any] = {"victim": victim}
    stop = threading.Event()
    client = Client(
        endpoint=cluster.endpoint(topic),
        project="demo",  # the project of the server's demo key: one project in the store
        spool_dir=spool_dir,
        request_timeout=3.0,  # give up on a send soon, so that the outage reaches the spool
        flush_interval=0.05,
        batch_size=50,
        max_queue_size=100_000,
    )
    try:
        with serve_process(data_dir, None, **env) as server:
            sdk, web = SdkSender(client, stop), HttpSender([server], stop)
            sdk.start()
            web.start()
            wait_for(
                lambda: metric(server, "kept_consumer_events_inserted_total") >= 200,
                "events flowing through the cluster into the store",
                timeout=120,
            )

            cluster.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            figures["failover_s"] = round(
                cluster.wait_until(
                    lambda: all(
                        p["leader"] in others and len(p["isr"]) == 2
                        for p in cluster.partitions(topic).values()
                    ),
                    "the other nodes to lead every partition",
                ),
                1,
            )
            time.sleep(5)  # and sending goes on on the two nodes left
            stop.set()
            sdk.join(30)
            web.join(180)
            assert not sdk.is_alive() and not web.is_alive()
            figures["sending_after_kill_s"] = round(time.monotonic() - killed_at, 1)

            # Everything the SDK spooled or still holds goes out now.
            flushed = client.flush(timeout=120)
            client.close(timeout=30)
            stats = sdk.assert_all_sent(flushed)
            figures["sdk"] = {
                k: stats[k] for k in ("enqueued", "sent", "retries", "spooled", "spool_bytes")
            }
            figures["http"] = {
                "acknowledged": len(web.acknowledged),
                "unacknowledged": len(web.unacknowledged),
                "refusals": dict(web.refusals),
            }
            assert not web.unacknowledged, f"the intake refused batches for minutes: {figures}"
            # The outage was felt (the test would prove nothing otherwise).
            assert stats["retries"] > 0 or web.refusals, figures

            cluster.restart(victim)
            figures["heal_s"] = round(
                cluster.wait_until(
                    lambda: all(p["isr"] == [1, 2, 3] for p in cluster.partitions(topic).values()),
                    "the restarted node back in sync on every partition",
                ),
                1,
            )
            assert web.send_batch(give_up_after=60), figures  # the healed cluster takes events

            expected_generations = set(sdk.generations) | web.generation_ids(web.acknowledged)
            expected_votes = sdk.votes + len(web.acknowledged) // 2
            expected = len(expected_generations) + expected_votes
            # Not asserted here: the comparison below says what is missing, if anything.
            figures["all_stored_s"] = eventually(
                lambda: metric(server, "kept_consumer_events_inserted_total") >= expected, 180
            )
            figures["consumed_messages"] = metric(server, "kept_consumer_messages_total")
            figures["duplicates_skipped"] = metric(server, "kept_events_duplicate_total")
            figures["inserted"] = metric(server, "kept_consumer_events_inserted_total")
            assert server.stop() in (0, -signal.SIGTERM), "".join(server.output)[-3000:]

        stored = store_contents(str(data_dir), tmp_path / "ids")
        stored_ids = set((tmp_path / "ids").read_text().split())
        figures["stored"] = stored
        print("\nbroker failure figures:", json.dumps(figures, indent=1))
        missing_sdk = set(sdk.generations) - stored_ids
        missing_http = web.generation_ids(web.acknowledged) - stored_ids
        assert not missing_sdk and not missing_http, (
            f"acknowledged but not stored: {len(missing_sdk)} of the SDK's "
            f"{len(sdk.generations)} generations, {len(missing_http)} of HTTP's; {figures}"
        )
        assert stored_ids == expected_generations  # and nothing else
        # Exactly once: no event id twice, and no physical duplicate row either.
        for table, count in (
            ("generations", len(expected_generations)),
            ("feedback", expected_votes),
        ):
            assert stored[table] == {"rows": count, "distinct": count}, figures
    finally:
        stop.set()
        client.close(timeout=0)
        cluster.ensure_running()  # the session's cluster stays whole for the next test
