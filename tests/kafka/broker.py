"""A real Kafka broker or 3-node cluster (Apache Kafka 4, KRaft, from deploy/kafka-local/kafka.sh)
and `kept consume` subprocesses, for the Kafka tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

from tests.helpers import KEPT, RoleProcess, kept_env, role_process

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "deploy" / "kafka-local" / "kafka.sh"
KAFKA_VERSION = "4.1.1"
"""The Apache Kafka release kafka.sh installs (its KAFKA_VERSION)."""


def kafka_sh(command: str, *args: str, timeout: float = 180) -> str:
    """Run `kafka.sh command args...`; its output, or RuntimeError with it when it fails."""
    result = subprocess.run(
        ["bash", str(KAFKA_SH), command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kafka.sh {command} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def started_version(log: Path) -> str | None:
    """The version a node's log says it runs ("Kafka version: 4.1.1"), from its latest start."""
    found = None
    for line in log.read_text(errors="replace").splitlines():
        if "INFO Kafka version: " in line:
            found = line.split("Kafka version: ", 1)[1].split()[0]
    return found


@dataclass
class Broker:
    """One KRaft node (broker and controller) on loopback, with a data directory of its own."""

    directory: Path
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def endpoint(self, topic: str) -> str:
        """The SDK endpoint for `topic` on this broker."""
        return f"kafka://{self.bootstrap}?topic={topic}"

    def _script(self, command: str) -> None:
        args = [
            "--dir",
            str(self.directory),
            "--port",
            str(self.port),
            "--controller-port",
            str(self.controller_port),
        ]
        kafka_sh(command, *args)

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        """Stop the node; its log directory stays, so topics and offsets survive a restart."""
        pid_file = self.directory / "kafka.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid_file.unlink()
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        pid_file.unlink()

    def shutdown(self) -> None:
        self._script("stop")

    def producer(self, **config: Any) -> KafkaProducer:
        config.setdefault("linger_ms", 5)
        return KafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            # A plain producer (no producer id: tests tell its batches from kept's), which
            # retries in order: a topic created on demand has no leader for a moment.
            enable_idempotence=False,
            retries=5,
            max_in_flight_requests_per_connection=1,
            max_request_size=4 * 1024 * 1024,
            **config,
        )

    def produce(
        self, topic: str, values: list[bytes], keys: list[bytes | None] | None = None
    ) -> None:
        producer = self.producer()
        try:
            futures = [
                producer.send(topic, value=v, key=(keys[i] if keys else None))
                for i, v in enumerate(values)
            ]
            producer.flush(60)
            for future in futures:
                future.get(30)
        finally:
            producer.close(10)

    def read_all(self, topic: str, expected: int, timeout: float = 60) -> list[Any]:
        """At least `expected` records of `topic`, from the start (no consumer group)."""
        records: list[Any] = []
        for batch in self.records(topic, timeout):
            records.extend(batch)
            if len(records) >= expected:
                return records
        raise AssertionError(f"only {len(records)} of {expected} records")

    def records(self, topic: str, timeout: float = 60) -> Iterator[list[Any]]:
        """The records of `topic` from the start, a poll's worth at a time, in (partition,
        offset) order within each, until `timeout` (no consumer group)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        try:
            deadline = time.monotonic() + timeout
            while not (partitions := consumer.partitions_for_topic(topic)):
                assert time.monotonic() < deadline, f"topic {topic} does not exist"
                time.sleep(0.2)
            consumer.assign([TopicPartition(topic, p) for p in partitions])
            consumer.seek_to_beginning()
            while time.monotonic() < deadline:
                polled = consumer.poll(timeout_ms=500)
                yield [r for tp in sorted(polled, key=lambda tp: tp.partition) for r in polled[tp]]
        finally:
            consumer.close(autocommit=False)

    def committed(self, topic: str, group: str) -> dict[int, int | None]:
        """The group's committed offset per partition (None: nothing committed)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group,
            enable_auto_commit=False,
        )
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            found: dict[int, int | None] = {}
            for p in sorted(partitions):
                offset = consumer.committed(TopicPartition(topic, p))
                found[p] = offset.offset if isinstance(offset, OffsetAndMetadata) else offset
            return found
        finally:
            consumer.close(autocommit=False)


