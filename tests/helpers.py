"""Test helpers: real servers (in-process or as `kept serve` subprocesses) and events."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from kept_ingest.decode import decode_json_array
from kept_ingest.metrics import IngestMetrics
from kept_ingest.rows import to_rows
from kept_ingest.writer import BatchWriter
from kept_service.app import create_app
from kept_service.runtime import Runtime
from kept_service.runtime.settings import ServerSettings
from kept_storage import Store, chdb_dsn
from kept_storage.datadir import DataDir
from kept_storage.settings import StoreSettings

KEPT = [sys.executable, "-m", "kept_cli"]

# ---- which store the tests run on ------------------------------------------------------

STORE_MODE_VAR = "KEPT_TEST_STORE"
"""`embedded` (default): each data directory's own chDB store. `clickhouse`: a real
ClickHouse server over http:// (`make test` runs the store's tests both ways)."""
EMBEDDED, CLICKHOUSE = "embedded", "clickhouse"
CLICKHOUSE_URL_VAR = "KEPT_TEST_CLICKHOUSE_URL"
"""A ClickHouse server to use; tests/conftest.py starts one for the session when unset."""
DEFAULT_DATA = Path("kept-data")
"""The data directory of a `kept` command given none (kept_cli.common.data_dir_arg)."""
RUN_DATABASE_PREFIX = f"kept_t{uuid.uuid4().hex[:8]}_"
"""Starts the name of every database this test run makes on the server."""


def store_mode() -> str:
    mode = os.environ.get(STORE_MODE_VAR, EMBEDDED)
    if mode not in (EMBEDDED, CLICKHOUSE):
        raise ValueError(f"{STORE_MODE_VAR} must be {EMBEDDED} or {CLICKHOUSE}, not {mode!r}")
    return mode


def on_clickhouse_server() -> bool:
    return store_mode() == CLICKHOUSE


def database_for(data: Path) -> str:
    """The server database that stands for the embedded store of data directory `data`:
    a restart on the same directory finds the same data, another directory an empty store."""
    digest = hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:16]
    return RUN_DATABASE_PREFIX + digest


def store_settings(data: Path) -> dict[str, str]:
    """`dsn` and `database` of the store of data directory `data`: none on the embedded
    store (it lives inside `data`), a database of its own on the ClickHouse server."""
    if not on_clickhouse_server():
        return {}
    return {"dsn": os.environ[CLICKHOUSE_URL_VAR], "database": database_for(data)}


def store_of(data: Path) -> tuple[str, str]:
    """The DSN and database of the store kept uses for data directory `data` in this run."""
    given = store_settings(data)
    default_database: str = StoreSettings.model_fields["database"].default
    dsn = given.get("dsn") or chdb_dsn(DataDir(data).store_dir)
    return dsn, given.get("database", default_database)


