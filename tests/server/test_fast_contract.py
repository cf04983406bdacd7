"""msgspec's fast path says yes only where pydantic says yes, and to the same values.

`kept_ingest.fast_contract` restates the contract for msgspec; pydantic's models are the
contract. Every body the fast path accepts is checked here against pydantic plus the
repeated-key rule (the contract as the slow path applies it): it must be valid there
too, and become the same rows. Bodies are valid events with one field changed to a
value from a pool of edge cases (lengths at and past each limit, wrong types, timestamp
and UUID spellings, numbers out of range), plus repeated keys, explicit nulls, escaped
text and spaced keys. The fast path must also actually serve: SDK batches and each
type's valid events take it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kept_ingest.contract import EVENT_LIST_ADAPTER
from kept_ingest.decode import DecodeLimits, InvalidEvents, decode_json_array
from kept_ingest.fast_contract import decode_valid, event_json
from kept_ingest.jsonshape import DuplicateKey, check_duplicates
from kept_ingest.rows import to_rows
from kept_wire.contract import (
    MAX_COMMENT_CHARS,
    MAX_ID_CHARS,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_NAME_CHARS,
)
from kept_wire.encoding import encode_event, new_id
from tests.helpers import feedback, generation, now_iso

RECEIVED = datetime(2026, 1, 1, tzinfo=timezone.utc)
GID = "gen-1"


def _valid() -> list[dict[str, Any]]:
    return [
        generation(generation_id=GID, metadata={"app": "a"}, latency_ms=5, cost_usd=0.1),
        generation(generation_id=GID, input=[{"role": "user", "content": "hi"}]),
        feedback("vote", GID, value=1, comment="ok"),
        feedback("action", GID, name="accept"),
        feedback("action", GID, name="edit", value=3),
        feedback("action", GID, name="edit", value="why"),
        feedback("correction", GID, text='fixed\n"quoted"'),
        feedback("survival", GID, checkpoint_s=30, score=0.9),
        feedback("score", GID, name="helpful", value=0.5, source="llm", label="good"),
    ]


def _strings(limit: int) -> list[Any]:
    return ["", "x", "x" * limit, "x" * (limit + 1), "é" * limit, "é" * (limit + 1)]


NOW = now_iso()
EDGES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 1.0, -1.0, 0.5, 1.5, 1e6, 1e6 + 1, 1e308, -1e308,
    2**31, 2**31 + 1, 86_400_000, 86_400_001, 30 * 86_400, 30 * 86_400 + 1, "1", "0.1",
    [], ["a"], {}, {"k": "v"}, {"k": 1}, {"": "v"}, [{"role": "user", "content": "c"}],
    [{"role": "", "content": "c"}], [{"role": "user"}], [{"role": "user", "content": "c", "x": 1}],
    "human", "llm", "robot", "generation", "demo", "bad project!", "proj\n", "a" * 64, "a" * 65,
    "ok\u2028line", "\ud800", "café",
    *_strings(MAX_ID_CHARS), *_strings(MAX_NAME_CHARS), *_strings(32),
    "x" * MAX_COMMENT_CHARS, "x" * (MAX_COMMENT_CHARS + 1),
    "x" * MAX_METADATA_VALUE_CHARS, {f"k{i}": "v" for i in range(MAX_METADATA_KEYS)},
    {f"k{i}": "v" for i in range(MAX_METADATA_KEYS + 1)},
    {"k": "x" * (MAX_METADATA_VALUE_CHARS + 1)}, {"k" * (MAX_ID_CHARS + 1): "v"},
]  # fmt: skip
TIMESTAMPS: list[Any] = [
    NOW, NOW.replace("+00:00", "Z"), NOW.replace("T", " "), NOW.replace("T", "t"),
    NOW.replace("+00:00", "z"), NOW.replace("+00:00", "+0000"), NOW.replace("+00:00", ""),
    NOW.replace("+00:00", "+05:30"), NOW.replace("+00:00", "-23:59"),
    "2026-01-01T12:00:00.9999999Z", "2026-01-01T12:00:00.1234567Z", "2026-01-01T12:00:00.123456Z",
    "2026-01-01T12:00:00Z", "2026-01-01T12:00Z", "2026-01-01T24:00:00Z", "2026-01-01T12:00:60Z",
    "2026-02-30T12:00:00Z", "1999-12-31T23:59:59Z", "2000-01-01T00:00:00Z",
    "1999-12-31T23:59:59-01:00", now_iso(timedelta(hours=23)), now_iso(timedelta(days=2)),
    "20260101T120000Z", 1_700_000_000, "yesterday",
]  # fmt: skip
UUIDS: list[Any] = [
    str(uuid.uuid4()), str(uuid.uuid4()).upper(), uuid.uuid4().hex, "{" + str(uuid.uuid4()) + "}",
    "urn:uuid:" + str(uuid.uuid4()), "not-a-uuid", str(uuid.uuid4())[:-1] + "g", 5,
    "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
    str(uuid.uuid1()), str(uuid.uuid4()).replace("-", "_"), " " + str(uuid.uuid4())[1:],
]  # fmt: skip
FIELDS = (
    "type", "event_id", "generation_id", "ts", "project", "user_id", "session_id", "model",
    "prompt_version", "input", "output", "latency_ms", "input_tokens", "output_tokens",
    "cost_usd", "metadata", "supplement", "value", "comment", "name", "text", "checkpoint_s",
    "score", "source", "label", "extra",
)  # fmt: skip


VALID: dict[str, list[Any]] = {}
for _event in _valid():
    for _field, _value in _event.items():
        VALID.setdefault(_field, []).append(_value)


def _pool(field: str) -> list[Any]:
    """Edge cases for `field`, and as many values that are valid for some event type (so
    that most changed events stay valid and reach the fast path's own checks)."""
    edges = (
        TIMESTAMPS + EDGES[:6]
        if field == "ts"
        else UUIDS + EDGES[:6]
        if field == "event_id"
        else EDGES
    )
    valid = VALID.get(field, [None])
    return edges + valid * max(1, 3 * len(edges) // len(valid))


def contract(body: bytes) -> list[Any] | None:
    """The events if the contract (pydantic, and no repeated key) accepts the body."""
    try:
        events = EVENT_LIST_ADAPTER.validate_json(body)
        check_duplicates(body)
    except (ValueError, DuplicateKey):  # pydantic's ValidationError is a ValueError
        return None
    return list(events)


def _same(body: bytes) -> None:
    fast = decode_valid(body)
    if fast is None:
        return
    reference = contract(body)
    assert reference is not None, f"the fast path accepts what the contract refuses: {body!r}"
    ours, theirs = to_rows(fast, RECEIVED, "p"), to_rows(reference, RECEIVED, "p")
    assert ours.generations.data == theirs.generations.data, body
    assert ours.feedback.data == theirs.feedback.data, body


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    base=st.sampled_from(range(len(_valid()))),
    changes=st.lists(
        st.sampled_from(FIELDS).flatmap(lambda f: st.tuples(st.just(f), st.sampled_from(_pool(f)))),
        min_size=1,
        max_size=2,
    ),
)
def test_changed_fields(base: int, changes: list[tuple[str, Any]]) -> None:
    event = _valid()[base]
    for field, value in changes:
        event[field] = value
    try:
        # Among valid events of other types: keys are counted type by type.
        batch = [_valid()[0], event, _valid()[2]]
        text = json.dumps(batch, ensure_ascii=False, separators=(",", ":"))
        body = text.encode("utf-8", "surrogatepass")
    except UnicodeEncodeError:
        return
    _same(body)


@pytest.mark.parametrize("index", range(len(_valid())))
def test_valid_events_take_the_fast_path(index: int) -> None:
    body = json.dumps(_valid()).encode()
    assert decode_valid(body) is not None
    event = _valid()[index]
    _same(json.dumps([event]).encode())


def test_sdk_batches_take_the_fast_path() -> None:
    now = datetime.now(timezone.utc)
    gid = new_id()
    records = [
        ("generation", gid, now, "u", "s", {"model": "m", "output": 'é\n"x"', "metadata": {}}),
        ("vote", gid, now, "u", None, {"value": -1}),
        ("survival", gid, now, None, None, {"checkpoint_s": 30, "score": 1}),
    ]
    body = b"[" + b",".join(encode_event(r, project="demo") for r in records) + b"]"  # type: ignore[arg-type]
    events = decode_valid(body)
    assert events is not None and len(events) == 3
    _same(body)


@pytest.mark.parametrize(
    "body",
    [
        # A repeated key: msgspec keeps the last value; the contract refuses it.
        b'[{"type":"vote","value":1,"value":-1,"generation_id":"g","event_id":"EID","ts":"TS"}]',
        b'[{"type":"vote","value":1,"generation_id":"g","event_id":"EID","ts":"TS","ts":"TS"}]',
        # An explicit null: valid, but the keys no longer add up: pydantic decides.
        b'[{"type":"vote","value":1,"comment":null,"generation_id":"g","event_id":"EID","ts":"TS"}]',
        # A space before a colon: keys are counted by parsing, on the slow path.
        b'[{"type" :"vote","value":1,"generation_id":"g","event_id":"EID","ts":"TS"}]',
        # A `ts` key inside metadata.
        b'[{"type":"generation","model":"m","metadata":{"ts":"TS"},'
        b'"generation_id":"g","event_id":"EID","ts":"TS"}]',
    ],
)
def test_what_the_fast_path_leaves_to_pydantic(body: bytes) -> None:
    filled = body.replace(b"EID", str(uuid.uuid4()).encode()).replace(b"TS", NOW.encode())
    assert decode_valid(filled) is None
    # The whole decoder still answers as the contract does.
    try:
        decode_json_array(filled, DecodeLimits())
        decoded = True
    except InvalidEvents:
        decoded = False
    assert decoded == (contract(filled) is not None)


def test_event_json_round_trips() -> None:
    body = json.dumps(_valid()).encode()
    events = decode_valid(body)
    assert events is not None
    for event, original in zip(events, _valid(), strict=True):
        again = json.loads(event_json(event))
        assert again["type"] == original["type"]
        assert contract(json.dumps([again]).encode()) is not None
        assert set(again) == set(original), (again, original)
