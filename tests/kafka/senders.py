"""Apps that send known traffic while the failure tests break things: every event that was
acknowledged to them is counted, so the test can say what the store must hold."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from kept import Client
from tests.helpers import ServeProcess, feedback, generation, http

DROPS = ("dropped_queue_full", "dropped_shutdown", "dropped_spool_full", "dropped_closed")
"""The SDK's counters of events it gave up on for a reason the sink may cause."""


class SdkSender(threading.Thread):
    """An app logging a generation and a vote on it in a loop (and accepting every
    `accept_every`-th), through its client."""

    def __init__(self, client: Client, stop: threading.Event, accept_every: int = 0) -> None:
        super().__init__(name="sdk-sender", daemon=True)
        self.client, self.stop, self.accept_every = client, stop, accept_every
        self.generations: list[str] = []
        self.votes = 0
        self.accepted: set[str] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            gid = self.client.log_generation(model="gpt-test", input="q?", output="a.")
            self.generations.append(gid)
            self.votes += self.client.vote(gid, 1)
            due = self.accept_every and len(self.generations) % self.accept_every == 0
            if due and self.client.accept(gid):
                self.accepted.add(gid)
            time.sleep(0.01)

    def assert_all_sent(self, flushed: bool) -> dict[str, int]:
        """After `flush`: the client gave up on nothing and sent everything it took."""
        stats = self.client.stats()
        assert flushed, f"the SDK did not get everything out: {stats}"
        assert {k: stats[k] for k in DROPS} == dict.fromkeys(DROPS, 0), stats
        taken = len(self.generations) + self.votes + len(self.accepted)
        assert stats["enqueued"] == taken == stats["sent"], stats
        return stats


class HttpSender(threading.Thread):
    """A client of the HTTP intake posting batches (5 generations, a vote on each, an
    accept on every `accept_every`-th) in a loop to `servers` in turn, as a round-robin
    load balancer would, resending a refused batch as it is (same event ids) until it is
    answered 202."""

    def __init__(
        self,
        servers: Sequence[ServeProcess],
        stop: threading.Event,
        key: str | None = None,
        accept_every: int = 0,
    ) -> None:
        super().__init__(name="http-sender", daemon=True)
        self.servers, self.stop, self.key, self.accept_every = servers, stop, key, accept_every
        self.acknowledged: list[dict[str, Any]] = []
        self.unacknowledged: list[dict[str, Any]] = []
        self.refusals: Counter[str] = Counter()
        self._turn = 0
        self._made = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.send_batch()
            time.sleep(0.03)

    def send_batch(self, give_up_after: float = 120) -> bool:
        batch: list[dict[str, Any]] = []
        for _ in range(5):
            g = generation()
            batch += [g, feedback("vote", g["generation_id"], value=1)]
            self._made += 1
            if self.accept_every and self._made % self.accept_every == 0:
                batch.append(feedback("action", g["generation_id"], name="accept"))
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            server = self.servers[self._turn % len(self.servers)]
            self._turn += 1
            try:
                answer = server.post(batch, self.key)
            except OSError as exc:
                self.refusals[type(exc).__name__] += 1
            else:
                if answer.status == 202:
                    self.acknowledged += batch
                    return True
                self.refusals[str(answer.status)] += 1
            time.sleep(0.5)
        self.unacknowledged += batch
        return False

    def generation_ids(self, events: list[dict[str, Any]]) -> set[str]:
        return {e["generation_id"] for e in events if e["type"] == "generation"}

    def accepted_ids(self) -> set[str]:
        return {
            e["generation_id"]
            for e in self.acknowledged
            if e["type"] == "action" and e["name"] == "accept"
        }

    def votes(self) -> int:
        return sum(1 for e in self.acknowledged if e["type"] == "vote")


def metric(server: ServeProcess, name: str) -> float:
    text = str(http("GET", server.url + "/metrics", timeout=10).body)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def eventually(condition: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until `condition()` held, or None when it did not within `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.2)
    return round(time.monotonic() - started, 1)


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> float:
    waited = eventually(condition, timeout)
    assert waited is not None, f"timed out waiting for {what}"
    return waited
