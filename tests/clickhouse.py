"""A real ClickHouse server for the tests: deploy/clickhouse-local/clickhouse.py (the
chdb-core wheel's clickhouse-local with its HTTP and native listeners open)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.helpers import free_port

LAUNCHER = Path(__file__).resolve().parent.parent / "deploy" / "clickhouse-local" / "clickhouse.py"
READY_TIMEOUT_S = 60.0
SERVER_TIME_ZONE = "Asia/Kolkata"
"""The server's time zone: not UTC, as a production server's may not be, and half an hour
off any UTC hour, so a time read or written in the server's zone by mistake shows."""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=2) as response:
            return bool(response.read().strip() == b"Ok.")
    except OSError:
        return False


@contextmanager
def local_clickhouse(data: Path, *launcher_args: str, tcp_port: int = 0) -> Iterator[str]:
    """Start a server on free loopback ports; yield its URL; stop it. Fails loudly, with
    the launcher's output, when it does not answer: the listener trick must not rot
    into a skip. `launcher_args` go to the launcher as they are."""
    http_port, tcp_port = free_port(), tcp_port or free_port()
    log = data / "launcher.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "--data", str(data), "--http-port", str(http_port),
             "--tcp-port", str(tcp_port), *launcher_args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TZ": SERVER_TIME_ZONE},
        )  # fmt: skip
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the local ClickHouse server did not answer on {url}:\n{log.read_text()}"
                )
            time.sleep(0.2)
        yield url
    finally:
        process.kill()
        process.wait(30)


@contextmanager
def local_clickhouse_cluster(data: Path, name: str, shards: int = 2) -> Iterator[list[str]]:
    """Start `shards` servers, each a one-replica shard of cluster `name` (Distributed
    tables reach the others over their native ports); yield their URLs in shard order."""
    tcp_ports = [free_port() for _ in range(shards)]
    every = [arg for port in tcp_ports for arg in ("--shard", f"127.0.0.1:{port}")]
    with ExitStack() as servers:
        urls = []
        for number, port in enumerate(tcp_ports, 1):
            directory = data / f"shard{number}"
            directory.mkdir(parents=True, exist_ok=True)
            server = local_clickhouse(directory, "--cluster", name, *every, tcp_port=port)
            urls.append(servers.enter_context(server))
        yield urls
