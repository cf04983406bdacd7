"""Project keys: `kept_<key id>_<secret>`. Only a SHA-256 of the secret is stored.

The key id is looked up, then the secret's hash is compared in constant time, so a
wrong key reveals nothing through timing. Keys are cached in memory; an unknown key
id triggers at most one reload per `miss_reload_interval` (keys made by another
replica become valid without a restart, and a flood of bad keys can't hammer the store).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from kept_storage import Store
from kept_wire.contract import PROJECT_PATTERN

_KEY = re.compile(r"^kept_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    project: str
    secret_sha256: str
    revoked: bool


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_project(project: str) -> str:
    if not re.match(PROJECT_PATTERN, project):
        raise ValueError(
            f"invalid project name {project!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return project


def create_key(store: Store, project: str) -> str:
    """Create and store a key for `project`; returns the full key (shown once)."""
    validate_project(project)
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    secret = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    store.insert_columns(
        "api_keys",
        {
            "key_id": [key_id],
            "project": [project],
            "secret_sha256": [_sha256(secret)],
            "created_at": [now],
            "revoked": [False],
            "version": [time.time_ns()],
        },
    )
    return f"kept_{key_id}_{secret}"


def load_keys(store: Store) -> dict[str, KeyRecord]:
    rows = store.rows(
        "SELECT key_id, argMax(project, version), argMax(secret_sha256, version), "
        "argMax(revoked, version) FROM api_keys GROUP BY key_id"
    )
    return {r[0]: KeyRecord(r[0], r[1], r[2], bool(r[3])) for r in rows}


def count_keys(store: Store) -> int:
    return int(store.scalar("SELECT uniqExact(key_id) FROM api_keys") or 0)


class KeyRing:
    """Resolves a presented key to its project."""

    def __init__(self, store: Store, miss_reload_interval: float = 2.0) -> None:
        self._store = store
        self._interval = miss_reload_interval
        self._keys = load_keys(store)
        self._loaded_at = time.monotonic()
        self._lock = threading.Lock()

    def add(self, key: str, project: str) -> None:
        """Make a key created in this process valid at once."""
        match = _KEY.match(key)
        if match:
            with self._lock:
                self._keys[match[1]] = KeyRecord(match[1], project, _sha256(match[2]), False)

    def project_for(self, key: str) -> str | None:
        """The key's project, or None when the key is malformed, unknown or revoked."""
        match = _KEY.match(key)
        if not match:
            return None
        key_id, secret = match[1], match[2]
        record = self._keys.get(key_id)
        if record is None and time.monotonic() - self._loaded_at >= self._interval:
            with self._lock:
                if time.monotonic() - self._loaded_at >= self._interval:
                    self._keys = load_keys(self._store)
                    self._loaded_at = time.monotonic()
            record = self._keys.get(key_id)
        if record is None or record.revoked:
            return None
        if not hmac.compare_digest(_sha256(secret), record.secret_sha256):
            return None
        return record.project
