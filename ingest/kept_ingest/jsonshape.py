"""Cheap checks of a JSON body's shape before anything is built from it.

A body of a few megabytes can hold millions of tiny values; building Python (or
pydantic) objects for all of them is what makes a small hostile request expensive.
These checks run at C speed on the bytes: whether brackets pair up, how deep they nest,
how many containers the body holds for its size and how many keys it writes; then where
a top-level array's items are (one at a time, stopping at a count), and, for a body
already known to be valid, which object repeats a key (`json` and pydantic silently keep
the last value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

_PARENS = bytes.maketrans(b"{[}]", b"(())")
_NOT_QUOTES_OR_BRACKETS = bytes(set(range(256)) - set(b'"{}[]'))
_SPACED_KEY = re.compile(rb'"[ \t\n\r]+:')
_CHUNK = 1 << 20
"""Bytes per C call below, so that none holds the GIL (and the event loop) for long."""
_WHITESPACE = re.compile(r"[ \t\n\r]*")
BYTES_PER_CONTAINER = 16
"""Events spend far more bytes per object or array than this (a chat message takes 26 or
more); a body with more containers for its size is not a batch of events."""


class ShapeError(ValueError):
    """The body cannot be a valid body of events (422)."""


class TooDeep(ShapeError):
    """The body nests containers deeper than allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels")


class Unbalanced(ShapeError):
    """Brackets that do not pair up: not JSON."""

    def __init__(self) -> None:
        super().__init__("Invalid JSON: brackets do not pair up")


class TooManyValues(ValueError):
    """The body holds more containers for its size than events can."""

    def __init__(self, containers: int, size: int) -> None:
        super().__init__(
            f"the body holds {containers} JSON objects and arrays in {size} bytes; "
            f"events hold at most one per {BYTES_PER_CONTAINER} bytes"
        )


def unescaped(body: bytes) -> bytes:
    """The body without escaped backslashes, then without escaped quotes, so that a quote
    left is one that opens or closes a string. (Many bodies have no backslash at all:
    looking for one byte is far cheaper than looking for two.)"""
    if b"\\" not in body:
        return body
    return body.replace(b"\\\\", b"").replace(b'\\"', b"")


def _brackets(body: bytes) -> bytes:
    """The body's brackets outside strings, as parentheses (C speed, chunk by chunk)."""
    body = unescaped(body)
    if len(body) <= _CHUNK:
        # The common case, without a Python object per string: when no string holds a
        # bracket, each string leaves `""` next to each other (removed left to right,
        # pair by pair) and what is left are the brackets outside strings. A quote left
        # over means a string holds a bracket (or does not end): the general way then.
        kept = body.translate(_PARENS, _NOT_QUOTES_OR_BRACKETS).replace(b'""', b"")
        if b'"' not in kept:
            return kept
    out: list[bytes] = []
    inside = False
    for start in range(0, len(body), _CHUNK):
        kept = body[start : start + _CHUNK].translate(_PARENS, _NOT_QUOTES_OR_BRACKETS)
        parts = kept.split(b'"')
        out.append(b"".join(parts[1::2] if inside else parts[::2]))
        inside ^= len(parts) % 2 == 0
    return b"".join(out)


def keys_written(body: bytes) -> int | None:
    """How many object keys the body writes (C speed), or None when a key may be
    followed by whitespace before its colon (then count them by parsing)."""
    # Once escaped backslashes and quotes are gone, a quote inside a string is no more,
    # so `":` ends a key and nothing else (a value followed by a colon is not JSON).
    body = unescaped(body)
    if _SPACED_KEY.search(body):
        return None
    return body.count(b'":')


def check_shape(body: bytes, max_depth: int) -> None:
    """Raise Unbalanced or TooDeep (ShapeError) for brackets that do not pair up or nest
    deeper than `max_depth`, TooManyValues for more containers than events of the body's
    size can hold."""
    brackets = _brackets(body)
    containers = brackets.count(b"(")
    # Each pass removes the innermost level; what is left after max_depth passes nests
    # deeper. A pass that removes nothing leaves brackets that do not pair up.
    for _ in range(max_depth):
        if not brackets:
            break
        folded = brackets.replace(b"()", b"")
        if len(folded) == len(brackets):
            raise Unbalanced
        brackets = folded
    else:
        if brackets:
            raise TooDeep(max_depth)
    if containers > len(body) // BYTES_PER_CONTAINER + 64:
        raise TooManyValues(containers, len(body))


def array_spans(text: str, stop: int) -> list[tuple[int, int]]:
    """Where each item of a top-level JSON array starts and ends in `text`, counting up
    to `stop` items. Raises ValueError (with the parser's message) for text that is not
    a JSON array. Check the shape first (`check_shape`): then no item costs much."""
    index = _skip(text, 0)
    if text[index : index + 1] != "[":
        raise ValueError("Input should be a valid list (a JSON array of events, or NDJSON)")
    scan = _PLAIN.raw_decode
    spans: list[tuple[int, int]] = []
    index = _skip(text, index + 1)
    if text[index : index + 1] == "]":
        index += 1
    else:
        while len(spans) < stop:
            try:
                _, end = scan(text, index)
            except json.JSONDecodeError as exc:
                raise ValueError(f"Invalid JSON: {exc}") from None
            spans.append((index, end))
            index = _skip(text, end)
            if text[index : index + 1] == ",":
                index = _skip(text, index + 1)
            elif text[index : index + 1] == "]":
                index += 1
                break
            else:
                raise ValueError(f"Invalid JSON: expected ',' or ']' at character {index}")
        else:
            return spans
    if _skip(text, index) != len(text):
        raise ValueError(f"Invalid JSON: trailing characters at character {index}")
    return spans


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    return match.end() if match else index


class DuplicateKey(ValueError):
    """An object of the body repeats a key; `path` leads to the repeated key."""

    def __init__(self, path: Sequence[int | str]) -> None:
        super().__init__(f"duplicate key {path[-1]!r} in one JSON object")
        self.path = tuple(path)


class _Repeats(dict[str, Any]):
    """An object that repeated `key` (a marker for finding where)."""

    key: str


def _reject(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Found
    return obj


class _Found(Exception):
    pass


def _mark(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            break
        seen.add(key)
    marked = _Repeats(obj)
    marked.key = key
    return marked


_PLAIN = json.JSONDecoder()
_REJECT = json.JSONDecoder(object_pairs_hook=_reject)
_MARK = json.JSONDecoder(object_pairs_hook=_mark)


def check_duplicates(body: bytes | str) -> None:
    """Raise DuplicateKey for the first object that repeats a key.

    Meant for bodies already validated: their size in objects is bounded by the contract.
    """
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    try:
        _REJECT.decode(text)
    except _Found:
        pass
    else:
        return
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(_MARK.decode(text), ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, _Repeats):
            raise DuplicateKey((*path, value.key))
        if isinstance(value, dict):
            stack.extend((v, (*path, k)) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in reversed(list(enumerate(value))))
