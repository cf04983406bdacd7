"""The worker's policy: batching, retries, rejections, flush and close deadlines, lifecycle.

Driven through a scripted test double of the Transport protocol; no server needed.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import kept.delivery
import kept.worker
from kept import Client
from kept.transports import Outcome, Rejection, SendResult

Reply = SendResult | Callable[[list[dict[str, Any]]], SendResult]
SENT = SendResult(Outcome.SENT)
RETRY = SendResult(Outcome.RETRY, detail="HTTP 503")


class Scripted:
    """Transport test double: answers from a script, then SENT (or ``default``)."""

    def __init__(self, *script: Reply, default: Reply = SENT) -> None:
        self.script = list(script)
        self.default = default
        self.calls: list[list[dict[str, Any]]] = []
        self.times: list[float] = []
        self.closed = threading.Event()

    def send(self, events: Sequence[bytes]) -> SendResult:
        batch = [json.loads(e) for e in events]
        self.calls.append(batch)
        self.times.append(time.monotonic())
        reply = self.script.pop(0) if self.script else self.default
        return reply(batch) if callable(reply) else reply

    def reset(self) -> None:
        pass

    def close(self) -> None:
        self.closed.set()

    def models(self, call: int) -> list[str]:
        return [e["model"] for e in self.calls[call]]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept.delivery, "BACKOFF_BASE", 0.01)


def make(clients: list[Client], transport: Scripted, **kwargs: Any) -> Client:
    client = Client(transport=transport, **kwargs)
    clients.append(client)
    return client


def log(client: Client, *models: str) -> None:
    for model in models:
        client.log_generation(model=model)


def test_batches_of_batch_size(clients: list[Client]) -> None:
    release = threading.Event()

    def hold(batch: list[dict[str, Any]]) -> SendResult:
        release.wait(5)
        return SENT

    sink = Scripted(hold)
    client = make(clients, sink, batch_size=3, flush_interval=60)
    log(client, *"abcdefg")  # the first full batch goes out and is held there
    release.set()
    assert client.flush(timeout=5)
    assert [len(c) for c in sink.calls] == [3, 3, 1]
    assert [m for i in range(3) for m in sink.models(i)] == list("abcdefg")


def test_full_batch_wakes_the_worker(clients: list[Client]) -> None:
    sink = Scripted()
    client = make(clients, sink, batch_size=5, flush_interval=60)
    log(client, *"abcd")
    time.sleep(0.2)
    assert sink.calls == []  # not yet: fewer than batch_size and no interval elapsed
    log(client, "e")
    deadline = time.monotonic() + 5
    while not sink.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.models(0) == list("abcde")


def test_flush_interval_sends_without_flush(clients: list[Client]) -> None:
    sink = Scripted()
    client = make(clients, sink, flush_interval=0.05)
    log(client, "a")
    deadline = time.monotonic() + 5
    while client.stats()["sent"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.stats()["sent"] == 1


def test_retry_then_success_resends_the_same_events(clients: list[Client]) -> None:
    sink = Scripted(RETRY, RETRY)
    client = make(clients, sink)
    log(client, "a", "b")
    assert client.flush(timeout=5)
    assert len(sink.calls) == 3
    assert sink.calls[0] == sink.calls[1] == sink.calls[2]  # same event ids: idempotent
    stats = client.stats()
    assert (stats["retries"], stats["sent"], stats["queued"]) == (2, 2, 0)


def test_transport_exception_is_retried(clients: list[Client]) -> None:
    def broken(batch: list[dict[str, Any]]) -> SendResult:
        raise OSError("network")

    sink = Scripted(broken)
    client = make(clients, sink)
    log(client, "a")
    assert client.flush(timeout=5)
    stats = client.stats()
    assert (stats["errors"], stats["retries"], stats["sent"]) == (1, 1, 1)


def test_rejected_indices_are_dropped_and_the_rest_resent(
    clients: list[Client], caplog: pytest.LogCaptureFixture
) -> None:
    rejected = SendResult(
        Outcome.REJECTED,
        rejections=(Rejection(1, "model", "too long"), Rejection(3, "ts", "bad")),
    )
    sink = Scripted(rejected)
    client = make(clients, sink)
    log(client, "a", "b", "c", "d", "e")
    assert client.flush(timeout=5)
    assert sink.models(1) == ["a", "c", "e"]
    stats = client.stats()
    assert (stats["dropped_invalid"], stats["sent"], stats["queued"]) == (2, 3, 0)
    assert "model" in caplog.text
    assert "too long" in caplog.text


def test_rejection_without_usable_indices_drops_the_batch(clients: list[Client]) -> None:
    sink = Scripted(SendResult(Outcome.REJECTED, rejections=(Rejection(99, "", "?"),)))
    client = make(clients, sink)
    log(client, "a", "b")
    assert client.flush(timeout=5)
    assert len(sink.calls) == 1
    assert client.stats()["dropped_invalid"] == 2


def test_too_large_batches_are_halved(clients: list[Client]) -> None:
    def limit(batch: list[dict[str, Any]]) -> SendResult:
        if len(batch) > 2 or any(e["model"] == "huge" for e in batch):
            return SendResult(Outcome.TOO_LARGE)
        return SENT

    sink = Scripted(default=limit)
    client = make(clients, sink)
    log(client, "a", "b", "c", "huge", "d", "e", "f")
    assert client.flush(timeout=5)
    delivered = [
        m for i, call in enumerate(sink.calls) if limit(call) is SENT for m in sink.models(i)
    ]
    assert delivered == ["a", "b", "c", "d", "e", "f"]
    stats = client.stats()
    assert (stats["sent"], stats["dropped_invalid"], stats["queued"]) == (6, 1, 0)


def test_unauthorized_drops_and_logs_once(
    clients: list[Client], caplog: pytest.LogCaptureFixture
) -> None:
    sink = Scripted(default=SendResult(Outcome.UNAUTHORIZED, detail="HTTP 401"))
    client = make(clients, sink, batch_size=2)
    log(client, "a", "b", "c")
    assert client.flush(timeout=5)
    log(client, "d")
    assert client.flush(timeout=5)
    assert client.stats()["dropped_unauthorized"] == 4
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_other_permanent_refusal(clients: list[Client]) -> None:
    sink = Scripted(SendResult(Outcome.FATAL, detail="HTTP 404"))
    client = make(clients, sink)
    log(client, "a", "b")
    assert client.flush(timeout=5)
    assert client.stats()["dropped_rejected"] == 2


def test_flush_with_sink_down_returns_false_by_the_deadline(clients: list[Client]) -> None:
    client = make(clients, Scripted(default=RETRY))
    log(client, "a")
    start = time.monotonic()
    assert client.flush(timeout=0.5) is False
    assert 0.45 <= time.monotonic() - start < 0.8
    assert client.stats()["queued"] == 1


def test_close_counts_what_was_not_sent(clients: list[Client]) -> None:
    sink = Scripted(default=RETRY)
    client = make(clients, sink, batch_size=4)
    log(client, *"abcdefghij")
    start = time.monotonic()
    client.close(timeout=0.5)
    assert time.monotonic() - start < 0.8
    stats = client.stats()
    assert (stats["dropped_shutdown"], stats["queued"], stats["sent"]) == (10, 0, 0)
    assert sink.closed.wait(2)  # the worker stopped and released the transport
    assert client.vote("g", 1) is False
    assert client.stats()["dropped_closed"] == 1


def test_close_returns_on_time_while_a_send_hangs(clients: list[Client]) -> None:
    release = threading.Event()
    entered = threading.Event()

    def hang(batch: list[dict[str, Any]]) -> SendResult:
        entered.set()
        release.wait(10)
        return SENT

    sink = Scripted(hang)
    client = make(clients, sink)
    log(client, "a", "b")
    assert client.flush(timeout=0.05) is False
    assert entered.wait(5)
    start = time.monotonic()
    client.close(timeout=0.3)
    assert time.monotonic() - start < 0.6
    release.set()
    assert sink.closed.wait(2)
    stats = client.stats()
    # The late success is not counted on top of the shutdown drop.
    assert (stats["dropped_shutdown"], stats["sent"]) == (2, 0)


def test_close_flushes_first(clients: list[Client]) -> None:
    sink = Scripted(RETRY)
    client = make(clients, sink, flush_interval=60)
    log(client, "a", "b")
    client.close(timeout=5)
    stats = client.stats()
    assert (stats["sent"], stats["dropped_shutdown"]) == (2, 0)


def test_flush_cuts_a_backoff_pause_short(
    clients: list[Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kept.delivery, "BACKOFF_BASE", 20.0)
    sink = Scripted(RETRY)
    client = make(clients, sink)
    log(client, "a")
    assert client.flush(timeout=0.2) is False  # first attempt failed; 10-20 s pause
    start = time.monotonic()
    assert client.flush(timeout=2)
    assert time.monotonic() - start < 1


def test_odd_timeouts(clients: list[Client]) -> None:
    client = make(clients, Scripted(default=RETRY))
    log(client, "a")
    start = time.monotonic()
    assert client.flush(timeout=float("nan")) is False
    assert client.flush(timeout=-1) is False
    assert time.monotonic() - start < 0.2
    working = make(clients, Scripted())
    log(working, "a")
    assert working.flush(timeout=float("inf"))
    working.close(timeout=float("inf"))
    assert working.stats()["errors"] == 0


def test_retry_after_is_honoured_even_by_flush(clients: list[Client]) -> None:
    sink = Scripted(SendResult(Outcome.RETRY, retry_after=0.4))
    client = make(clients, sink)
    log(client, "a")
    assert client.flush(timeout=5)
    assert sink.times[1] - sink.times[0] >= 0.39


def test_queue_bound_drops_new_events(clients: list[Client]) -> None:
    release = threading.Event()
    entered = threading.Event()

    def hold(batch: list[dict[str, Any]]) -> SendResult:
        entered.set()
        release.wait(10)
        return SENT

    client = make(clients, Scripted(hold), max_queue_size=5, batch_size=1, flush_interval=0.01)
    log(client, "held")
    assert entered.wait(5)  # the worker holds one event in flight
    results = [client.log_generation(model=str(i)) for i in range(8)]
    assert len(results) == 8  # ids are returned even for dropped generations
    stats = client.stats()
    assert (stats["enqueued"], stats["queued"], stats["dropped_queue_full"]) == (6, 6, 3)
    release.set()
    assert client.flush(timeout=5)
    assert client.stats()["sent"] == 6


def test_concurrent_callers_lose_nothing(clients: list[Client]) -> None:
    sink = Scripted()
    client = make(clients, sink, batch_size=50, flush_interval=0.01)

    def produce(n: int) -> None:
        for i in range(500):
            client.vote(f"{n}-{i}", 1)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(timeout=10)
    ids = [e["generation_id"] for call in sink.calls for e in call]
    assert len(ids) == len(set(ids)) == 2000
    assert client.stats()["sent"] == 2000


def test_exit_hook_flushes_open_clients_and_forgets_closed_ones(clients: list[Client]) -> None:
    sinks = [Scripted(), Scripted()]
    first, second = (make(clients, s, flush_interval=60) for s in sinks)
    log(first, "a")
    log(second, "b")
    kept.worker._close_all_at_exit()
    assert [s.models(0) for s in sinks] == [["a"], ["b"]]
    assert first.vote("g", 1) is False  # closed by the hook

    assert first._worker is not None
    worker_ref = weakref.ref(first._worker)
    assert worker_ref() not in kept.worker._workers
    clients.clear()
    del first, second
    gc.collect()
    assert worker_ref() is None  # nothing keeps a closed client's worker alive


def test_dropped_client_lets_its_thread_end(clients: list[Client]) -> None:
    sink = Scripted()
    client = Client(transport=sink, flush_interval=0.05)
    log(client, "a")
    assert client._worker is not None
    thread = client._worker._thread
    assert thread is not None
    del client
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()
    assert sink.models(0) == ["a"]  # drained before ending


def test_an_event_that_cannot_be_encoded_costs_only_itself(clients: list[Client]) -> None:
    # Slices are encoded in one go; a failure re-encodes its slice one event at a time.
    # Every other event is then sent once, in order, with an id of its own.
    sink = Scripted()
    client = make(clients, sink, batch_size=1_000)
    n = 3 * kept.worker.ENCODE_SLICE + 5
    bad = kept.worker.ENCODE_SLICE + 7
    unjson: Any = [{"role": "user", "content": object()}]
    for i in range(n):
        client.log_generation(model=f"m{i}", input=unjson if i == bad else "fine")
    assert client.flush(timeout=5)
    sent = [e for call in sink.calls for e in call]
    assert [e["model"] for e in sent] == [f"m{i}" for i in range(n) if i != bad]
    assert len({e["event_id"] for e in sent}) == n - 1
    stats = client.stats()
    assert (stats["sent"], stats["dropped_invalid"], stats["queued"]) == (n - 1, 1, 0)
