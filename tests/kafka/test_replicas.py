"""Several `kept serve` in Kafka mode behind one address (issue 12): two replicas on one
broker and one ClickHouse database, each with a data directory of its own and the same
shared secrets. What one replica creates, mints or revokes holds on the other; the admin
API answers the same on both; every event sent through either is stored once. A replica
without the shared secrets refuses to start."""

from __future__ import annotations

import itertools
import logging
import re
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kept_ingest.feedback_tokens import mint_token
from kept_ingest.kafka_settings import KafkaSettings
from kept_ingest.keys import key_id_of
from kept_ingest.topics import ensure_topics
from kept_service.runtime.settings import REPLICA_SECRETS, ServerSettings
from kept_storage import Store
from tests.helpers import (
    Response,
    ServeProcess,
    database_for,
    feedback,
    free_port,
    generation,
    http,
    in_process_server,
    run_kept,
    serve_process,
    server_database,
)
from tests.kafka.broker import Broker, unique

ADMIN_TOKEN = "the-admin-token-every-replica-shares"
FEEDBACK_SECRET = "the-feedback-secret-every-replica-shares"
RELOAD_S = 1.0
"""KEPT_KEYS_RELOAD_S of the replicas: a key change made on one reaches the other within it."""
GRACE_S = 4.0
"""Beyond the reload interval, for a loaded two-core machine."""
PARTITIONS = 2
"""One partition for each replica's consumer."""
_HOLDING = re.compile(r"kept\.consumer: assigned .*; holding (.*)$")


class RoundRobin:
    """Each request to the next replica, as a round-robin load balancer sends them."""

    def __init__(self, replicas: list[ServeProcess]) -> None:
        self._cycle = itertools.cycle(replicas)

    def next(self) -> ServeProcess:
        return next(self._cycle)


def admin(replica: ServeProcess, method: str, path: str, body: Any = None) -> Response:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return http(method, replica.url + "/v1/admin" + path, body, headers)


def mint(replica: ServeProcess, key: str, generation_id: str) -> Response:
    """A feedback token from `replica`: also the lightest check of a project key."""
    headers = {"Authorization": f"Bearer {key}"}
    return http(
        "POST", replica.url + "/v1/feedback-tokens", {"generation_id": generation_id}, headers
    )


def within(seconds: float, done: Callable[[], bool]) -> float:
    """How long `done` took to become true; fails after `seconds`."""
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < seconds, f"not within {seconds}s"
        time.sleep(0.1)
    return time.monotonic() - started


def assignments(replica: ServeProcess) -> list[str]:
    """The replica's consumer's and Kafka client's log lines (for a failure's message)."""
    return [line for line in list(replica.output) if "kept.consumer" in line or "kafka" in line]


def held_partitions(replica: ServeProcess) -> set[int]:
    """The partitions the replica's consumer said it holds after its latest assignment."""
    held: set[int] = set()
    for line in list(replica.output):
        match = _HOLDING.search(line)
        if match:
            held = {int(p) for p in re.findall(r"\[(\d+)\]", match.group(1))}
    return held


def stored_ids(store: Store, table: str) -> dict[str, int]:
    """Rows per event id in `table` (physical rows: a repeat would show as 2)."""
    rows = store.rows(f"SELECT toString(event_id), count() FROM {table} GROUP BY event_id")
    return {str(event_id): int(n) for event_id, n in rows}


