"""A real Kafka broker for the session: started once on free ports, stopped at the end.

Apache Kafka 4 in KRaft mode on the installed Java, via deploy/kafka-local/kafka.sh (which
`make test` installs from Maven Central). Tests that need the broker skip only when Java is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.helpers import free_port
from tests.kafka.broker import KAFKA_SH, Broker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if shutil.which("java") is None:
        pytest.skip("Java is not installed; the Kafka tests run a real broker on it")
    install = subprocess.run(
        ["bash", str(KAFKA_SH), "install"], capture_output=True, text=True, timeout=600, check=False
    )
    assert install.returncode == 0, install.stderr
    broker = Broker(tmp_path_factory.mktemp("kafka"), free_port(), free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.shutdown()
