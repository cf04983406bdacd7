"""Real Kafka for the session, each started once on free ports (and only when a test asks for
it), stopped at the end: a single node (`broker`) and a 3-node cluster (`cluster`).

Apache Kafka 4 in KRaft mode on the installed Java, via deploy/kafka-local/kafka.sh (which
`make test` installs from Maven Central). Tests that need Kafka skip only when Java is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.helpers import free_port
from tests.kafka.broker import Broker, Cluster, kafka_sh

CLUSTER_NODES = 3


def install_kafka() -> None:
    if shutil.which("java") is None:
        pytest.skip("Java is not installed; the Kafka tests run a real broker on it")
    kafka_sh("install", timeout=600)


def free_ports(n: int) -> tuple[int, ...]:
    """`n` distinct free loopback ports."""
    ports: list[int] = []
    while len(ports) < n:
        if (port := free_port()) not in ports:
            ports.append(port)
    return tuple(ports)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    install_kafka()
    broker = Broker(tmp_path_factory.mktemp("kafka"), *free_ports(2))
    broker.start()
    try:
        yield broker
    finally:
        broker.shutdown()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three nodes, each broker and controller; three JVMs take about a minute to start on
    two cores, so once per session. A test that kills a node restarts it before it ends."""
    install_kafka()
    ports = free_ports(2 * CLUSTER_NODES)
    cluster = Cluster(
        tmp_path_factory.mktemp("kafka-cluster"), ports[:CLUSTER_NODES], ports[CLUSTER_NODES:]
    )
    try:
        cluster.start()  # inside: a node that started must stop when another did not
        yield cluster
    finally:
        cluster.shutdown()
