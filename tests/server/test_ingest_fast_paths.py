"""The ingest path's fast paths give what the general ways give.

The shape checks take a shortcut when no string of the body holds a bracket, and the
recent-id window handles a batch whole: each is compared here with a plain reference
(the general way, written out), on hand-picked and generated bodies and batches.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kept_ingest.decode import decode_json_array
from kept_ingest.dedup import RecentIds
from kept_ingest.jsonshape import (
    ShapeError,
    TooDeep,
    Unbalanced,
    _brackets,
    check_shape,
    keys_written,
)
from kept_ingest.rows import to_rows
from tests.helpers import feedback


def reference_brackets(body: bytes) -> bytes:
    """The brackets outside strings, string by string (the general way, no shortcut)."""
    body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = body.translate(bytes.maketrans(b"{[}]", b"(())"), bytes(set(range(256)) - set(b'"{}[]')))
    return b"".join(kept.split(b'"')[::2])


def reference_keys(body: bytes) -> int:
    """How many keys the body writes, by parsing it."""
    count = 0

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal count
        count += len(pairs)
        return dict(pairs)

    json.loads(body, object_pairs_hook=hook)
    return count


BODIES = [
    b'[{"a":"x"},{"b":[1,2]}]',
    b'[{"a":"x [ y"},{"b":"}"}]',  # brackets inside strings
    b'[{"a":"say \\"hi\\" [1]"}]',  # escaped quotes and a bracket in a string
    b'[{"a":"C:\\\\"},{"b":"]"}]',  # an escaped backslash before the closing quote
    b'[{"a":"\\\\\\"["}]',  # a backslash, then an escaped quote, then a bracket
    b'{"a":"unterminated [}',
    b'[{"a":"x"}',
    b"[[[[[[1]]]]]]",
    b"[]",
    b'[{"a":"","b":"","c":[""]}]',  # empty strings
    b'["a""b"]',  # not JSON; the brackets still tell the same
]


@pytest.mark.parametrize("body", BODIES)
def test_brackets_shortcut_finds_what_the_general_way_finds(body: bytes) -> None:
    assert _brackets(body) == reference_brackets(body)


def test_a_bracket_inside_a_string_does_not_unbalance_a_body() -> None:
    check_shape(b'[{"a":"x [ y","b":"{{{"}]', 32)
    with pytest.raises(Unbalanced):
        check_shape(b'[{"a":"x"},{"b":"]"}', 32)


def test_depth_counts_only_brackets_outside_strings() -> None:
    check_shape(b'[{"a":"[[[[[[[[[[[["}]', 3)
    with pytest.raises(TooDeep):
        check_shape(b'[{"a":[[[1]]]}]', 3)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab[]{}"\\ :\n,'),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet='ab[]{}"\\ :', max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, compact=st.booleans())
def test_shape_and_keys_agree_with_parsing(value: Any, compact: bool) -> None:
    separators = (",", ":") if compact else (", ", ": ")
    body = json.dumps(value, separators=separators).encode()
    assert _brackets(body) == reference_brackets(body)
    try:
        check_shape(body, 64)
    except ShapeError:  # pragma: no cover - generated JSON always pairs up
        pytest.fail(f"valid JSON refused: {body!r}")
    # An upper bound (a string that starts with a colon, or has an escaped quote before
    # one, adds a `":`), or None when a quote, spaces and a colon follow each other:
    # equal to the keys read, it proves that no key repeats.
    written = keys_written(body)
    assert written is None or written >= reference_keys(body)


def test_keys_written_counts_the_keys_of_events() -> None:
    body = json.dumps(
        [{"type": "vote", "value": 1, "metadata": {"a": "b [c]", "d": 'say "x"'}}] * 3,
        separators=(",", ":"),
    ).encode()
    assert keys_written(body) == reference_keys(body) == 15


def test_keys_written_with_spaces_before_a_colon_says_it_cannot_count() -> None:
    assert keys_written(b'[{"a" :1}]') is None
    assert keys_written(b'[{"a":"b \\" :c"}]') == 1  # inside a string: not a key


# ---- the recent-id window, batch by batch ----------------------------------------------


def test_a_batch_of_new_ids_is_all_fresh_and_then_remembered() -> None:
    recent = RecentIds(100)
    ids = [str(uuid.uuid4()) for _ in range(10)]
    keys = recent.keys(["p"] * 10, ids)
    assert recent.fresh(keys) is None
    recent.remember(keys)
    assert len(recent) == 10
    assert recent.fresh(keys) == [False] * 10
    assert all(recent.seen(recent.key("p", i)) for i in ids)


def test_repeats_within_a_batch_and_across_batches_are_masked() -> None:
    recent = RecentIds(100)
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    recent.remember(recent.keys(["p"], [a]))
    keys = recent.keys(["p", "p", "p", "p"], [a, b, b, c])
    assert recent.fresh(keys) == [False, True, False, True]


def test_the_same_id_in_two_projects_is_two_ids() -> None:
    recent = RecentIds(100)
    event_id = str(uuid.uuid4())
    recent.remember(recent.keys(["p"], [event_id]))
    keys = recent.keys(["q", "p"], [event_id, event_id])
    assert recent.fresh(keys) == [True, False]
    assert recent.key("q", event_id) != recent.key("p", event_id)


def test_the_window_forgets_the_oldest_beyond_its_capacity() -> None:
    recent = RecentIds(5)
    ids = [str(uuid.uuid4()) for _ in range(8)]
    recent.remember(recent.keys(["p"] * 3, ids[:3]))
    recent.remember(recent.keys(["p"] * 5, ids[3:]))
    assert len(recent) == 5
    assert [recent.seen(recent.key("p", i)) for i in ids] == [False] * 3 + [True] * 5
    recent.remember(recent.keys(["p"] * 2, ids[3:5]))  # already there: nothing moves
    assert len(recent) == 5
    recent.add([("p", ids[0])])
    assert recent.seen(recent.key("p", ids[0]))
    assert not recent.seen(recent.key("p", ids[3]))


def test_rows_carry_an_id_in_lower_case_however_it_was_written() -> None:
    """The same UUID in either case is one id: for the recent-id window, and for rows
    made by either decoder."""
    event_id = str(uuid.uuid4())
    body = json.dumps([feedback("vote", "g", value=1, event_id=event_id.upper())]).encode()
    (event,) = decode_json_array(body)
    rows = to_rows([event], datetime.now(timezone.utc), "p")
    assert rows.feedback.data["event_id"] == [event_id]
    recent = RecentIds(100)
    recent.remember(recent.keys(["p"], [event_id]))
    assert recent.fresh(recent.keys(rows.feedback.data["project"], [event_id])) == [False]
