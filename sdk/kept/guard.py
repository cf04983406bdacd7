"""The error policy of the client's public calls: never raise into the app.

Every public :class:`~kept.client.Client` method runs its body inside ``with
guard[op]:``. An invalid argument is dropped and counted (``dropped_invalid``); any
other exception of kept's own is counted (``errors``) and logged by its type only, and
the method returns its "nothing happened" value. With ``debug=True`` both raise
instead, as they are, so that tests see them.
"""

from __future__ import annotations

import logging
from types import TracebackType

from .arguments import InvalidArgumentError, is_number
from .stats import LogLimiter, Stats

logger = logging.getLogger("kept")


class Guard(dict[str, "GuardedCall"]):
    """Counts and logs what goes wrong in a client's calls; raises in debug mode.

    ``guard[op]`` is the context manager of the public call ``op``, made on first use (a
    dict lookup: the guard costs the app's thread next to nothing).
    """

    def __init__(self, stats: Stats, limiter: LogLimiter, *, debug: bool) -> None:
        super().__init__()
        self.debug = debug
        self._stats = stats
        self._limiter = limiter

    def __missing__(self, op: str) -> GuardedCall:
        call = self[op] = GuardedCall(self, op)
        return call

    def invalid(self, op: str, why: str) -> bool:
        """Drop an event for an invalid argument: counted and logged; False."""
        self._stats.add("dropped_invalid")
        if self.debug:
            raise InvalidArgumentError(f"kept.{op}: {why}")
        self._limiter.log(
            logging.WARNING, f"invalid:{op}:{why}", "kept.%s: %s", op, why + "; dropped"
        )
        return False

    def setting(self, name: str, value: float, default: float, minimum: float) -> float:
        """``value`` when it is a number >= ``minimum``; else ``default`` (logged)."""
        if is_number(value) and value >= minimum:
            return value
        if self.debug:
            raise InvalidArgumentError(f"{name} must be a number >= {minimum}")
        logger.warning("kept: invalid %s; using %s", name, default)
        return default

    def failed(self, op: str, error: Exception) -> None:
        """Count and log one of kept's own errors (not in debug mode: it propagates)."""
        self._stats.add("errors")
        self._limiter.failed(op, error)


class GuardedCall:
    """``with guard[op]:``: an exception of the block is counted and swallowed (unless
    debug); the method then goes on after the block to return its fallback value."""

    __slots__ = ("_guard", "op")

    def __init__(self, guard: Guard, op: str) -> None:
        self._guard = guard
        self.op = op

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception) or self._guard.debug:
            return False
        self._guard.failed(self.op, exc)
        return True
