"""Events on the wire: ids, timestamps and the JSON of one event (README, "Event contract").

The standard library, and msgspec for the JSON where it is installed. The SDK encodes
each queued :data:`Record` here, on its sender thread; every transport sends what
:func:`encode_event` made.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from kept_wire.contract import MAX_EVENTS_PER_MESSAGE
from kept_wire.redaction import Redactor

Record = tuple[str, str, float | datetime, str | None, str | None, dict[str, object]]
"""An event before encoding: ``(type, generation_id, time.time() or a datetime, user_id,
session_id, fields)``."""

_TEXT_FIELDS = ("output", "text", "comment")

# Private, so that an app calling random.seed() cannot make ids repeat (the server would
# then drop the repeats as duplicates).
_rng = random.Random()
_NOT_VERSION = ~(0xF000 << 64) & ~(0xC000 << 48)  # clears the version and variant bits
_V4 = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


class RedactionError(Exception):
    """The app's redaction hook raised or returned something other than a string."""


def new_id() -> str:
    """A random version 4 UUID string, like ``str(uuid.uuid4())`` at a fraction of the cost.

    It runs on the app's thread for every generation without an id, and on the sender
    thread for every event id. ``os.urandom`` (what uuid4 uses) releases the GIL, and two
    threads that both call it hand the GIL back and forth: measured, that alone took the
    app's p99 per call from about 20 µs to 150-400 µs. The ids come from a private
    generator seeded from ``os.urandom``: unique, but not meant to be unguessable, which
    nothing relies on (tokens are signed by the server). A forked child must call
    :func:`reseed_ids`, or it repeats its parent's ids.
    """
    # bytes.hex() is about 0.3 µs quicker than formatting the int with "032x".
    x = (_rng.getrandbits(128) & _NOT_VERSION | _V4).to_bytes(16, "big").hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def reseed_ids() -> None:
    """Reseed :func:`new_id`'s generator from ``os.urandom`` (in a forked child)."""
    _rng.seed()


def format_ts(when: float | datetime) -> str:
    """RFC 3339 in UTC with milliseconds; naive datetimes are taken as UTC.

    A float (``time.time()``, what the SDK records) takes a fast path: the text of the
    whole second is made once per second and the milliseconds appended, cheaper than a
    datetime per event on the sender thread; the result is the same,
    the microseconds rounded as ``datetime.fromtimestamp`` rounds them.
    """
    if isinstance(when, datetime):
        moment = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when
        moment = moment.astimezone(timezone.utc)
        return moment.isoformat(timespec="milliseconds")
    try:
        fraction, whole = math.modf(when)
        micros = round(fraction * 1e6)  # half to even, as datetime.fromtimestamp
    except (TypeError, ValueError, OverflowError):  # not a finite number: as before
        return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="milliseconds")
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    cached = _last_second[0]
    if cached[0] != whole:
        second = datetime.fromtimestamp(whole, timezone.utc).isoformat(timespec="seconds")
        cached = _last_second[0] = (whole, second[:-6])  # without "+00:00"
    return cached[1] + _MILLIS[micros // 1000]


# ".000+00:00" to ".999+00:00": a lookup instead of a format per event on the sender thread.
_MILLIS = tuple(f".{ms:03d}+00:00" for ms in range(1000))
# The last whole second format_ts saw and its text (nan: none yet). One tuple, replaced
# whole, so that threads that format at the same time never see a half-updated pair.
_last_second: list[tuple[float, str]] = [(math.nan, "")]


def _make_dumps() -> Callable[[dict[str, object]], bytes]:
    """The UTF-8 JSON of an event, compact, made by an encoder built once.

    msgspec's encoder (the SDK's one dependency, on CPython) takes about 0.5 µs for a
    typical 1.1 KB generation where the standard library's C encoder takes 3.7 µs, and
    the encoding runs on the sender thread, in the app's process and under its GIL
    (benchmarks/sdk_busy_app.py). It writes NaN and infinities as ``null`` and encodes
    sets, tuples, bytes (base64) and datetimes (RFC 3339) where the standard library
    refuses them; what neither can encode raises, and the event is dropped as invalid.

    Without msgspec (another interpreter, or an install without it): the standard
    library's C encoder, built once and checked against ``json.dumps`` on a sample
    (``json.dumps`` with arguments builds a new encoder on every call), or a cached
    ``JSONEncoder`` where that private constructor differs or is missing. Without
    circular-reference markers, a self-containing value raises RecursionError instead
    of ValueError: the event is dropped as invalid either way.
    """
    try:
        import msgspec
    except ImportError:
        return _standard_dumps()
    return msgspec.json.Encoder().encode


def _standard_dumps() -> Callable[[dict[str, object]], bytes]:
    """``json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``
    as UTF-8, with the encoder made once (see :func:`_make_dumps`)."""
    options: dict[str, object] = {"ensure_ascii": False, "separators": (",", ":")}
    encoder = json.JSONEncoder(**options, allow_nan=False)  # type: ignore[arg-type]
    sample: dict[str, object] = {
        "s": 'é"\\n\u2028', "i": -3, "f": 0.00021, "b": True, "n": None,
        "l": [{"k": "v"}, 1.5e300], "d": {},
    }  # fmt: skip
    try:
        from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]

        iterencode = c_make_encoder(
            None, encoder.default, encode_basestring, None, ":", ",", False, False, False
        )

        def dumps(obj: dict[str, object]) -> bytes:
            return "".join(iterencode(obj, 0)).encode()

        if dumps(sample) == json.dumps(sample, **options).encode():  # type: ignore[arg-type]
            return dumps
    except Exception:  # noqa: S110 - no usable C encoder here: the portable path below
        pass

    def portable(obj: dict[str, object]) -> bytes:
        return encoder.encode(obj).encode()

    return portable


