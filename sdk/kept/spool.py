"""A bounded on-disk spool: where batches wait while the sink is unreachable.

Layout: ``<base>/<sink id>/<slot>/``. The sink id is a hash of the endpoint and its
credentials, so events spooled for one sink are never replayed into another. Each live
spool owns one numbered slot through an exclusive ``flock`` on ``<slot>/.lock`` (the kernel
releases it when the process dies), so two processes never write the same files; a second
process takes the next slot, and whoever opens a spool adopts the segments of slots that
nobody holds. A slot holds append-only segment files named ``<time_ns>-<pid>-<seq>.seg``,
each a run of event JSON records, one per line (JSON never contains a raw newline), written
with one ``write`` and an ``fsync`` per batch. Segment names sort oldest first.

A crash can tear only the last record of a segment; a line without its newline is skipped
on replay. A segment is deleted once every event in it was sent, so a crash during replay
resends at most one segment: event ids are fixed when events are encoded, and the server
stores a repeated id once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no spool
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("kept")

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
SEGMENT_BYTES = 1024 * 1024
MAX_SLOTS = 16
_SUFFIX = ".seg"


def default_base() -> Path:
    """``$KEPT_SPOOL_DIR``, else ``$XDG_CACHE_HOME/kept/spool``, else ``~/.cache/kept/spool``."""
    configured = os.environ.get("KEPT_SPOOL_DIR")
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kept" / "spool"


def spool_dir_for(base: Path, *identity: str | None) -> Path:
    """The spool directory of one sink (endpoint, key, project...) under ``base``."""
    digest = hashlib.sha256("\n".join(i or "" for i in identity).encode()).hexdigest()
    return base / digest[:16]


def make_spool(
    spool_dir: str | os.PathLike[str] | bool | None, max_bytes: int, *identity: str | None
) -> Spool | None:
    """The spool a client asked for: ``False`` (or ``KEPT_SPOOL_DIR=off``) for none,
    ``None``/``True`` for the default base directory, or a base directory."""
    if spool_dir is False:
        return None
    if spool_dir is None or spool_dir is True:
        if os.environ.get("KEPT_SPOOL_DIR", "").strip().lower() in ("off", "false", "0", "no"):
            return None
        base = default_base()
    else:
        base = Path(spool_dir).expanduser()
    return Spool(spool_dir_for(base, *identity), max_bytes)


@dataclass(frozen=True)
class Segment:
    """One sealed segment file and the events it holds, oldest first."""

    path: Path
    events: list[bytes]
    size: int


def read_segment(path: Path) -> list[bytes]:
    """The complete records of a segment file; a torn last record is left out."""
    lines = path.read_bytes().split(b"\n")
    # The part after the last newline is empty, or a record whose write was cut short.
    return [line for line in lines[:-1] if line]


class Spool:
    """Segments of encoded events in a locked directory slot, bounded in bytes.

    Thread-safe. The directory is created and locked on first use, not in the
    constructor, so an app whose sink never fails never touches the disk.
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._opened = False
        self._usable = fcntl is not None
        self._slot: Path | None = None
        self._lock_fd: int | None = None
        self._segments: list[tuple[str, int]] = []  # (name, size), oldest first
        self._active_fd: int | None = None  # the newest segment, open for appending
        self._seq = 0
        self._last_ns = 0
        self.bytes = 0
        """Bytes of events waiting in the spool (read without a lock: an int is atomic)."""

    @property
    def pending(self) -> bool:
        """True when events wait in the spool."""
        return self.bytes > 0

    @property
    def slot(self) -> Path | None:
        """The slot directory this spool writes to, once opened."""
        return self._slot

    def open(self) -> bool:
        """Lock a slot and adopt orphaned segments; False when no slot is usable."""
        with self._lock:
            return self._open()

    def append(self, events: Sequence[bytes]) -> int:
        """Write ``events`` durably; returns how many fit under ``max_bytes`` (a prefix)."""
        with self._lock:
            if not self._open():
                return 0
            records: list[bytes] = []
            size = 0
            for event in events:
                if self.bytes + size + len(event) + 1 > self.max_bytes:
                    break
                records.append(event)
                size += len(event) + 1
            if not records:
                return 0
            fd = self._active()
            os.write(fd, b"\n".join(records) + b"\n")
            os.fsync(fd)
            name, written = self._segments[-1]
            self._segments[-1] = (name, written + size)
            self.bytes += size
            if written + size >= self.segment_bytes:
                self._seal()
            return len(records)

    def oldest(self) -> Segment | None:
        """The oldest segment with its events, sealed first when it is the one being written."""
        with self._lock:
            if not self._open() or not self._segments:
                return None
            if len(self._segments) == 1 and self._active_fd is not None:
                self._seal()
            assert self._slot is not None
            name, size = self._segments[0]
            path = self._slot / name
            try:
                events = read_segment(path)
            except FileNotFoundError:  # removed behind our back: forget it
                self._forget(0)
                return Segment(path, [], size)
            return Segment(path, events, size)

    def remove(self, segment: Segment) -> None:
        """Delete a segment whose events were all sent."""
        with self._lock:
            for i, (name, _) in enumerate(self._segments):
                if name == segment.path.name:
                    segment.path.unlink(missing_ok=True)
                    self._forget(i)
                    return

    def close(self) -> None:
        """Release the slot; events stay on disk for the next process."""
        with self._lock:
            self._seal()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # closing the last descriptor releases the flock
            self._lock_fd = None
            self._opened = False
            self._slot = None
            self._segments = []
            self.bytes = 0

    def reset(self) -> None:
        """After ``os.fork()`` in the child: drop the parent's slot without unlocking it."""
        for fd in (self._active_fd, self._lock_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)  # the parent keeps its own descriptor, and so its lock
        self._init_state()

    # --- internals (called with the lock held) ------------------------------------------

    def _open(self) -> bool:
        if self._opened or not self._usable:
            return self._usable
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            slot = self._lock_slot()
        except OSError as exc:
            logger.error("kept: cannot use the spool at %s (%s)", self.directory, exc)
            self._usable = False
            return False
        if slot is None:
            logger.warning(
                "kept: all %d spool slots in %s are in use; this client will not spool",
                MAX_SLOTS,
                self.directory,
            )
            self._usable = False
            return False
        self._slot = slot
        self._adopt_orphans()
        self._segments = sorted(
            (p.name, p.stat().st_size) for p in slot.iterdir() if p.name.endswith(_SUFFIX)
        )
        self.bytes = sum(size for _, size in self._segments)
        self._opened = True
        return True

    def _lock_slot(self) -> Path | None:
        assert fcntl is not None
        for i in range(MAX_SLOTS):
            slot = self.directory / str(i)
            slot.mkdir(exist_ok=True)
            fd = os.open(slot / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._lock_fd = fd
            if i:
                logger.info("kept: spool slot 0 is in use by another client; using slot %d", i)
            return slot
        return None

    def _adopt_orphans(self) -> None:
        """Move the segments of slots that no live process holds into this one."""
        assert fcntl is not None
        assert self._slot is not None
        for other in self.directory.iterdir():
            if other == self._slot or not (other / ".lock").exists():
                continue
            fd = os.open(other / ".lock", os.O_RDWR)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process owns it and replays it itself
                adopted = [p for p in other.iterdir() if p.name.endswith(_SUFFIX)]
                for path in adopted:
                    path.rename(self._slot / path.name)
            finally:
                os.close(fd)
            if adopted:
                _fsync_dir(self._slot)

    def _active(self) -> int:
        if self._active_fd is None:
            assert self._slot is not None
            # Names must sort in write order even if the wall clock steps back.
            self._last_ns = max(time.time_ns(), self._last_ns + 1)
            self._seq += 1
            name = f"{self._last_ns:020d}-{os.getpid()}-{self._seq:06d}{_SUFFIX}"
            self._active_fd = os.open(
                self._slot / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600
            )
            _fsync_dir(self._slot)  # the new file's name must survive a crash too
            self._segments.append((name, 0))
        return self._active_fd

    def _seal(self) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
            self._active_fd = None

    def _forget(self, index: int) -> None:
        _, size = self._segments.pop(index)
        self.bytes -= size


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