def read_events(
    broker: Broker, topic: str, expected: int, timeout: float = 60
) -> list[tuple[Any, dict[str, Any]]]:
    """At least `expected` events of `topic` from the start, each with the record it came
    in: a message's value is one event (a JSON object) or several (a JSON array, in order)."""
    found: list[tuple[Any, dict[str, Any]]] = []
    for batch in broker.records(topic, timeout):
        for record in batch:
            value = json.loads(record.value)
            found.extend(
                (record, event) for event in (value if isinstance(value, list) else [value])
            )
        if len(found) >= expected:
            return found
    raise AssertionError(f"only {len(found)} of {expected} events in {topic}")


def running(pid: int) -> bool:
    """The process exists and is not a zombie (killed, not yet reaped by its new parent)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    except OSError:  # not ours to signal, or no procfs: it exists
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


@contextmanager
def admin_client(servers: list[str]) -> Iterator[Any]:
    """A kafka-python admin client (no api_version: it asks the brokers), closed after use."""
    client = KafkaAdminClient(
        bootstrap_servers=servers, client_id="kept-tests", request_timeout_ms=10_000
    )
    try:
        yield client
    finally:
        client.close()


def broker_versions(servers: list[str]) -> dict[int, tuple[int, ...]]:
    """Each broker's id and the protocol version it speaks, as kafka-python infers it."""
    with admin_client(servers) as admin:
        ids = [b["broker_id"] for b in admin.describe_cluster()["brokers"]]
        return {i: tuple(admin.get_broker_version_data(i).broker_version) for i in ids}


