"""What the sender does to be cheap stays correct: the JSON encoder, the per-second
timestamp text, whole-queue batches, and encoding in slices that let the app's thread
run when a batch holds the GIL for long.

The costs themselves are measured by benchmarks/sdk_busy_app.py; these tests hold the
output to what the plain standard-library calls make: the same JSON value from msgspec,
the same bytes from the standard library's encoder where msgspec is missing.
"""

from __future__ import annotations

import json
import math
import random
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

import kept.worker
from kept import Client
from kept_wire import encoding
from kept_wire.encoding import Record, encode_event, format_ts
from tests.sdk.recorder import Recorder


def reference_ts(when: float) -> str:
    """What format_ts made before its fast path."""
    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="milliseconds")


def reference_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def test_format_ts_matches_datetime_for_floats() -> None:
    rng = random.Random(16)
    now = time.time()
    second = math.floor(now)
    values = [now + rng.uniform(-1e6, 1e6) for _ in range(20_000)]
    values += [rng.uniform(-2e9, 4e9) for _ in range(20_000)]
    values += [second + k / 1e6 for k in range(0, 1_000_000, 997)]
    # Rounding edges: micros that round up into the next second, negatives, halves.
    values += [second + 0.9999995, second + 0.9999994, second - 4e-7, -0.5, -1e-7, 0.0]
    values += [12.9999996, 1.0 - 1e-16, 1e-7, 5e-7, 1.5e-6, 2.5e-6]
    values += [float(i) + 0.0005 for i in range(-500, 500)]
    for value in values:
        assert format_ts(value) == reference_ts(value), value
    assert format_ts(1_700_000_000) == reference_ts(1_700_000_000)  # an int too


def test_format_ts_alternates_between_seconds() -> None:
    """The cached second is replaced, not reused, when times go back and forth."""
    for when in (100.25, 5_000.5, 100.75, 100.75, 5_000.001, -3.5):
        assert format_ts(when) == reference_ts(when)


def test_format_ts_datetimes_and_bad_values_unchanged() -> None:
    aware = datetime(2026, 3, 1, 12, 30, 5, 123_999, tzinfo=timezone(timedelta(hours=2)))
    assert format_ts(aware) == "2026-03-01T10:30:05.123+00:00"
    assert format_ts(datetime(2026, 3, 1, 12, 30, 5)) == "2026-03-01T12:30:05.000+00:00"
    for bad in (math.nan, math.inf, -math.inf, 1e300):
        with pytest.raises((ValueError, OverflowError, OSError)) as fast:
            format_ts(bad)
        with pytest.raises((ValueError, OverflowError, OSError)) as slow:
            reference_ts(bad)
        assert fast.type is slow.type


def events() -> Iterator[Record]:
    fields: dict[str, object] = {
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": 'héllo \u2028 "quoted" \\ 日本語 \x00'}],
        "output": "line\nbreak\ttab 🙂",
        "latency_ms": 812,
        "input_tokens": 0,
        "cost_usd": 0.00021,
        "big": 2**70,
        "tiny": 1e-300,
        "flag": True,
        "nested": {"a": [1, 2.5, None, {"b": []}], "c": {}},
        "skipped": None,
        "metadata": {"app": "support-bot"},
    }
    yield ("generation", "g-1", 1_700_000_000.5, "u-1", "s-1", fields)
    yield ("vote", "g-2", datetime(2026, 1, 2, 3, 4, 5), None, None, {"value": -1})
    yield ("action", "g-3", 0.0, None, None, {})


def expected_event(record: Record, event_id: object) -> dict[str, object]:
    """The event encode_event should make of ``record`` (with the id it made)."""
    kind, generation_id, when, user_id, session_id, fields = record
    expected: dict[str, object] = {
        "type": kind,
        "event_id": event_id,
        "generation_id": generation_id,
        "ts": format_ts(when),
        "project": "proj",
    }
    if user_id is not None:
        expected["user_id"] = user_id
    if session_id is not None:
        expected["session_id"] = session_id
    expected.update({k: v for k, v in fields.items() if v is not None})
    return expected


@pytest.mark.parametrize("record", list(events()))
def test_encode_event_is_the_compact_json_of_the_event(record: Record) -> None:
    """msgspec's encoding: the same value as json.dumps, keys in the same order, compact,
    UTF-8 unescaped; the bytes differ only in how exponents are written (1e300, not
    1e+300)."""
    encoded = encode_event(record, "proj")
    event = json.loads(encoded)
    expected = expected_event(record, event["event_id"])
    assert event == expected
    assert list(event) == list(expected)
    reference = reference_json(expected).encode()
    assert len(encoded) == len(reference) - reference.count(b"e+")
    assert b"\\u2028" not in encoded  # non-ASCII text goes as UTF-8, unescaped


@pytest.mark.parametrize("record", list(events()))
def test_standard_library_encoder_matches_json_dumps(record: Record) -> None:
    """Without msgspec the standard library's encoder, byte for byte json.dumps."""
    dumps = encoding._standard_dumps()
    event = expected_event(record, "id")
    assert dumps(event) == reference_json(event).encode()


def test_encode_event_refuses_what_no_encoder_can_write() -> None:
    def record(value: object) -> Record:
        return ("generation", "g", 1.0, None, None, {"model": "m", "x": value})

    for bad in ({1j}, object(), "lone \ud800 surrogate"):
        with pytest.raises((ValueError, TypeError)):
            encode_event(record(bad))
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises((ValueError, RecursionError)):
        encode_event(record(circular))


