"""OTLP attribute values as Python values, and lookups that try several conventions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Attributes = Mapping[str, Any]
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


def value_of(value: AnyValue) -> Any:
    """An AnyValue as str, bool, int, float, bytes, list, dict or None."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_of(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """Key-value pairs as a dict (a repeated key: the last one counts)."""
    return {pair.key: value_of(pair.value) for pair in pairs}


def first(attrs: Attributes, keys: Sequence[str]) -> Any:
    """The value of the first of `keys` that is set (not None)."""
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            return value
    return None


def text(value: Any) -> str | None:
    """A value as text: strings as they are, anything else as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def integer(value: Any) -> Any:
    """An integer attribute; a whole float or digit string counts (instrumentations
    differ), anything else is passed on for the contract to refuse by name."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    # ASCII digits, signed, and few enough for int() (str.isdigit() also takes "²", and
    # Python refuses over 4300 digits); anything else is left for the contract to refuse.
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    return value


def number(value: Any) -> Any:
    """A numeric attribute; a numeric string counts, anything else is passed on."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def indexed(attrs: Attributes, prefix: str) -> list[dict[str, Any]]:
    """Flattened lists (`prefix.0.role`, `prefix.0.content`, `prefix.1...`) as a list of
    dicts keyed by the rest of the name, in index order."""
    items: dict[int, dict[str, Any]] = {}
    start = len(prefix) + 1
    for key, value in attrs.items():
        if not key.startswith(prefix + "."):
            continue
        index, _, rest = key[start:].partition(".")
        if index.isdigit() and rest:
            items.setdefault(int(index), {})[rest] = value
    return [items[i] for i in sorted(items)]