@dataclass
class Cluster:
    """Kafka nodes on loopback (each broker and controller, node ids 1, 2, 3...), one cluster
    as production runs it: topics default to replication factor 3 and min.insync.replicas=2.

    Nodes can be killed and restarted; their data directories stay, so a restarted node
    catches up from the others.
    """

    directory: Path
    ports: tuple[int, ...]
    controller_ports: tuple[int, ...]

    @property
    def nodes(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.ports) + 1))

    @property
    def servers(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]

    @property
    def bootstrap(self) -> str:
        """Every node, as `KEPT_KAFKA` takes them."""
        return ",".join(self.servers)

    def endpoint(self, topic: str) -> str:
        """The SDK endpoint for `topic`, with every node as a bootstrap server."""
        return f"kafka://{self.bootstrap}?topic={topic}"

    def node_dir(self, node: int) -> Path:
        return self.directory / f"node{node}"

    def pid(self, node: int) -> int | None:
        """The node's process id while it runs, else None."""
        try:
            pid = int((self.node_dir(node) / "kafka.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if running(pid) else None

    def _args(self) -> list[str]:
        return ["--nodes", str(len(self.ports)), "--dir", str(self.directory)]

    def start(self) -> None:
        """Start every node not running; returns once all serve (a minute on two cores)."""
        ports, controllers = (",".join(map(str, p)) for p in (self.ports, self.controller_ports))
        kafka_sh(
            "start", *self._args(), "--ports", ports, "--controller-ports", controllers, timeout=300
        )

    def shutdown(self) -> None:
        kafka_sh("stop", *self._args(), timeout=120)

    def kill(self, node: int, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        """Send `sig` to the node's JVM; after SIGKILL, return once the process is gone."""
        pid = self.pid(node)
        if pid is None:
            raise RuntimeError(f"Kafka node {node} is not running")
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while sig == signal.SIGKILL and running(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka node {node} (pid {pid}) outlived SIGKILL")
            time.sleep(0.05)

    def restart(self, node: int) -> None:
        """Start the node again (stopped first if it runs); returns once it serves."""
        kafka_sh("restart", "--node", str(node), "--dir", str(self.directory), timeout=300)

    def ensure_running(self) -> None:
        """Restart the nodes that are not running (a test that killed one failed early)."""
        for node in self.nodes:
            if self.pid(node) is None:
                self.restart(node)

    def admin(self) -> Any:
        """A kafka-python admin client on every node (a context manager)."""
        return admin_client(self.servers)

    def create_topic(
        self,
        topic: str,
        partitions: int = 3,
        replication_factor: int = 3,
        min_insync_replicas: int = 2,
        assignments: dict[int, list[int]] | None = None,
    ) -> None:
        """Create `topic` through the admin API; `assignments` (partition: replicas, the
        first the preferred leader) replace `partitions` and `replication_factor`."""
        spec: dict[str, Any] = {"configs": {"min.insync.replicas": str(min_insync_replicas)}}
        if assignments:
            spec["assignments"] = assignments
        else:
            spec.update(num_partitions=partitions, replication_factor=replication_factor)
        with self.admin() as admin:
            admin.create_topics({topic: spec}, wait_for_metadata=True)

    def partitions(self, topic: str) -> dict[int, dict[str, Any]]:
        """Per partition, from the cluster's metadata: `leader` (-1: none), `replicas`, `isr`."""
        with self.admin() as admin:
            (found,) = admin.describe_topics([topic])
        return {
            p["partition_index"]: {
                "leader": p["leader_id"],
                "replicas": list(p["replica_nodes"]),
                "isr": sorted(p["isr_nodes"]),
            }
            for p in found["partitions"]
        }

    def configs(self, kind: str, name: str, *keys: str) -> dict[str, str]:
        """Settings of a `topic` or `broker` (by node id) as the cluster reports them."""
        from kafka.admin import ConfigResource

        with self.admin() as admin:
            found = admin.describe_configs(
                [ConfigResource(kind, name, dict.fromkeys(keys))], config_filter="all"
            )
        return {key: entry["value"] for key, entry in found[kind][name].items()}

    def leader_of(self, topic: str, partition: int) -> int:
        """The node that leads `partition` of `topic` now (-1: none)."""
        return int(self.partitions(topic)[partition]["leader"])

    def brokers(self) -> dict[int, bool]:
        """The brokers the cluster knows: node id and whether it is fenced (down)."""
        with self.admin() as admin:
            found = admin.describe_cluster()["brokers"]
        return {b["broker_id"]: bool(b.get("is_fenced")) for b in found}

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 120) -> float:
        """Seconds until `condition()` held; metadata calls may fail while nodes move."""
        started = time.monotonic()
        while True:
            try:
                if condition():
                    return time.monotonic() - started
            except Exception as exc:  # a node just died or came back: ask again
                last: Exception | None = exc
            else:
                last = None
            if time.monotonic() - started > timeout:
                raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")
            time.sleep(0.25)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class ConsumeProcess(RoleProcess):
    """A real `kept consume` subprocess with its /metrics port."""

    def inserted(self) -> float:
        return self.metric("kept_consumer_events_inserted_total")


@contextmanager
def consume_process(broker: Broker, topic: str, group: str, **env: str) -> Iterator[ConsumeProcess]:
    """`kept consume` on `topic` as `group`; settings as KEPT_* variables in `env`."""
    settings = {
        "KEPT_KAFKA": broker.bootstrap,
        "KEPT_KAFKA_TOPIC": topic,
        "KEPT_KAFKA_GROUP": group,
        "KEPT_KAFKA_DLQ_TOPIC": topic + ".dlq",
        "KEPT_KAFKA_BATCH_MAX_MS": "200",
        **env,
    }
    # The store: KEPT_DATA of `env`, if given.
    with role_process(ConsumeProcess, ["consume"], kept_env(None, **settings)) as proc:
        yield proc


def store_contents(dsn_or_data: str, out: Path) -> dict[str, Any]:
    """Row counts of a store (a DSN, or a data directory: the store kept uses for it), read
    by a subprocess (one chDB store per process).

    Returns `{table: {"rows": physical rows, "distinct": distinct event ids}}` and writes
    the store's generation ids to `out`, one per line.
    """
    from tests.helpers import store_of  # here: this file's imports are another's to edit

    target = dsn_or_data
    dsn, database = (target, "kept") if "://" in target else store_of(Path(target))
    code = f"""
import json, sys
from kept_storage import Store
from pathlib import Path
store = Store({dsn!r}, {database!r})
result = {{}}
for table in ("generations", "feedback"):
    rows, distinct = store.rows(f"SELECT count(), uniqExact(event_id) FROM {{table}}")[0]
    result[table] = {{"rows": rows, "distinct": distinct}}
ids = [r[0] for r in store.rows("SELECT generation_id FROM generations")]
Path({str(out)!r}).write_text("\\n".join(ids))
print(json.dumps(result))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def kept_status(data: Path) -> dict[str, Any]:
    done = subprocess.run(
        [*KEPT, "status", "--data", str(data), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=kept_env(data),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def end_offsets(broker: Broker, topic: str) -> dict[int, int]:
    """The offset after each partition's last message."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close(autocommit=False)


def broker_done(broker: Broker, topic: str, group: str) -> bool:
    """The group committed every message of the topic (producers pack events, so the
    number of messages is the broker's to say)."""
    ends = end_offsets(broker, topic)
    committed = broker.committed(topic, group)
    return bool(ends) and all((committed.get(p) or 0) == end for p, end in ends.items())
