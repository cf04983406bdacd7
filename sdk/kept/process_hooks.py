"""Interpreter hooks (at exit, in a forked child), registered on first use, never at import.

Importing kept must leave the process as it was: a tool that only imports it gets no
exit handler and no fork handler. Each module declares its hooks as :class:`Hook`
objects, and the objects that need them (a worker, counters, the default client...)
call :meth:`Hook.ensure` when they are made.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Literal

_lock = threading.Lock()
_lock_renewed_in_child = False


class Hook:
    """A function for the interpreter to call, registered once by :meth:`ensure`."""

    __slots__ = ("_function", "_registered", "_when")

    def __init__(self, function: Callable[[], object], when: Literal["exit", "fork"]) -> None:
        self._function = function
        self._when = when
        self._registered = False

    def ensure(self) -> None:
        """Register the hook unless that was done already (thread-safe, cheap after once)."""
        if self._registered:
            return
        global _lock_renewed_in_child
        with _lock:
            if self._registered:
                return
            fork_hooks = hasattr(os, "register_at_fork")
            if not _lock_renewed_in_child and fork_hooks:
                os.register_at_fork(after_in_child=_renew_lock)
                _lock_renewed_in_child = True
            if self._when == "exit":
                atexit.register(self._function)
            elif fork_hooks:
                os.register_at_fork(after_in_child=self._function)
            self._registered = True


def at_exit(function: Callable[[], object]) -> Hook:
    """A hook that calls ``function`` when the interpreter exits."""
    return Hook(function, "exit")


def after_fork_in_child(function: Callable[[], object]) -> Hook:
    """A hook that calls ``function`` in the child of an ``os.fork()`` (not on Windows)."""
    return Hook(function, "fork")


def _renew_lock() -> None:
    # A thread of the parent may have held the lock at the fork; the child has no such thread.
    global _lock
    _lock = threading.Lock()
