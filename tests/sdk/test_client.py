"""The Client's API: event shapes, validation, misconfiguration, module-level helpers.

A recording test double of the Transport protocol (the SDK's own seam) stands in for
the sink; no kept server is needed.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import kept
from kept import Client
from kept_wire.encoding import format_ts, new_id
from tests.sdk.recorder import Recorder

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


@pytest.fixture
def make_client(recorder: Recorder) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(**kwargs: Any) -> Client:
        kwargs.setdefault("transport", recorder)
        client = Client(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=0)


def common(event: dict[str, Any]) -> dict[str, Any]:
    """Check and strip the fields every event has."""
    assert list(event)[:4] == ["type", "event_id", "generation_id", "ts"]
    assert uuid.UUID(event["event_id"]).version == 4
    assert TS_RE.match(event["ts"]), event["ts"]
    return {k: v for k, v in event.items() if k not in ("event_id", "ts")}


def test_event_shape_of_every_method(
    make_client: Callable[..., Client], recorder: Recorder
) -> None:
    client = make_client()
    ids: dict[str, Any] = {"user_id": "u1", "session_id": "s1"}
    messages = [{"role": "user", "content": "Summarize this"}]
    gid = client.log_generation(
        model="gpt-x",
        input=messages,
        output="A summary.",
        prompt_version="summarize@3",
        latency_ms=840,
        input_tokens=12,
        output_tokens=5,
        cost_usd=0.0004,
        metadata={"tier": "pro"},
        **ids,
    )
    assert client.vote(gid, -1, comment="too long", **ids)
    assert client.action(gid, "copy", value=3, **ids)
    assert client.accept(gid, **ids)
    assert client.correct(gid, "A shorter summary.", **ids)
    assert client.score(gid, "faithfulness", 1, source="llm", comment="ok", **ids)
    assert client.survival(gid, 30, 0.75, **ids)
    assert client.flush(timeout=5)

    got = [common(e) for e in recorder.events]
    base = {"generation_id": gid, "user_id": "u1", "session_id": "s1"}
    assert got == [
        {
            "type": "generation",
            **base,
            "model": "gpt-x",
            "prompt_version": "summarize@3",
            "input": messages,
            "output": "A summary.",
            "latency_ms": 840,
            "input_tokens": 12,
            "output_tokens": 5,
            "cost_usd": 0.0004,
            "metadata": {"tier": "pro"},
        },
        {"type": "vote", **base, "value": -1, "comment": "too long"},
        {"type": "action", **base, "name": "copy", "value": 3},
        {"type": "action", **base, "name": "accept"},
        {"type": "correction", **base, "text": "A shorter summary."},
        {
            "type": "score",
            **base,
            "name": "faithfulness",
            "value": 1.0,
            "source": "llm",
            "comment": "ok",
        },
        {"type": "survival", **base, "checkpoint_s": 30, "score": 0.75},
    ]
    assert isinstance(got[5]["value"], float)
    assert len({e["event_id"] for e in recorder.events}) == 7
    assert "project" not in recorder.events[0]


def test_optional_fields_are_omitted(
    make_client: Callable[..., Client], recorder: Recorder
) -> None:
    client = make_client()
    gid = client.log_generation(model="m")
    client.vote(gid, 1)
    client.action(gid, "dismiss")
    client.score(gid, "len", 0.5)
    assert client.flush(timeout=5)
    assert [common(e) for e in recorder.events] == [
        {"type": "generation", "generation_id": gid, "model": "m"},
        {"type": "vote", "generation_id": gid, "value": 1},
        {"type": "action", "generation_id": gid, "name": "dismiss"},
        {"type": "score", "generation_id": gid, "name": "len", "value": 0.5, "source": "code"},
    ]


def test_timestamps(make_client: Callable[..., Client], recorder: Recorder) -> None:
    client = make_client()
    before = datetime.now(timezone.utc)
    client.vote("g", 1)
    paris = timezone(timedelta(hours=2))
    client.vote("g", 1, ts=datetime(2026, 11, 21, 3, 5, 0, 123456, tzinfo=paris))
    client.vote("g", 1, ts=datetime(2026, 11, 21, 1, 5, 0, 999999))  # naive: taken as UTC
    assert client.flush(timeout=5)
    now_ts, aware_ts, naive_ts = (e["ts"] for e in recorder.events)
    assert abs(datetime.fromisoformat(now_ts) - before) < timedelta(seconds=5)
    assert aware_ts == "2026-11-21T01:05:00.123+00:00"
    assert naive_ts == "2026-11-21T01:05:00.999+00:00"
    assert format_ts(0.0) == "1970-01-01T00:00:00.000+00:00"


def test_generation_ids(make_client: Callable[..., Client], recorder: Recorder) -> None:
    client = make_client()
    assert client.log_generation(model="m", generation_id="mine") == "mine"
    made = client.log_generation(model="m")
    assert uuid.UUID(made).version == 4
    assert client.flush(timeout=5)
    assert [e["generation_id"] for e in recorder.events] == ["mine", made]
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 4 for i in ids)
    assert all(uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not run anything of pytest's
        try:
            os.write(write, new_id().encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    # Without a reseed the child's first id would be the parent's next one.
    assert uuid.UUID(child).version == 4 and child != new_id()

    random.seed(7)  # an app seeding the global generator does not make ids repeat
    first = new_id()
    random.seed(7)
    assert new_id() != first


def test_mutable_arguments_are_copied_at_enqueue(
    make_client: Callable[..., Client], recorder: Recorder
) -> None:
    client = make_client(flush_interval=60)
    messages = [{"role": "user", "content": "hi"}]
    metadata = {"a": "1"}
    client.log_generation(model="m", input=messages, metadata=metadata)
    messages.append({"role": "assistant", "content": "later"})
    metadata["b"] = "2"
    assert client.flush(timeout=5)
    event = recorder.events[0]
    assert event["input"] == [{"role": "user", "content": "hi"}]
    assert event["metadata"] == {"a": "1"}


class Boom:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("boom")

    __hash__ = object.__hash__


INVALID_CALLS: dict[str, Callable[[Client], object]] = {
    "empty model": lambda c: c.log_generation(model=""),
    "model not str": lambda c: c.log_generation(model=3),  # type: ignore[arg-type]
    "input not str/list": lambda c: c.log_generation(model="m", input=5),  # type: ignore[arg-type]
    "negative tokens": lambda c: c.log_generation(model="m", output_tokens=-1),
    "float tokens": lambda c: c.log_generation(model="m", input_tokens=1.5),  # type: ignore[arg-type]
    "nan cost": lambda c: c.log_generation(model="m", cost_usd=float("nan")),
    "metadata not str": lambda c: c.log_generation(model="m", metadata={"a": 1}),  # type: ignore[dict-item]
    "ts not datetime": lambda c: c.log_generation(model="m", ts="yesterday"),  # type: ignore[arg-type]
    "vote 2": lambda c: c.vote("g", 2),
    "vote True": lambda c: c.vote("g", True),
    "empty generation id": lambda c: c.vote("", 1),
    "generation id not str": lambda c: c.vote(7, 1),  # type: ignore[arg-type]
    "user id not str": lambda c: c.vote("g", 1, user_id=5),  # type: ignore[arg-type]
    "empty action": lambda c: c.action("g", ""),
    "action value list": lambda c: c.action("g", "copy", value=[1]),  # type: ignore[arg-type]
    "correct None": lambda c: c.correct("g", None),  # type: ignore[arg-type]
    "score inf": lambda c: c.score("g", "x", float("inf")),
    "score source": lambda c: c.score("g", "x", 1.0, source="robot"),  # type: ignore[arg-type]
    "survival 0s": lambda c: c.survival("g", 0, 0.5),
    "survival score > 1": lambda c: c.survival("g", 30, 1.5),
}


@pytest.mark.parametrize("call", INVALID_CALLS.values(), ids=INVALID_CALLS.keys())
def test_invalid_arguments_are_dropped_and_counted(
    make_client: Callable[..., Client],
    recorder: Recorder,
    call: Callable[[Client], object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client()
    result = call(client)
    assert result is False or isinstance(result, str)  # log_generation still returns an id
    assert client.flush(timeout=5)
    stats = client.stats()
    assert stats["dropped_invalid"] == 1
    assert stats["enqueued"] == 0
    assert stats["errors"] == 0
    assert recorder.events == []
    assert any(r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize("call", INVALID_CALLS.values(), ids=INVALID_CALLS.keys())
def test_invalid_arguments_raise_in_debug_mode(
    make_client: Callable[..., Client], call: Callable[[Client], object]
) -> None:
    client = make_client(debug=True)
    with pytest.raises(ValueError, match="kept"):
        call(client)


def test_internal_errors_are_counted_not_raised(make_client: Callable[..., Client]) -> None:
    client = make_client()
    assert client.vote("g", Boom()) is False  # type: ignore[arg-type]
    assert client.stats()["errors"] == 1
    with pytest.raises(RuntimeError, match="boom"):
        make_client(debug=True).vote("g", Boom())  # type: ignore[arg-type]


def test_warnings_do_not_log_payloads(
    make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    client.log_generation(model="m", output="SECRET-OUTPUT", metadata={"k": 1})  # type: ignore[dict-item]
    client.vote("SECRET-ID", Boom())  # type: ignore[arg-type]
    assert caplog.records
    assert "SECRET" not in caplog.text


def test_invalid_warnings_are_rate_limited(
    make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    for _ in range(100):
        client.vote("g", 5)
    assert client.stats()["dropped_invalid"] == 100
    assert len(caplog.records) == 1


def test_unencodable_event_is_dropped_in_the_worker(
    make_client: Callable[..., Client], recorder: Recorder
) -> None:
    client = make_client()
    bad_input: Any = [{"role": "user", "content": object()}]
    client.log_generation(model="bad", input=bad_input)
    client.log_generation(model="good")
    assert client.flush(timeout=5)
    assert [e["model"] for e in recorder.events] == ["good"]
    stats = client.stats()
    assert (stats["dropped_invalid"], stats["sent"], stats["queued"]) == (1, 1, 0)


def test_sending_happens_off_the_callers_thread(
    make_client: Callable[..., Client], recorder: Recorder
) -> None:
    client = make_client()
    client.vote("g", 1)
    assert client.flush(timeout=5)
    assert recorder.threads
    assert threading.get_ident() not in recorder.threads


ALL_CALLS: list[Callable[[Client], object]] = [
    lambda c: c.log_generation(model="m", output="x"),
    lambda c: c.vote("g", 1),
    lambda c: c.action("g", "copy"),
    lambda c: c.accept("g"),
    lambda c: c.correct("g", "t"),
    lambda c: c.score("g", "s", 0.5),
    lambda c: c.survival("g", 30, 1.0),
]


@pytest.mark.parametrize(
    "endpoint",
    [
        None,
        "",
        "kafka://localhost:9092",
        "not a url",
        "ftp://host/x",
        "http://",
        "http://h:port",
        "http://exa mple.com",
    ],
)
def test_misconfigured_client_drops_without_raising(
    endpoint: str | None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("KEPT_ENDPOINT", raising=False)
    client = Client(endpoint, "key")
    results = [call(client) for call in ALL_CALLS]
    assert isinstance(results[0], str)
    assert results[1:] == [False] * 6
    assert client.flush(timeout=0.1) is True
    client.close(timeout=0.1)
    assert client.stats()["dropped_no_transport"] == 7
    assert client.stats()["enqueued"] == 0
    assert caplog.records  # said once why nothing is sent
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) <= 2
    if endpoint and endpoint.startswith("kafka"):
        assert "kafka:// endpoint needs a project" in caplog.text


def test_api_key_that_cannot_be_a_header_disables_sending(caplog: pytest.LogCaptureFixture) -> None:
    client = Client("http://127.0.0.1:9", "key\nX-Evil: 1")
    assert client.vote("g", 1) is False
    assert client.stats()["dropped_no_transport"] == 1
    assert "key\n" not in caplog.text
    assert "X-Evil" not in caplog.text


def test_disabled_client_is_a_cheap_no_op(recorder: Recorder) -> None:
    client = Client("http://127.0.0.1:9", "k", enabled=False, transport=recorder)
    assert isinstance(client.log_generation(model="m"), str)
    assert client.vote("g", 1) is False
    assert client.flush(timeout=1)
    client.close()
    assert recorder.batches == []
    assert client.stats()["dropped_no_transport"] == 2


def test_calls_after_close_are_dropped_as_closed(
    make_client: Callable[..., Client], recorder: Recorder
) -> None:
    client = make_client()
    assert client.vote("g", 1)
    client.close(timeout=5)
    assert client.vote("g", 1) is False
    assert isinstance(client.log_generation(model="m"), str)
    stats = client.stats()
    assert (stats["sent"], stats["dropped_closed"]) == (1, 2)
    assert len(recorder.events) == 1
    client.close()  # a second close is harmless


def test_bad_settings_fall_back_to_defaults(recorder: Recorder) -> None:
    client = Client(transport=recorder, batch_size=0, flush_interval=-1, max_queue_size=0)
    assert client.vote("g", 1)
    assert client.flush(timeout=5)
    client.close()
    with pytest.raises(ValueError, match="batch_size"):
        Client(transport=recorder, batch_size=0, debug=True)


def test_stats_keys(make_client: Callable[..., Client]) -> None:
    assert set(make_client().stats()) == {
        "enqueued",
        "sent",
        "queued",
        "retries",
        "spooled",
        "spool_bytes",
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
    }


@pytest.fixture
def no_default_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(kept, "_default", None)
    yield
    kept.close(timeout=0)


@pytest.mark.usefixtures("no_default_client")
def test_module_level_helpers_use_the_default_client(recorder: Recorder) -> None:
    first = kept.init(transport=recorder)
    assert kept.get_client() is first
    gid = kept.log_generation(model="m", output="o")
    assert kept.vote(gid, 1)
    assert kept.action(gid, "copy")
    assert kept.accept(gid)
    assert kept.correct(gid, "t")
    assert kept.score(gid, "s", 0.1, source="human")
    assert kept.survival(gid, 120, 0.0)
    assert kept.flush(timeout=5)
    assert kept.stats()["sent"] == 7
    assert [e["type"] for e in recorder.events] == [
        "generation",
        "vote",
        "action",
        "action",
        "correction",
        "score",
        "survival",
    ]

    second = kept.init(transport=Recorder())
    assert kept.get_client() is second
    assert first.vote(gid, 1) is False  # init closed the previous default client
    assert first.stats()["dropped_closed"] == 1
    kept.close()
    assert kept.vote(gid, 1) is False
    assert kept.__version__ == "0.1.0"


@pytest.mark.usefixtures("no_default_client")
def test_default_client_from_environment_without_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEPT_ENDPOINT", raising=False)
    assert kept.flush(timeout=0.1) is True  # no client made just to flush
    assert isinstance(kept.log_generation(model="m"), str)
    assert kept.vote("g", 1) is False
    assert kept.stats()["dropped_no_transport"] == 2
