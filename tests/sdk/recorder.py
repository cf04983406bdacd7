"""A Transport test double (the SDK's own seam): accepts everything and remembers it."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from kept.transports import Outcome, SendResult


class Recorder:
    """Records every batch it is sent, and the threads that sent them."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.threads: set[int] = set()
        self.lock = threading.Lock()

    def send(self, events: Sequence[bytes]) -> SendResult:
        with self.lock:
            self.threads.add(threading.get_ident())
            self.batches.append([json.loads(e) for e in events])
        return SendResult(Outcome.SENT)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for batch in self.batches for e in batch]
