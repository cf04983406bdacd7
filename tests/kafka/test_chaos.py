"""The chaos test: every role replicated on a 3-node Kafka cluster and a ClickHouse server,
and one process of each kind killed with SIGKILL, one after another, under load.

Two intake replicas (`kept serve` in Kafka mode) behind a round-robin client, two
`kept consume`, two `kept analytics run --every`; an SDK app and an HTTP app send a
workload whose figures are known exactly, another app sends background traffic to a
second project. Then a broker, a consumer, an intake replica and the analytics lease
holder are killed. At the end every event acknowledged to a client is stored exactly
once, and `kept report` shows exactly the known figures.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from kept import Client
from kept_storage import Store
from tests.helpers import (
    RoleProcess,
    ServeProcess,
    http,
    kept_env,
    role_process,
    run_kept,
    serve_process,
    server_database,
)
from tests.kafka.broker import Cluster, ConsumeProcess, unique
from tests.kafka.senders import HttpSender, SdkSender, eventually, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.clickhouse_server]
PARTITIONS = 6
"""Enough for the four group members (two consumers, two intakes' consumer threads)."""
LEASE_S = 3.0
SECRETS = {
    "KEPT_ADMIN_TOKEN": "a-chaos-admin-token-0123456789",
    "KEPT_FEEDBACK_SECRET": "a-chaos-feedback-secret-012345",
}


@pytest.fixture
def database(clickhouse_url: str) -> Iterator[tuple[Store, dict[str, str]]]:
    with server_database(clickhouse_url) as store:
        yield store, {"KEPT_DSN": clickhouse_url, "KEPT_DATABASE": store.database}


def _client(cluster: Cluster, topic: str, project: str, spool: Path) -> Client:
    return Client(
        endpoint=cluster.endpoint(topic),
        project=project,
        spool_dir=spool,
        request_timeout=3.0,  # give up on a send soon, so that an outage reaches the spool
        flush_interval=0.05,
        batch_size=50,
        max_queue_size=100_000,
    )


def _holder(runners: list[RoleProcess]) -> RoleProcess | None:
    held = [
        r for r in runners if r.process.poll() is None and r.metric("kept_analytics_lease_held")
    ]
    return held[0] if len(held) == 1 else None


def _report(env: dict[str, str], data: Path) -> tuple[int, int]:
    """(generations, accepted) of project `chaos` as `kept report` shows them."""
    done = run_kept(
        "report", "--project", "chaos", "--since", "1d", "--format", "json", "--data", str(data),
        **env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    groups = json.loads(done.stdout)
    return sum(g["generations"] for g in groups), sum(g["accepted"] for g in groups)


@pytest.mark.timeout(1200)
def test_killing_one_process_of_every_role_loses_nothing(
    cluster: Cluster,
    database: tuple[Store, dict[str, str]],
    tmp_path: Path,
    spool_dir: Path,
) -> None:
    store, store_env = database
    topic = unique("chaos")
    cluster.create_topic(topic, partitions=PARTITIONS)
    try:
        _chaos(cluster, topic, store, store_env, tmp_path, spool_dir)
    finally:
        cluster.ensure_running()  # the session's cluster stays whole for the next test


def _chaos(
    cluster: Cluster,
    topic: str,
    store: Store,
    store_env: dict[str, str],
    tmp_path: Path,
    spool_dir: Path,
) -> None:
    kafka = {
        "KEPT_KAFKA": cluster.bootstrap,
        "KEPT_KAFKA_TOPIC": topic,
        "KEPT_KAFKA_DLQ_TOPIC": topic + ".dlq",
        "KEPT_KAFKA_GROUP": unique("g"),
        "KEPT_KAFKA_BATCH_MAX_MS": "100",
        "KEPT_KAFKA_TIMEOUT_S": "3",  # answer 503 soon while a leader is gone
    }
    intake_env = {
        **store_env, **kafka, **SECRETS,
        "KEPT_CREATE_DEMO_KEY": "false",
        "KEPT_KEYS_RELOAD_S": "1",
        "KEPT_ANALYTICS_INTERVAL_S": "0",  # the analytics role runs the jobs
    }  # fmt: skip
    analytics_env = {
        **store_env,
        "KEPT_ANALYTICS_LEASE_S": str(LEASE_S),
        "KEPT_ANALYTICS_LAG_S": "1",
    }
    figures: dict[str, Any] = {}
    stop = threading.Event()
    chaos = _client(cluster, topic, "chaos", spool_dir / "chaos")
    background = _client(cluster, topic, "background", spool_dir / "background")
    with ExitStack() as stack:
        intakes: list[ServeProcess] = [
            stack.enter_context(serve_process(tmp_path / f"intake{n}", None, **intake_env))
            for n in (1, 2)
        ]
        admin = {"Authorization": f"Bearer {SECRETS['KEPT_ADMIN_TOKEN']}"}
        made = http("POST", intakes[0].url + "/v1/admin/keys", {"project": "chaos"}, admin)
        assert made.status == 201, made.body
        key = made.body["key"]
        consumers = [
            stack.enter_context(
                role_process(ConsumeProcess, ["consume"], kept_env(None, **store_env, **kafka))
            )
            for _ in (1, 2)
        ]
        runners = [
            stack.enter_context(
                role_process(
                    RoleProcess,
                    ["analytics", "run", "--every", "1s", "--data", str(tmp_path / f"runner{n}")],
                    kept_env(None, **analytics_env),
                )
            )
            for n in (1, 2)
        ]
        sdk = SdkSender(chaos, stop, accept_every=2)
        web = HttpSender(intakes, stop, key=key, accept_every=3)
        noise = SdkSender(background, stop)
        for sender in (sdk, web, noise):
            sender.start()
        try:
            wait_for(
                lambda: sum(c.inserted() for c in consumers) >= 300,
                "events flowing into the store",
                timeout=180,
            )
            wait_for(lambda: _holder(runners) is not None, "an analytics holder", timeout=60)

            # One of every kind, killed with SIGKILL, one after another.
            victim = cluster.leader_of(topic, 0)
            cluster.kill(victim, signal.SIGKILL)
            figures["broker_killed"] = victim
            time.sleep(5)
            consumers[0].process.kill()
            time.sleep(5)
            intakes[0].process.kill()
            time.sleep(5)
            holder = _holder(runners)
            assert holder is not None
            holder.process.kill()
            killed_at = time.monotonic()
            figures["lease_takeover_s"] = wait_for(
                lambda: _holder(runners) not in (None, holder),
                "another runner to take the lease",
                timeout=60,
            )
            time.sleep(5)  # and the load goes on
        finally:
            stop.set()
            for sender in (sdk, web, noise):
                sender.join(180)
        flushed = chaos.flush(timeout=120), background.flush(timeout=120)
        chaos.close(timeout=30)
        background.close(timeout=30)
        figures["sdk"] = sdk.assert_all_sent(flushed[0])
        noise.assert_all_sent(flushed[1])
        assert not web.unacknowledged, f"the intake refused batches for minutes: {web.refusals}"
        figures["http"] = {"acknowledged": len(web.acknowledged), "refusals": dict(web.refusals)}
        assert web.refusals, "killing an intake replica was not felt: the test proves nothing"

        generations = set(sdk.generations) | web.generation_ids(web.acknowledged)
        accepted = sdk.accepted | web.accepted_ids()
        feedback = sdk.votes + len(sdk.accepted) + web.votes() + len(web.accepted_ids())
        figures["expected"] = {"generations": len(generations), "accepted": len(accepted)}

        def stored_ids() -> set[str]:
            rows = store.rows(
                "SELECT DISTINCT generation_id FROM generations WHERE project = 'chaos'"
            )
            return {str(gid) for (gid,) in rows}

        figures["all_stored_s"] = eventually(lambda: stored_ids() >= generations, 180)
        missing = generations - stored_ids()
        assert not missing, f"{len(missing)} acknowledged generations not stored: {figures}"
        assert stored_ids() == generations  # and nothing else
        # Exactly once as every query of kept sees it (ReplacingMergeTree, by event id).
        once = "SELECT count() FROM {table} FINAL WHERE project = 'chaos'"
        assert store.scalar(once.format(table="generations")) == len(generations)
        wait_for(
            lambda: store.scalar(once.format(table="feedback")) == feedback,
            "every acknowledged feedback event",
            timeout=120,
        )
        figures["physical_rows"] = store.rows(
            "SELECT (SELECT count() FROM generations WHERE project = 'chaos'), "
            "(SELECT count() FROM feedback WHERE project = 'chaos')"
        )[0]

        expected = (len(generations), len(accepted))
        figures["report_wait_s"] = wait_for(
            lambda: _report(store_env, tmp_path / "cli") == expected, "the exact report", 180
        )
        # From the last kill: 5 s more load, the apps' flush, storing, folding, reporting.
        figures["report_exact_after_last_kill_s"] = round(time.monotonic() - killed_at, 1)
        print("\nchaos figures:", json.dumps(figures, indent=1, default=str))
        assert _report(store_env, tmp_path / "cli") == expected
        for proc in [*consumers[1:], *[r for r in runners if r is not holder]]:
            assert proc.stop() == 0, proc.log[-3000:]
        assert intakes[1].stop() in (0, -signal.SIGTERM)
