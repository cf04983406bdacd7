"""A real Kafka broker (Apache Kafka 4, KRaft, from deploy/kafka-local/kafka.sh) and `kept consume`
subprocesses, for the Kafka tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

from tests.helpers import KEPT, free_port, http, kept_env

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "deploy" / "kafka-local" / "kafka.sh"
API_VERSION = None
"""kafka-python asks the broker which protocol versions it speaks."""


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
        result = subprocess.run(
            ["bash", str(KAFKA_SH), command, *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kafka.sh {command} failed:\n{result.stdout}{result.stderr}")

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
            api_version=API_VERSION,
            acks="all",
            retries=0,
            enable_idempotence=False,
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
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            api_version=API_VERSION,
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
            records: list[Any] = []
            while len(records) < expected:
                assert time.monotonic() < deadline, f"only {len(records)} of {expected} records"
                for batch in consumer.poll(timeout_ms=500).values():
                    records.extend(batch)
            return records
        finally:
            consumer.close(autocommit=False)

    def committed(self, topic: str, group: str) -> dict[int, int | None]:
        """The group's committed offset per partition (None: nothing committed)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            api_version=API_VERSION,
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


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class ConsumeProcess:
    """A real `kept consume` subprocess with its /metrics port."""

    process: subprocess.Popen[str]
    metrics_url: str
    output: list[str] = field(default_factory=list)

    def metric(self, name: str, labels: str = "") -> float:
        """The sum of a metric's samples (whose labels contain `labels`); 0 when absent."""
        try:
            text = str(http("GET", self.metrics_url, timeout=5).body)
        except OSError:
            return 0.0
        total = 0.0
        for line in text.splitlines():
            if (line.startswith(name + ("{" if labels else "")) and labels in line) or (
                line.startswith(name + " ") and not labels
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def inserted(self) -> float:
        return self.metric("kept_consumer_events_inserted_total")

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"kept consume exited while waiting for {what}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log[-3000:]}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    @property
    def log(self) -> str:
        return "".join(self.output)

    _reader: threading.Thread = field(init=False)


@contextmanager
def consume_process(broker: Broker, topic: str, group: str, **env: str) -> Iterator[ConsumeProcess]:
    """`kept consume` on `topic` as `group`; settings as KEPT_* variables in `env`."""
    port = free_port()
    settings = {
        "KEPT_KAFKA": broker.bootstrap,
        "KEPT_KAFKA_TOPIC": topic,
        "KEPT_KAFKA_GROUP": group,
        "KEPT_KAFKA_DLQ_TOPIC": topic + ".dlq",
        "KEPT_KAFKA_BATCH_MAX_MS": "200",
        "KEPT_METRICS_PORT": str(port),
        **env,
    }
    process = subprocess.Popen(
        [*KEPT, "consume"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=kept_env(**settings),
    )
    proc = ConsumeProcess(process, f"http://127.0.0.1:{port}/metrics")
    assert process.stdout is not None
    stdout = process.stdout
    proc._reader = threading.Thread(
        target=lambda: proc.output.extend(iter(stdout.readline, "")), daemon=True
    )
    proc._reader.start()
    try:
        proc.wait_for(lambda: _answers(proc.metrics_url), "the metrics endpoint", timeout=60)
        yield proc
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def _answers(url: str) -> bool:
    try:
        return http("GET", url, timeout=2).status == 200
    except OSError:
        return False


def store_contents(dsn_or_data: str, out: Path) -> dict[str, Any]:
    """Row counts of a store, read by a subprocess (one chDB store per process).

    Returns `{table: {"rows": physical rows, "distinct": distinct event ids}}` and writes
    the store's generation ids to `out`, one per line.
    """
    code = f"""
import json, sys
from kept_storage import Store, chdb_dsn
from pathlib import Path
target = {dsn_or_data!r}
dsn = target if "://" in target else chdb_dsn(Path(target) / "clickhouse")
store = Store(dsn)
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
        env=kept_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status