_dumps = _make_dumps()


def encode_event(
    record: Record, project: str | None = None, redact: Redactor | None = None
) -> bytes:
    """The JSON of one event; keys whose value is None are left out.

    The event id is made here, once: a batch that is retried or spooled and replayed
    carries the same ids, so the server stores it once. ``generation_id`` comes early in
    the object so that a transport can find it without parsing a large event. ``redact``
    rewrites every text the model or the user wrote; it raises RedactionError when that
    fails, since an event it could not redact must not leave the process.
    """
    kind, generation_id, when, user_id, session_id, fields = record
    if redact is not None:
        fields = redacted(fields, redact)
    event: dict[str, object] = {
        "type": kind,
        "event_id": new_id(),
        "generation_id": generation_id,
        "ts": format_ts(when),
    }
    if project is not None:
        event["project"] = project
    if user_id is not None:
        event["user_id"] = user_id
    if session_id is not None:
        event["session_id"] = session_id
    for key, value in fields.items():
        if value is not None:
            event[key] = value
    return _dumps(event)


def redacted(fields: dict[str, object], redact: Redactor) -> dict[str, object]:
    """``fields`` with ``redact`` applied to the input, output, correction and comments."""

    def apply(text: str) -> str:
        try:
            result = redact(text)
        except Exception as exc:
            raise RedactionError(f"the redaction hook raised {type(exc).__name__}") from None
        if not isinstance(result, str):
            raise RedactionError("the redaction hook returned " + type(result).__name__)
        return result

    out = dict(fields)
    for key in _TEXT_FIELDS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = apply(value)
    value = out.get("input")
    if isinstance(value, str):
        out["input"] = apply(value)
    elif isinstance(value, (list, tuple)):
        out["input"] = [
            {**m, "content": apply(m["content"])}
            if isinstance(m, dict) and isinstance(m.get("content"), str)
            else m
            for m in value
        ]
    return out


def pack_events(
    events: Sequence[bytes], max_bytes: int, max_events: int = MAX_EVENTS_PER_MESSAGE
) -> list[bytes]:
    """Encoded events as few messages as fit: JSON arrays of at most `max_bytes` and
    `max_events` each, in order; an event that fits no array with others goes alone,
    as the object it is.

    Producers send a batch per Kafka message because what a consumer pays per message
    (the client library's record parsing) costs more than validating the event itself.
    """
    messages: list[bytes] = []
    chunk: list[bytes] = []
    size = 1  # "[" and "]" less the comma the first event does not need

    def close() -> None:
        messages.append(chunk[0] if len(chunk) == 1 else b"[" + b",".join(chunk) + b"]")

    for event in events:
        if chunk and (size + len(event) + 1 > max_bytes or len(chunk) >= max_events):
            close()
            chunk, size = [], 1
        chunk.append(event)
        size += len(event) + 1
    if chunk:
        close()
    return messages