def store_env(data: Path) -> dict[str, str]:
    """store_settings as the KEPT_* variables of a subprocess."""
    return {f"KEPT_{name.upper()}": value for name, value in store_settings(data).items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat(timespec="milliseconds")


def generation(**fields: Any) -> dict[str, Any]:
    event = {
        "type": "generation",
        "event_id": str(uuid.uuid4()),
        "generation_id": str(uuid.uuid4()),
        "ts": now_iso(),
        "model": "gpt-test",
        "prompt_version": "summarize@1",
        "input": "Summarise this.",
        "output": "A summary.",
    }
    event.update(fields)
    return event


def feedback(kind: str, generation_id: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": kind,
        "event_id": str(uuid.uuid4()),
        "generation_id": generation_id,
        "ts": now_iso(),
    }
    event.update(fields)
    return event


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def http(
    method: str,
    url: str,
    body: bytes | str | list[Any] | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Response:
    """A plain HTTP call (stdlib, so the client under test is never the test's tool)."""
    data = body if isinstance(body, bytes) else None
    if isinstance(body, str):
        data = body.encode()
    elif isinstance(body, (list, dict)):
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in (headers or {}):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            raw = r.read()
            return Response(r.status, _parse(raw), dict(r.headers))
    except urllib.error.HTTPError as exc:
        return Response(exc.code, _parse(exc.read()), dict(exc.headers))


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


@dataclass
class InProcessServer:
    """The app on uvicorn in a thread of the test process; its store is queryable here."""

    url: str
    runtime: Runtime
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def key(self) -> str:
        key = self.runtime.data_dir.read_demo_key()
        assert key
        return key

    def post(self, body: Any, key: str | None = None, **headers: str) -> Response:
        auth = {"Authorization": f"Bearer {key or self.key}"}
        return http("POST", self.url + "/v1/events", body, {**auth, **headers})

    def count(self, table: str, where: str = "1", **params: Any) -> int:
        """Physical rows (no dedup at read time): what is stored, not what queries show."""
        return int(self.runtime.store.scalar(f"SELECT count() FROM {table} WHERE {where}", params))

    def metric(self, name: str, labels: str = "") -> float:
        text = http("GET", self.url + "/metrics").body
        total = 0.0
        for line in str(text).splitlines():
            if line.startswith(name + (labels and "{")) and (not labels or labels in line):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def truncate(self) -> None:
        tables = (
            "generations", "feedback", "outcomes", "outcomes_hourly", "analytics_state",
            "alert_events",
        )  # fmt: skip
        for table in tables:
            self.runtime.store.command(f"TRUNCATE TABLE {table}")


@contextmanager
def in_process_server(data: Path, **settings: Any) -> Iterator[InProcessServer]:
    port = free_port()
    config_settings = ServerSettings(data=data, port=port, **(store_settings(data) | settings))
    holder: dict[str, Runtime] = {}
    app = create_app(config_settings, DataDir(data), on_ready=lambda rt: holder.update(rt=rt))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("in-process kept server did not start")
        time.sleep(0.02)
    try:
        yield InProcessServer(f"http://127.0.0.1:{port}", holder["rt"], server, thread)
    finally:
        server.should_exit = True
        thread.join(30)


@dataclass
class ServeProcess:
    """A real `kept serve` subprocess."""

    url: str
    data: Path
    process: subprocess.Popen[str]
    output: list[str]

    @property
    def key(self) -> str:
        return (self.data / "demo-key").read_text().strip()

    def post(self, body: Any, key: str | None = None) -> Response:
        return http(
            "POST", self.url + "/v1/events", body, {"Authorization": f"Bearer {key or self.key}"}
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def kept_env(data: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a `kept` subprocess: none of the test process's KEPT_* variables;
    the store of its data directory (`data`, else KEPT_DATA of `extra`, else the CLI's
    default) unless `extra` names a KEPT_DSN itself; then `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEPT_")}
    if "KEPT_DSN" not in extra:
        env.update(store_env(data or Path(extra.get("KEPT_DATA", DEFAULT_DATA))))
    env.update(extra)
    return env


def data_of(args: tuple[str, ...]) -> Path | None:
    """The --data of a `kept` command line, if it has one."""
    return Path(args[args.index("--data") + 1]) if "--data" in args[:-1] else None


@contextmanager
def serve_process(data: Path, port: int | None = None, **env: str) -> Iterator[ServeProcess]:
    port = port or free_port()
    process = subprocess.Popen(
        [*KEPT, "serve", "--data", str(data), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=kept_env(data, **env),
    )
    output: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: output.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            reader.join(5)
            raise RuntimeError("kept serve exited:\n" + "".join(output))
        try:
            if http("GET", url + "/readyz", timeout=2).status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("kept serve did not become ready:\n" + "".join(output))
        time.sleep(0.1)
    proc = ServeProcess(url, data, process, output)
    try:
        yield proc
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def run_kept(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KEPT, *args],
        capture_output=True,
        text=True,
        env=kept_env(data_of(args), **env),
        timeout=120,
        check=False,
    )


def store_events(store: Store, events: list[dict[str, Any]], received_at: datetime) -> None:
    """Validate `events` (of project `p`) and write them through the intake's writer."""
    rows = to_rows(decode_json_array(json.dumps(events).encode()), received_at, "p")
    writer = BatchWriter(store, IngestMetrics())
    writer.start()
    try:
        writer.submit(rows).result(30)
    finally:
        writer.stop()


@dataclass
class RoleProcess:
    """A long-running `kept` subprocess (`kept consume`, `kept analytics run --every`)
    with its /metrics port."""

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

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"the process exited while waiting for {what}:\n{self.log}")
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


Role = TypeVar("Role", bound=RoleProcess)


@contextmanager
def role_process(kind: type[Role], args: list[str], env: dict[str, str]) -> Iterator[Role]:
    """`kept <args>` with /metrics on a free port (KEPT_METRICS_PORT), ready when they
    answer; killed at the end if still running. `env` is the whole environment."""
    port = free_port()
    process = subprocess.Popen(
        [*KEPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "KEPT_METRICS_PORT": str(port)},
    )
    proc = kind(process, f"http://127.0.0.1:{port}/metrics")
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


@contextmanager
def server_database(url: str, name: str | None = None) -> Iterator[Store]:
    """A database of its own on the ClickHouse server at `url` (a fresh name unless given),
    dropped afterwards."""
    store = Store(url, name or f"{RUN_DATABASE_PREFIX}{uuid.uuid4().hex[:12]}")
    try:
        yield store
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{store.database}` SYNC")
        store.close()