@pytest.mark.slow
@pytest.mark.clickhouse_server
def test_replicas_share_keys_tokens_admin_api_and_store_each_event_once(
    broker: Broker, clickhouse_url: str, tmp_path: Path
) -> None:
    topic = unique("replicas")
    settings = KafkaSettings(
        kafka=broker.bootstrap,
        kafka_topic=topic,
        kafka_dlq_topic=topic + ".dlq",
        kafka_partitions=PARTITIONS,
        kafka_replication_factor=1,
        kafka_min_insync_replicas=1,
    )
    assert [o.status for o in ensure_topics(settings)] == ["created", "created"]
    database = database_for(tmp_path)
    env = {
        "KEPT_KAFKA": broker.bootstrap,
        "KEPT_KAFKA_TOPIC": topic,
        "KEPT_KAFKA_DLQ_TOPIC": topic + ".dlq",
        "KEPT_KAFKA_GROUP": unique("g"),
        "KEPT_KAFKA_BATCH_MAX_MS": "100",
        "KEPT_DSN": clickhouse_url,
        "KEPT_DATABASE": database,
        "KEPT_ADMIN_TOKEN": ADMIN_TOKEN,
        "KEPT_FEEDBACK_SECRET": FEEDBACK_SECRET,
        "KEPT_KEYS_RELOAD_S": str(RELOAD_S),
        # Replicas starting together would each make a demo key on the empty store.
        "KEPT_CREATE_DEMO_KEY": "false",
        "KEPT_ANALYTICS_INTERVAL_S": "0",  # not what this test is about
    }
    with server_database(clickhouse_url, database) as store, ExitStack() as stack:
        # One after the other: the second finds the store migrated.
        one = stack.enter_context(serve_process(tmp_path / "one", None, **env))
        two = stack.enter_context(serve_process(tmp_path / "two", None, **env))

        # Each replica's consumer holds a partition: both store part of the events.
        # One each: [0, 1] held by replica one alone would leave a rebalance to come (two
        # still joining), and the partition it then hands over is read again from its
        # last commit, storing a batch twice (collapsed by merges, but not "once" here).
        # Up to 150 s: in a full run the shared broker has hundreds of groups and topics by
        # now, and a rebalance once took longer than 90 s there (never in this test alone).
        def settled() -> bool:
            return [held_partitions(one), held_partitions(two)] in ([{0}, {1}], [{1}, {0}])

        try:
            within(150, settled)
        except AssertionError:
            raise AssertionError(
                f"partitions held: {held_partitions(one)} and {held_partitions(two)}; "
                f"assignments: {assignments(one)} / {assignments(two)}"
            ) from None
        assert not (tmp_path / "one" / "admin-token").exists()  # the setting, not the dir's
        assert not (tmp_path / "two" / "feedback-secret").exists()

        # A key made through replica one's admin API works on replica two.
        created = admin(one, "POST", "/keys", {"project": "shop"})
        assert created.status == 201, created.body
        key = created.body["key"]
        took = within(RELOAD_S + GRACE_S, lambda: mint(two, key, "g-0").status == 201)
        logging.getLogger(__name__).info("key from one valid on two after %.2fs", took)

        # Events through both, round-robin; each stored once.
        balancer = RoundRobin([one, two])
        sent: dict[str, set[str]] = {"generations": set(), "feedback": set()}
        gids: list[str] = []
        for _ in range(20):
            batch = [generation() for _ in range(5)]
            votes = [feedback("vote", g["generation_id"], value=1) for g in batch]
            answer = http(
                "POST",
                balancer.next().url + "/v1/events",
                batch + votes,
                {"Authorization": f"Bearer {key}"},
            )
            assert answer.status == 202, answer.body
            sent["generations"] |= {g["event_id"] for g in batch}
            sent["feedback"] |= {v["event_id"] for v in votes}
            gids += [g["generation_id"] for g in batch]

        # A feedback token minted by one replica is accepted by the other.
        for gid in gids[:6]:
            minter, receiver = balancer.next(), balancer.next()
            assert minter is not receiver
            minted = mint(minter, key, gid)
            assert minted.status == 201, minted.body
            action = feedback("action", gid, name="accept")
            body = {"token": minted.body["token"], "events": [action]}
            answer = http(
                "POST", receiver.url + "/v1/feedback", body, {"Content-Type": "text/plain"}
            )
            assert answer.status == 202, answer.body
            sent["feedback"].add(action["event_id"])
        # What made them agree is the shared secret: a token signed with another (as a
        # replica's own would be) is refused.
        alien, _ = mint_token(b"a-secret-of-one-replica-only", "shop", gids[0], 600)
        body = {"token": alien, "events": [feedback("vote", gids[0], value=-1)]}
        for replica in (one, two):
            refused = http(
                "POST", replica.url + "/v1/feedback", body, {"Content-Type": "text/plain"}
            )
            assert (refused.status, refused.body["reason"]) == (401, "bad_signature")

        # Revoked through replica two: refused there at once, on replica one within the
        # reload interval.
        assert mint(one, key, "g-1").status == 201
        key_id = key_id_of(key)
        assert key_id is not None
        revoked = admin(two, "POST", f"/keys/{key_id}/revoke")
        assert revoked.status == 200 and revoked.body["revoked"] is True
        assert mint(two, key, "g-2").status == 401
        took = within(RELOAD_S + GRACE_S, lambda: mint(one, key, "g-3").status == 401)
        logging.getLogger(__name__).info("revocation on two reached one after %.2fs", took)

        # Every event stored exactly once, whichever replica took it and whose consumer
        # stored it.
        def all_stored() -> bool:
            return all(set(stored_ids(store, table)) >= ids for table, ids in sent.items())

        within(90, all_stored)
        for table, ids in sent.items():
            assert stored_ids(store, table) == dict.fromkeys(ids, 1), table

        # The admin API answers the same on both.
        keys = [admin(replica, "GET", "/keys") for replica in (one, two)]
        assert keys[0].status == keys[1].status == 200
        assert keys[0].body == keys[1].body
        assert [(k["key_id"], k["revoked"]) for k in keys[0].body["keys"]] == [(key_id, True)]
        status = [admin(replica, "GET", "/status") for replica in (one, two)]
        assert status[0].status == status[1].status == 200
        assert status[0].body == status[1].body
        assert (status[0].body["generations"], status[0].body["feedback"]) == (100, 106)
        for replica in (one, two):
            wrong = http(
                "GET", replica.url + "/v1/admin/status", headers={"Authorization": "Bearer x"}
            )
            assert wrong.status == 401
            assert replica.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises it once done


