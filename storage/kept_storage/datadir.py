"""The data directory: who owns it, how to reach the server that does, its secrets.

One process owns a chDB directory, so `kept serve` takes an exclusive `flock` on
`<data>/kept.lock` (released by the kernel even after kill -9) and writes where it
listens to `<data>/server.json`. Other commands see the lock and go through the
server's HTTP API with the admin token from `<data>/admin-token`. The secret that signs
feedback tokens, unless `KEPT_FEEDBACK_SECRET` sets one, is in `<data>/feedback-secret`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger("kept.datadir")

# Keys' hashes, secrets, events: only the owner reads them.
DIR_MODE = 0o700
FILE_MODE = 0o600


class DataDirUnusable(Exception):
    """The data directory cannot be created or written."""


class DataDirBusy(Exception):
    """Another process holds the data directory."""

    def __init__(self, path: Path, url: str | None, pid: int | None) -> None:
        who = f"kept serve (pid {pid}) at {url}" if url else "another kept process"
        super().__init__(f"{path} is in use by {who}")
        self.url = url
        self.pid = pid


_PRIVATE_FILES = ("kept.lock", "server.json", "admin-token", "feedback-secret", "demo-key")


@dataclass(frozen=True)
class ServerInfo:
    url: str
    pid: int


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


class DataDir:
    """Paths and ownership of one kept data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser().resolve()
        self._lock_file: IO[str] | None = None

    @property
    def store_dir(self) -> Path:
        return self.path / "clickhouse"

    @property
    def demo_key_path(self) -> Path:
        return self.path / "demo-key"

    @property
    def owned(self) -> bool:
        """True when this process holds the directory."""
        return self._lock_file is not None

    def server_info(self) -> ServerInfo | None:
        """Where the owning server listens, when a server owns the directory now."""
        if not self.is_held():
            return None
        try:
            data = json.loads((self.path / "server.json").read_text(encoding="utf-8"))
            return ServerInfo(url=str(data["url"]), pid=int(data["pid"]))
        except (OSError, ValueError, KeyError):
            return None

    def is_held(self) -> bool:
        """True when another process holds the lock (this one's own lock does not count)."""
        if self._lock_file is not None or not (self.path / "kept.lock").exists():
            return False
        with open(self.path / "kept.lock", "a+", encoding="utf-8") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    def acquire(self) -> None:
        """Own the directory (created if missing, made private) or raise DataDirBusy;
        DataDirUnusable when it cannot be created or written."""
        try:
            self._make_private()
            fd = os.open(self.path / "kept.lock", os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise DataDirUnusable(f"cannot use data directory {self.path}: {reason}") from None
        f = os.fdopen(fd, "a+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            info = self.server_info()
            url, pid = (info.url, info.pid) if info else (None, None)
            raise DataDirBusy(self.path, url, pid) from None
        self._lock_file = f

    def _make_private(self) -> None:
        """Create the directory and the embedded store's with mode 0700; tighten them
        (and kept's files) when an earlier version left them readable by others."""
        foreign = self.path.is_dir() and not self._made_by_kept()
        self.path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.store_dir.mkdir(mode=DIR_MODE, exist_ok=True)
        owned = [] if foreign else [(self.path, DIR_MODE)]  # never chmod a user's $HOME
        for path, mode in (
            owned
            + [(self.store_dir, DIR_MODE)]
            + [(self.path / name, FILE_MODE) for name in _PRIVATE_FILES]
        ):
            if path.exists() and path.stat().st_mode & 0o777 & ~mode:
                path.chmod(mode)
                log.info("made %s private (mode %04o)", path, mode)
        # A directory that is there but not writable fails here, not in the store later.
        probe = self.path / f".write-test.{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE))
        probe.unlink()

    def _made_by_kept(self) -> bool:
        """Empty, or holding kept's lock: a directory kept may make private."""
        return (self.path / "kept.lock").exists() or not any(self.path.iterdir())

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / "server.json").unlink()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def announce(self, url: str) -> None:
        _write_private(self.path / "server.json", json.dumps({"url": url, "pid": os.getpid()}))

    def admin_token(self) -> str:
        """The directory's admin token, made on first use."""
        path = self.path / "admin-token"
        if not path.exists():
            self.path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            _write_private(path, secrets.token_urlsafe(32))
        return path.read_text(encoding="utf-8").strip()

    def feedback_secret(self) -> bytes:
        """The directory's feedback-token secret, made on first use.

        Written to a temporary file and renamed into place, so a crash mid-write never
        leaves an empty secret behind.
        """
        path = self.path / "feedback-secret"
        if not path.exists():
            self.path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            partial = path.with_name(f".feedback-secret.{os.getpid()}")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(secrets.token_urlsafe(32))
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, path)
        return path.read_text(encoding="utf-8").strip().encode()

    def read_admin_token(self) -> str | None:
        try:
            return (self.path / "admin-token").read_text(encoding="utf-8").strip()
        except OSError:
            return None

    def save_demo_key(self, key: str) -> None:
        _write_private(self.demo_key_path, key + "\n")

    def read_demo_key(self) -> str | None:
        try:
            return self.demo_key_path.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
