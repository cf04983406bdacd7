"""Shaping the set: deduplication, deterministic sampling and the train/validation split.

Every decision is a function of the example's content (a keyed hash), so the same data
gives the same set on every run and machine, and one prompt never lands in both parts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

_SCALE = float(1 << 64)
# One encoder for every call (json.dumps builds one per call). Records are built with
# their keys in a fixed order, so the text is canonical without sorting.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _hash(*parts: Any, salt: bytes) -> int:
    digest = hashlib.blake2b(_ENCODE(parts).encode(), digest_size=8, key=salt).digest()
    return int.from_bytes(digest, "big")


def fraction(*parts: Any, salt: bytes) -> float:
    """A uniform number in [0, 1) determined by the parts."""
    return _hash(*parts, salt=salt) / _SCALE


class Deduplicator:
    """Remembers the examples seen (8 bytes of hash each; the one state that grows with
    the export: about 60 bytes per distinct example in CPython)."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def first(self, prompt: Any, target: Any) -> bool:
        """True the first time a (prompt, target) is seen."""
        key = _hash(prompt, target, salt=b"dedup")
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def sampled(prompt: Any, target: Any, rate: float) -> bool:
    """Whether the example is in a deterministic sample of `rate` of the set."""
    return rate >= 1.0 or fraction(prompt, target, salt=b"sample") < rate


def part(prompt: Any, train_share: float) -> str:
    """`train` or `validation`, by the prompt alone."""
    return "train" if fraction(prompt, salt=b"split") < train_share else "validation"
