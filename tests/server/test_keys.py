"""Key revocation and rotation: the CLI against a running `kept serve`, and the reload
that makes a change written by another replica take effect on this one."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kept_ingest.keys import create_key, key_id_of, revoke_key
from tests.helpers import InProcessServer, http, run_kept, serve_process


def _status(url: str, key: str) -> int:
    return http("GET", url + "/v1/report", headers={"Authorization": f"Bearer {key}"}).status


def _within(seconds: float, done: Callable[[], bool]) -> float:
    """How long `done` took to become true; fails after `seconds`."""
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < seconds, f"not within {seconds}s"
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.slow
def test_cli_lists_revokes_and_rotates_keys_of_a_running_server(data_dir: Path) -> None:
    with serve_process(data_dir, KEPT_KEYS_RELOAD_S="1") as proc:
        data = ("--data", str(data_dir))
        created = run_kept("keys", "create", "--project", "acme", *data)
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        key_id = key_id_of(key)
        assert key_id is not None
        assert _status(proc.url, key) == 200

        listed = run_kept("keys", "list", "--format", "json", *data)
        assert listed.returncode == 0, listed.stderr
        keys = {k["key_id"]: k for k in json.loads(listed.stdout)}
        assert keys[key_id] == {
            "key_id": key_id,
            "project": "acme",
            "created_at": keys[key_id]["created_at"],
            "revoked": False,
        }
        # The secret is everything after "kept_<id>_" (it may itself hold "_").
        secret = key.removeprefix(f"kept_{key_id}_")
        assert len(secret) >= 32 and secret not in listed.stdout
        table = run_kept("keys", "list", *data)
        assert key_id in table.stdout and secret not in table.stdout

        rotated = run_kept("keys", "rotate", key_id, *data)
        assert rotated.returncode == 0, rotated.stderr
        new_key = rotated.stdout.strip().splitlines()[-1]
        assert _within(2, lambda: _status(proc.url, key) == 401)
        assert _status(proc.url, new_key) == 200

        revoked = run_kept("keys", "revoke", new_key, *data)
        assert revoked.returncode == 0, revoked.stderr
        assert _within(2, lambda: _status(proc.url, new_key) == 401)
        body = http(
            "GET",
            proc.url + "/v1/admin/keys?project=acme",
            headers={"Authorization": f"Bearer {(data_dir / 'admin-token').read_text().strip()}"},
        ).body
        assert [k["revoked"] for k in body["keys"]] == [True, True]
        assert "secret" not in json.dumps(body)

        unknown = run_kept("keys", "revoke", "abcdefabcdef", *data)
        assert unknown.returncode == 1 and "404" in unknown.stderr


def test_a_key_revoked_or_created_by_another_replica_takes_effect_within_the_interval(
    server: InProcessServer,
) -> None:
    interval = server.runtime.settings.keys_reload_s
    store = server.runtime.store
    # Written straight into the store, as another replica sharing it would.
    key = create_key(store, "elsewhere")
    assert _within(interval + 2, lambda: _status(server.url, key) == 200)
    key_id = key_id_of(key)
    assert key_id is not None
    revoke_key(store, key_id)
    assert _within(interval + 2, lambda: _status(server.url, key) == 401)


def test_admin_key_routes_need_the_admin_token_and_a_valid_id(server: InProcessServer) -> None:
    admin = {"Authorization": f"Bearer {server.runtime.admin_token}"}
    as_key = {"Authorization": f"Bearer {server.key}"}
    assert http("GET", server.url + "/v1/admin/keys", headers=as_key).status == 401
    bad = http("POST", server.url + "/v1/admin/keys/not-an-id/revoke", headers=admin)
    assert bad.status == 422 and bad.body["error"]
    missing = http("POST", server.url + "/v1/admin/keys/abcdefabcdef/rotate", headers=admin)
    assert missing.status == 404 and missing.body["error"] == "not_found"


@pytest.mark.slow
def test_cli_revokes_on_the_local_store_when_no_server_runs(data_dir: Path) -> None:
    data = ("--data", str(data_dir))
    created = run_kept("keys", "create", "--project", "solo", *data)
    assert created.returncode == 0, created.stderr
    key_id = key_id_of(created.stdout.strip().splitlines()[-1])
    assert key_id is not None
    assert run_kept("keys", "revoke", key_id, *data).returncode == 0
    listed = run_kept("keys", "list", "--project", "solo", "--format", "json", *data)
    assert [(k["key_id"], k["revoked"]) for k in json.loads(listed.stdout)] == [(key_id, True)]
    bad = run_kept("keys", "revoke", "not a key", *data)
    assert bad.returncode == 1 and "not a key id" in bad.stderr
