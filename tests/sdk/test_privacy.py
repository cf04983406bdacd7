"""Consent, redaction, bounded memory and async use of the Client.

The Recorder transport (the SDK's own seam) stands in for the sink.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import kept
from kept import Client, redact_pii
from tests.sdk.recorder import Recorder

MESSAGES = [
    {"role": "system", "content": "You answer for ACME support."},
    {"role": "user", "content": "I am jane.doe@example.com, call me on +44 20 7946 0958."},
]
OUTPUT = "Sure Jane, we will write to jane.doe@example.com today."


def make(clients: list[Client], recorder: Recorder, **kwargs: Any) -> Client:
    kwargs.setdefault("flush_interval", 0.05)
    client = Client(transport=recorder, **kwargs)
    clients.append(client)
    return client


def by_type(recorder: Recorder, kind: str) -> list[dict[str, Any]]:
    return [e for e in recorder.events if e["type"] == kind]


def log_everything(client: Client) -> str:
    gid = client.log_generation(
        model="m", input=MESSAGES, output=OUTPUT, latency_ms=120, output_tokens=12
    )
    client.vote(gid, -1, comment="wrong address, mine is jane@example.org")
    client.correct(gid, "Sure Jane, we will write to jane@example.org today.")
    client.score(gid, "tone", 0.8, comment="polite to jane@example.org")
    return gid


def test_without_content_capture_no_text_leaves(clients: list[Client]) -> None:
    recorder = Recorder()
    client = make(clients, recorder, capture_content=False, survival_checkpoints=(1,))
    gid = log_everything(client)
    client.accept(gid, current_text=lambda: "Hi!\n" + OUTPUT)  # the output is remembered
    deadline = time.monotonic() + 10
    while not by_type(recorder, "survival") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.flush(5)
    sent = str(recorder.events)
    assert "jane" not in sent.lower() and "ACME" not in sent
    (generation,) = by_type(recorder, "generation")
    assert "input" not in generation and "output" not in generation
    assert (generation["latency_ms"], generation["output_tokens"]) == (120, 12)
    assert [e["name"] for e in by_type(recorder, "action")] == ["correct", "accept"]
    assert by_type(recorder, "correction") == []
    assert "comment" not in by_type(recorder, "vote")[0]
    assert by_type(recorder, "vote")[0]["value"] == -1
    assert "comment" not in by_type(recorder, "score")[0]
    assert [(e["checkpoint_s"], e["score"]) for e in by_type(recorder, "survival")] == [(1, 1.0)]


def test_redaction_runs_on_the_sender_thread_over_every_text(clients: list[Client]) -> None:
    recorder = Recorder()
    threads: set[int] = set()

    def redact(text: str) -> str:
        threads.add(threading.get_ident())
        return redact_pii(text)

    client = make(clients, recorder, redact=redact)
    log_everything(client)
    client.log_generation(model="m", input="mail bob@example.com", output="ok")
    assert threads == set()  # nothing ran on the app's thread
    assert client.flush(5)
    assert threads == recorder.threads and threading.get_ident() not in threads
    sent = str(recorder.events)
    assert "@example" not in sent and "7946" not in sent
    generation = by_type(recorder, "generation")[0]
    assert generation["input"] == [
        MESSAGES[0],
        {"role": "user", "content": "I am [EMAIL], call me on [PHONE]."},
    ]
    assert generation["output"] == "Sure Jane, we will write to [EMAIL] today."
    assert (
        by_type(recorder, "correction")[0]["text"] == "Sure Jane, we will write to [EMAIL] today."
    )
    assert by_type(recorder, "vote")[0]["comment"] == "wrong address, mine is [EMAIL]"
    assert by_type(recorder, "score")[0]["comment"] == "polite to [EMAIL]"
    assert by_type(recorder, "generation")[1]["input"] == "mail [EMAIL]"
    assert MESSAGES[1]["content"].startswith("I am jane")  # the app's objects are untouched


def test_a_failing_redaction_drops_the_event_instead_of_sending_it(
    clients: list[Client],
) -> None:
    recorder = Recorder()

    def redact(text: str) -> str:
        if "secret" in text:
            raise RuntimeError(text)  # must not end up in a log either
        return text

    client = make(clients, recorder, redact=redact)
    client.log_generation(model="m", output="the secret plan")
    client.log_generation(model="m", output="fine")
    client.vote("g", 1)  # no text to redact
    assert client.flush(5)
    assert [e.get("output") for e in recorder.events] == ["fine", None]
    stats = client.stats()
    assert (stats["dropped_redaction"], stats["sent"], stats["errors"]) == (1, 2, 0)

    odd = make(clients, recorder, redact=lambda text: None)
    odd.log_generation(model="m", output="x")
    assert odd.flush(5) and odd.stats()["dropped_redaction"] == 1


def test_memory_is_bounded_by_bytes_as_well_as_events(clients: list[Client]) -> None:
    recorder = Recorder()
    gate = threading.Event()
    original = recorder.send

    def slow_send(events: Any) -> Any:
        gate.wait(10)  # the sink is stuck: everything stays queued
        return original(events)

    recorder.send = slow_send  # type: ignore[method-assign]
    client = make(clients, recorder, max_queue_bytes=1_000_000, batch_size=1)
    big = "x" * 300_000
    results = [client.log_generation(model="m", output=big) for _ in range(10)]
    assert len(results) == 10
    stats = client.stats()
    # The first may already be in flight; of the rest, about 3 fit.
    assert 2 <= stats["enqueued"] <= 4 and stats["dropped_queue_full"] == 10 - stats["enqueued"]
    assert client.vote("g", 1)  # small events still fit
    gate.set()
    assert client.flush(5)
    assert client.log_generation(model="m", output=big)  # room again once sent


def test_async_flush_and_close_do_not_block_the_loop(clients: list[Client]) -> None:
    recorder = Recorder()
    client = make(clients, recorder, flush_interval=60)

    async def app() -> tuple[bool, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        client.log_generation(model="async")
        flushed = await client.aflush(5)
        await client.aclose(5)
        task.cancel()
        return flushed, ticks

    flushed, ticks = asyncio.run(app())
    assert flushed and ticks >= 1
    assert [e["model"] for e in recorder.events] == ["async"]
    assert client.stats()["dropped_closed"] == 0
    assert not client.vote("g", 1)


def test_module_level_async_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept, "_default", None)
    assert asyncio.run(kept.aflush()) is True  # no client yet
    recorder = Recorder()
    kept.init(transport=recorder)
    kept.log_generation(model="m")
    assert asyncio.run(kept.aflush(5))
    asyncio.run(kept.aclose(5))
    assert [e["model"] for e in recorder.events] == ["m"]


def test_a_bad_redact_argument(clients: list[Client]) -> None:
    recorder = Recorder()
    client = make(clients, recorder, redact="pii")
    assert not client.vote("g", 1)
    assert client.stats()["dropped_no_transport"] == 1
    with pytest.raises(ValueError, match="redact must be a function"):
        Client(transport=recorder, redact="pii", debug=True)  # type: ignore[arg-type]
