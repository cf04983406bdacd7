"""Project keys: `kept_<key id>_<secret>`. Only a SHA-256 of the secret is stored.

The key id is looked up, then the secret's hash is compared in constant time, so a
wrong key reveals nothing through timing. Keys are cached in memory and reloaded from
the store every `reload_s` by a background thread: a key revoked or created by another
replica (or the CLI on a shared store) takes effect within that interval. An unknown key
id also triggers at most one reload per `miss_reload_s`, so a key just made elsewhere
works at once, and a flood of bad keys can't hammer the store.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from kept_storage import Store
from kept_wire.contract import PROJECT_PATTERN

log = logging.getLogger("kept.keys")

_KEY = re.compile(r"^kept_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{20,100})$")
KEY_ID_PATTERN = r"^[a-z0-9]{12}$"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    project: str
    secret_sha256: str
    created_at: datetime
    revoked: bool


class UnknownKey(LookupError):
    """No key has this id."""


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_project(project: str) -> str:
    if not re.match(PROJECT_PATTERN, project):
        raise ValueError(
            f"invalid project name {project!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return project


def _write(store: Store, record: KeyRecord) -> None:
    # A change is a new row with a higher version (ReplacingMergeTree, argMax on read).
    store.insert_columns(
        "api_keys",
        {
            "key_id": [record.key_id],
            "project": [record.project],
            "secret_sha256": [record.secret_sha256],
            "created_at": [record.created_at],
            "revoked": [record.revoked],
            "version": [time.time_ns()],
        },
    )


def create_key(store: Store, project: str) -> str:
    """Create and store a key for `project`; returns the full key (shown once)."""
    validate_project(project)
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    secret = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    _write(store, KeyRecord(key_id, project, _sha256(secret), now, revoked=False))
    return f"kept_{key_id}_{secret}"


def load_keys(store: Store) -> dict[str, KeyRecord]:
    rows = store.rows(
        "SELECT key_id, argMax(project, version), argMax(secret_sha256, version), "
        "min(created_at), argMax(revoked, version) FROM api_keys GROUP BY key_id"
    )
    return {r[0]: KeyRecord(r[0], r[1], r[2], _utc(r[3]), bool(r[4])) for r in rows}


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def list_keys(store: Store, project: str | None = None) -> list[KeyRecord]:
    """Every key (or a project's), oldest first."""
    keys = [k for k in load_keys(store).values() if project in (None, k.project)]
    return sorted(keys, key=lambda k: (k.created_at, k.key_id))


def revoke_key(store: Store, key_id: str) -> KeyRecord:
    """Revoke a key (idempotent); UnknownKey when no key has this id."""
    record = load_keys(store).get(key_id)
    if record is None:
        raise UnknownKey(f"no key with id {key_id!r}")
    if not record.revoked:
        record = KeyRecord(
            record.key_id, record.project, record.secret_sha256, record.created_at, True
        )
        _write(store, record)
    return record


def rotate_key(store: Store, key_id: str) -> tuple[str, KeyRecord]:
    """A new key for the old key's project, then the old key revoked: (new key, old)."""
    record = load_keys(store).get(key_id)
    if record is None:
        raise UnknownKey(f"no key with id {key_id!r}")
    new_key = create_key(store, record.project)
    return new_key, revoke_key(store, key_id)


def key_id_of(key: str) -> str | None:
    match = _KEY.match(key)
    return match[1] if match else None


def count_keys(store: Store) -> int:
    return int(store.scalar("SELECT uniqExact(key_id) FROM api_keys") or 0)


class KeyRing:
    """Resolves a presented key to its project; reloads the store's keys every `reload_s`
    on a thread of its own (call `close` to stop it)."""

    def __init__(self, store: Store, reload_s: float = 5.0, miss_reload_s: float = 2.0) -> None:
        self._store = store
        self._keys = load_keys(store)
        self._miss_reload_s = miss_reload_s
        self._missed_at = time.monotonic()
        self._lock = threading.Lock()
        self._changes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if reload_s > 0:
            self._thread = threading.Thread(
                target=self._reload_loop, args=(reload_s,), name="kept-keys", daemon=True
            )
            self._thread.start()

    def _reload_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._reload()
            except Exception:  # keep the last keys; retry at the next interval
                log.warning("could not reload project keys; keeping the last ones", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _reload(self) -> None:
        with self._lock:
            changes = self._changes
        keys = load_keys(self._store)
        with self._lock:
            # A load that began before a change made here would undo it: skip it.
            if self._changes == changes:
                self._keys = keys

    def add(self, key: str, project: str) -> None:
        """Make a key created in this process valid at once."""
        match = _KEY.match(key)
        if match:
            record = KeyRecord(
                match[1], project, _sha256(match[2]), datetime.now(timezone.utc), False
            )
            self._replace(record)

    def forget(self, key_id: str) -> None:
        """Stop accepting a key revoked in this process at once."""
        record = self._keys.get(key_id)
        if record is not None and not record.revoked:
            revoked = KeyRecord(
                record.key_id, record.project, record.secret_sha256, record.created_at, True
            )
            self._replace(revoked)

    def _replace(self, record: KeyRecord) -> None:
        with self._lock:
            # A new mapping: readers never see a dict being changed.
            self._keys = {**self._keys, record.key_id: record}
            self._changes += 1

    def may_reload(self, key: str) -> bool:
        """Whether `project_for(key)` may read the store (an unknown key id, with no
        reload in the last `miss_reload_s`): callers on an event loop then call it on a
        thread."""
        match = _KEY.match(key)
        return (
            match is not None
            and match[1] not in self._keys
            and time.monotonic() - self._missed_at >= self._miss_reload_s
        )

    def project_for(self, key: str) -> str | None:
        """The key's project, or None when the key is malformed, unknown or revoked."""
        match = _KEY.match(key)
        if not match:
            return None
        record = self._keys.get(match[1])
        if record is None and time.monotonic() - self._missed_at >= self._miss_reload_s:
            with self._lock:
                reload = time.monotonic() - self._missed_at >= self._miss_reload_s
                self._missed_at = time.monotonic()
            if reload:
                self._reload()
                record = self._keys.get(match[1])
        if record is None or record.revoked:
            return None
        if not hmac.compare_digest(_sha256(match[2]), record.secret_sha256):
            return None
        return record.project