def test_encode_event_writes_what_json_cannot_hold_as_msgspec_does() -> None:
    """NaN and infinities become null, a set an array (the client's own numbers refuse
    NaN before they are queued: tests/sdk/test_client.py)."""
    fields: dict[str, object] = {"model": "m", "x": [math.nan, math.inf], "y": {1}}
    event = json.loads(encode_event(("generation", "g", 1.0, None, None, fields)))
    assert (event["x"], event["y"]) == ([None, None], [1])


def test_standard_library_encoder_refuses_what_json_dumps_refuses() -> None:
    dumps = encoding._standard_dumps()
    for bad in (math.nan, math.inf, {1j}, object()):
        with pytest.raises((ValueError, TypeError)):
            dumps({"x": bad})


def test_portable_encoder_when_the_c_one_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    dumps = encoding._standard_dumps()
    for record in events():
        fields = {k: v for k, v in record[5].items() if v is not None}
        assert dumps(fields) == reference_json(fields).encode()
    assert encoding._dumps is not dumps  # the module's own stays the fast one


def test_without_msgspec_the_standard_library_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgspec", None)  # import msgspec raises ImportError
    dumps = encoding._make_dumps()
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    with pytest.raises(ValueError, match="JSON compliant"):
        dumps({"x": math.nan})


def test_a_batch_spanning_slices_keeps_order_and_counts_drops(clients: list[Client]) -> None:
    transport = Recorder()

    def redact(text: str) -> str:
        if text == "poison":
            raise RuntimeError("no")
        return text

    client = Client(transport=transport, batch_size=1_000, redact=redact, flush_interval=60)
    clients.append(client)
    n = kept.worker.ENCODE_SLICE * 3 + 5
    for i in range(n):
        client.log_generation(model=f"m{i}", output="poison" if i == 40 else "ok")
    assert client.flush(10)
    models = [e["model"] for batch in transport.batches for e in batch]
    assert len(transport.batches) == 1  # the whole queue went as one batch
    assert models == [f"m{i}" for i in range(n) if i != 40]
    stats = client.stats()
    assert stats["sent"] == n - 1
    assert stats["dropped_redaction"] == 1


def test_the_app_thread_runs_between_slices(
    clients: list[Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With forced GIL switches made rare, the app's thread still runs while a batch is
    being encoded: in the pauses between slices."""
    monkeypatch.setattr(kept.worker, "SLICE_PAUSE", 0.01)  # ample for a loaded machine
    progress = [0]
    seen: list[int] = []

    def slow_redact(text: str) -> str:
        seen.append(progress[0])
        deadline = time.perf_counter() + 0.002  # holds the GIL: pure Python
        while time.perf_counter() < deadline:
            pass
        return text

    transport = Recorder()
    client = Client(transport=transport, batch_size=1_000, redact=slow_redact, flush_interval=60)
    clients.append(client)
    slices = 3
    for i in range(kept.worker.ENCODE_SLICE * slices):
        client.log_generation(model=f"m{i}", output="x")
    switch = sys.getswitchinterval()
    sys.setswitchinterval(5.0)  # no forced switch during the test
    try:
        flushed: list[bool] = []
        flusher = threading.Thread(target=lambda: flushed.append(client.flush(30)))
        flusher.start()
        while flusher.is_alive():
            progress[0] += 1  # runs only while this thread holds the GIL
            time.sleep(0.001)  # and hands it back, so that the sender need not force it
        flusher.join()
    finally:
        sys.setswitchinterval(switch)
    assert flushed == [True]
    first = seen[: kept.worker.ENCODE_SLICE]
    last = seen[-kept.worker.ENCODE_SLICE :]
    assert len(seen) == kept.worker.ENCODE_SLICE * slices
    assert len(set(first)) == 1  # one slice: the GIL was not given up inside it
    assert last[0] > first[-1]  # but between slices the app's thread ran


def test_a_quickly_encoded_batch_goes_in_one_hold(
    clients: list[Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pause while the sender has held the GIL for less than MAX_HOLD: plain events
    of several slices are encoded without one (a pause here would take a second)."""
    monkeypatch.setattr(kept.worker, "SLICE_PAUSE", 1.0)
    monkeypatch.setattr(kept.worker, "MAX_HOLD", 0.05)  # 25x the time the batch takes
    transport = Recorder()
    client = Client(transport=transport, batch_size=1_000, flush_interval=60)
    clients.append(client)
    for i in range(kept.worker.ENCODE_SLICE * 4):
        client.log_generation(model=f"m{i}", output="ok")
    started = time.monotonic()
    assert client.flush(10)
    assert time.monotonic() - started < 0.9
    assert [len(batch) for batch in transport.batches] == [kept.worker.ENCODE_SLICE * 4]


def test_closing_does_not_pause(clients: list[Client], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept.worker, "SLICE_PAUSE", 1.0)  # a pause would break the deadline
    transport = Recorder()
    client = Client(transport=transport, batch_size=1_000, flush_interval=60)
    clients.append(client)
    for i in range(kept.worker.ENCODE_SLICE * 4):
        client.log_generation(model=f"m{i}")
    started = time.monotonic()
    client.close(timeout=10)
    assert time.monotonic() - started < 2
    assert client.stats()["sent"] == kept.worker.ENCODE_SLICE * 4
