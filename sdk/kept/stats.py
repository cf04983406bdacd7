"""The SDK's own observability: thread-safe drop/send counters and rate-limited logging.

Both survive ``os.fork()``: the child gets fresh locks (a lock held by a parent thread at
fork time would otherwise stay locked forever in the child) and zeroed counters, since
the child is a new sender with its own queue.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Literal, get_args

from .process_hooks import after_fork_in_child

logger = logging.getLogger("kept")

Counter = Literal[
    "sent",
    "retries",
    "spooled",
    "dropped_queue_full",
    "dropped_invalid",
    "dropped_unauthorized",
    "dropped_rejected",
    "dropped_shutdown",
    "dropped_closed",
    "dropped_no_transport",
    "dropped_spool_full",
    "dropped_redaction",
    "dropped_survival_full",
    "survival_tracked",
    "survival_cancelled",
    "survival_reverted",
    "survival_timeouts",
    "survival_errors",
    "feedback_token_errors",
    "errors",
]
COUNTERS: tuple[Counter, ...] = get_args(Counter)


class Stats:
    """Named integer counters, safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        _live_stats.add(self)
        _fork_hook.ensure()

    def add(self, name: Counter, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``."""
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        """A consistent copy of all counters."""
        with self._lock:
            return dict(self._counts)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)


class LogLimiter:
    """Logs each kind of message at most once per ``interval`` seconds.

    An app that calls the SDK thousands of times per second while the sink is down must
    not get thousands of log lines; suppressed repeats are counted and reported with the
    next line of the same kind.
    """

    def __init__(self, interval: float = 60.0) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}
        _live_limiters.add(self)
        _fork_hook.ensure()

    def log(self, level: int, key: str, msg: str, *args: object) -> None:
        """Log ``msg % args`` unless a message with the same ``key`` was logged recently."""
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(key, (float("-inf"), 0))
            if now - last < self._interval:
                self._last[key] = (last, suppressed + 1)
                return
            self._last[key] = (now, 0)
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        logger.log(level, msg, *args, stacklevel=2)

    def failed(self, op: str, error: BaseException) -> None:
        """Log that kept's own ``op`` failed; only the error's type, as its message could
        quote the app's data."""
        self.log(logging.ERROR, f"fail:{op}", "kept: %s failed (%s)", op, type(error).__name__)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()


def start_daemon(
    target: Callable[[], object], name: str, stats: Stats, limiter: LogLimiter, what: str
) -> threading.Thread | None:
    """Start a daemon thread running ``target``; None (counted in ``errors``, logged as
    "cannot start ``what``") when the interpreter is shutting down or out of threads."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError as exc:
        stats.add("errors")
        limiter.log(logging.ERROR, f"start:{name}", "kept: cannot start %s (%s)", what, exc)
        return None
    return thread


_live_stats: weakref.WeakSet[Stats] = weakref.WeakSet()
_live_limiters: weakref.WeakSet[LogLimiter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for stats in list(_live_stats):
        stats._after_fork_in_child()
    for limiter in list(_live_limiters):
        limiter._after_fork_in_child()


_fork_hook = after_fork_in_child(_after_fork_in_child)