@pytest.mark.slow
@pytest.mark.parametrize("missing", ["KEPT_FEEDBACK_SECRET", "KEPT_ADMIN_TOKEN"])
def test_a_replica_without_a_shared_secret_refuses_to_start(tmp_path: Path, missing: str) -> None:
    data = tmp_path / "replica"
    given = {"KEPT_FEEDBACK_SECRET": FEEDBACK_SECRET, "KEPT_ADMIN_TOKEN": ADMIN_TOKEN}
    del given[missing]
    # No broker: the refusal comes before anything connects.
    kafka = f"127.0.0.1:{free_port()}"
    refused = run_kept(
        "serve", "--data", str(data), "--port", str(free_port()), KEPT_KAFKA=kafka, **given
    )
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"kept: invalid configuration: {missing}: ")
    assert (
        f"required with KEPT_KAFKA: {REPLICA_SECRETS[missing.removeprefix('KEPT_').lower()]}"
        in line
    )
    assert all(name not in line for name in given)  # only what is missing is named
    assert not data.exists()  # nothing started: not even the data directory was made


def test_kafka_mode_needs_both_shared_secrets_and_checks_their_length() -> None:
    unset: dict[str, Any] = {"admin_token": None, "feedback_secret": None}  # whatever the env
    with pytest.raises(ValidationError) as refused:
        ServerSettings(kafka="127.0.0.1:9092", **unset)
    assert {e["loc"] for e in refused.value.errors()} == {("admin_token",), ("feedback_secret",)}
    with pytest.raises(ValidationError, match="at least 16"):
        ServerSettings(kafka="127.0.0.1:9092", admin_token="short", feedback_secret="x" * 16)
    shared = ServerSettings(
        kafka="127.0.0.1:9092", admin_token=ADMIN_TOKEN, feedback_secret=FEEDBACK_SECRET
    )
    assert shared.unshared_secrets() == []
    alone = ServerSettings(kafka=None, **unset)
    assert alone.unshared_secrets() == ["KEPT_ADMIN_TOKEN", "KEPT_FEEDBACK_SECRET"]


@pytest.mark.clickhouse_server
def test_one_server_on_clickhouse_without_kafka_starts_and_warns(
    clickhouse_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kept.server")
    data = tmp_path / "single"
    settings: dict[str, Any] = {"dsn": clickhouse_url, "database": database_for(data)}
    with (
        server_database(clickhouse_url, settings["database"]),
        in_process_server(data, analytics_interval_s=0, **settings) as server,
    ):
        assert http("GET", server.url + "/readyz").status == 200
        assert server.runtime.admin_token == (data / "admin-token").read_text().strip()
    warned = [r.getMessage() for r in caplog.records if r.name == "kept.server"]
    assert any(
        "KEPT_ADMIN_TOKEN and KEPT_FEEDBACK_SECRET not set" in message for message in warned
    ), warned
