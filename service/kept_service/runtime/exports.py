"""The threads that run exports: a fixed number, each export on its own from start to
end, and no waiting line. An export that finds every thread busy is refused at once
(the route answers 429), so exports never queue up holding requests, memory or the
threads that other routes share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("kept.export")


class ExportWorkers:
    """At most `size` exports at once, each on a thread of this pool."""

    def __init__(self, size: int) -> None:
        self.size = size
        # Long-lived threads: each keeps its own store client for the next export.
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="kept-export")
        self._free = threading.BoundedSemaphore(size)

    def try_start(self, work: Callable[[], None]) -> bool:
        """Run `work` on a free thread now; False, without waiting, when none is free."""
        if not self._free.acquire(blocking=False):
            return False

        def run() -> None:
            try:
                work()
            except Exception:  # pragma: no cover - work reports its own failures
                log.exception("export failed")
            finally:
                self._free.release()

        try:
            self._executor.submit(run)
        except RuntimeError:  # shut down
            self._free.release()
            return False
        return True

    def close(self) -> None:
        """Take no more exports; running ones stop when their client goes away."""
        self._executor.shutdown(wait=False, cancel_futures=True)
