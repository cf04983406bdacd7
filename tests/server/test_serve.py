"""`kept serve` and the CLI as a user runs them: real subprocesses, real data directories."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from kept_storage.migrate import available
from tests.helpers import feedback, generation, run_kept, serve_process

pytestmark = pytest.mark.slow

LATEST = available()[-1].version


def _status(data_dir: Path) -> dict[str, int]:
    result = run_kept("status", "--data", str(data_dir), "--format", "json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    return {
        "generations": status["generations"],
        "feedback": status["feedback"],
        "keys": status["keys"],
    }


def test_first_start_creates_demo_key_and_restart_keeps_data(data_dir: Path) -> None:
    with serve_process(data_dir) as proc:
        banner = "".join(proc.output)
        assert "Created project 'demo'" in banner
        assert proc.key in banner
        gens = [generation() for _ in range(50)]
        votes = [feedback("vote", g["generation_id"], value=1) for g in gens]
        assert proc.post(gens + votes).status == 202
        assert proc.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
        assert "Application shutdown complete" in "".join(proc.output)
    assert _status(data_dir) == {"generations": 50, "feedback": 50, "keys": 1}
    with serve_process(data_dir) as proc:
        assert "Created project" not in "".join(proc.output)  # the key from the first start stays
        assert proc.post([generation()]).status == 202
        proc.stop()
    assert _status(data_dir)["generations"] == 51


def test_sigkill_loses_nothing_that_was_acknowledged(data_dir: Path) -> None:
    with serve_process(data_dir) as proc:
        for _ in range(5):
            assert proc.post([generation() for _ in range(200)]).status == 202
        proc.stop(signal.SIGKILL)
    assert _status(data_dir)["generations"] == 1000


def test_cli_goes_through_the_running_server(data_dir: Path) -> None:
    with serve_process(data_dir) as proc:
        created = run_kept("keys", "create", "--project", "acme", "--data", str(data_dir))
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        assert key.startswith("kept_")
        assert proc.post([generation()], key=key).status == 202
        assert _status(data_dir)["keys"] == 2
        migrated = run_kept("migrate", "--data", str(data_dir))
        assert "applied now: nothing" in migrated.stdout
        table = run_kept("status", "--data", str(data_dir))
        assert "acme" in table.stdout
        second = run_kept("serve", "--data", str(data_dir), "--port", "1")
        assert second.returncode == 1
        assert "in use by kept serve" in second.stderr


def test_cli_without_a_server_opens_the_store(data_dir: Path) -> None:
    migrated = run_kept("migrate", "--data", str(data_dir))
    assert migrated.returncode == 0, migrated.stderr
    assert f"schema version {LATEST}" in migrated.stdout
    created = run_kept("keys", "create", "--project", "solo", "--data", str(data_dir))
    key = created.stdout.strip().splitlines()[-1]
    with serve_process(data_dir) as proc:
        assert proc.post([generation()], key=key).status == 202


def test_cli_errors_are_clear(data_dir: Path) -> None:
    bad = run_kept("keys", "create", "--project", "no spaces", "--data", str(data_dir))
    assert bad.returncode == 1
    assert "invalid project name" in bad.stderr
    tokenless = run_kept("status", "--url", "http://127.0.0.1:9", "--data", str(data_dir))
    assert "needs its admin token" in tokenless.stderr
    down = run_kept("status", "--url", "http://127.0.0.1:9", KEPT_ADMIN_TOKEN="t")
    assert down.returncode == 1
    assert "no kept server answers" in down.stderr
    assert "Traceback" not in bad.stderr + tokenless.stderr + down.stderr


def test_schema_command_prints_json_schema() -> None:
    result = run_kept("schema")
    schema = json.loads(result.stdout)
    assert schema["title"] == "kept event v1"
    assert set(schema["discriminator"]["mapping"]) == {
        "generation",
        "vote",
        "action",
        "correction",
        "survival",
        "score",
    }
