"""The :class:`Client`: validates the app's calls and enqueues compact records.

The app's thread does only cheap checks, takes ``time.time()`` and appends a tuple to the
worker's queue. Event ids, timestamps and JSON are produced later on the worker thread by
:func:`encode_event`, which is also the one place that defines the wire format.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import weakref
from datetime import datetime, timezone
from types import TracebackType
from typing import Literal

from .stats import COUNTERS, LogLimiter, Stats
from .transport import Transport, make_transport
from .worker import Worker

logger = logging.getLogger("kept")

# (type, generation_id, time.time() or the app's datetime, user_id, session_id, fields)
Record = tuple[str, str, float | datetime, str | None, str | None, dict[str, object]]
Message = dict[str, str]
ScoreSource = Literal["human", "llm", "code"]

_SCORE_SOURCES = frozenset(("human", "llm", "code"))


class _InvalidArgumentError(ValueError):
    """Raised (in debug mode only) for an argument the SDK drops as invalid."""


def new_id() -> str:
    """A random (version 4) UUID string, like ``str(uuid.uuid4())`` at half the cost.

    It is on the app's thread for every generation without an id, hence the shortcut.
    """
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40
    b[8] = b[8] & 0x3F | 0x80
    x = b.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def format_ts(when: float | datetime) -> str:
    """RFC 3339 in UTC with milliseconds; naive datetimes are taken as UTC."""
    if isinstance(when, datetime):
        moment = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when
        moment = moment.astimezone(timezone.utc)
    else:
        moment = datetime.fromtimestamp(when, timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def encode_event(record: Record) -> bytes:
    """The JSON of one event, per CONTRACT.md; keys whose value is None are left out."""
    kind, generation_id, when, user_id, session_id, fields = record
    event: dict[str, object] = {
        "type": kind,
        "event_id": new_id(),
        "generation_id": generation_id,
        "ts": format_ts(when),
    }
    if user_id is not None:
        event["user_id"] = user_id
    if session_id is not None:
        event["session_id"] = session_id
    for key, value in fields.items():
        if value is not None:
            event[key] = value
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _str_or_none(value: object) -> bool:
    return value is None or isinstance(value, str)


def _name(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _count_or_none(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _string_map(value: dict[str, str]) -> bool:
    return all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


class Client:
    """Sends generations and feedback to a kept sink without ever blocking or raising.

    Every call only enqueues; a daemon thread sends batches in the background. Calls
    return False (and count the reason in :meth:`stats`) when an event is dropped.
    The endpoint and key default to ``KEPT_ENDPOINT`` and ``KEPT_API_KEY``; a given
    ``transport`` is used instead of the one the endpoint's scheme would pick. Naive
    ``ts`` datetimes are taken as UTC. ``debug=True`` raises errors and invalid
    arguments instead of logging them (for tests).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        api_key: str | None = None,
        *,
        max_queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        request_timeout: float = 10.0,
        shutdown_timeout: float = 5.0,
        debug: bool = False,
        enabled: bool = True,
        transport: Transport | None = None,
    ) -> None:
        self._debug = debug
        self._stats = Stats()
        self._limiter = LogLimiter()
        self._worker: Worker[Record] | None = None
        self._closed = False
        self._shutdown_timeout = 5.0
        try:
            self._shutdown_timeout = self._setting("shutdown_timeout", shutdown_timeout, 5.0, 0.0)
            if enabled:
                if transport is None:
                    endpoint = endpoint or os.environ.get("KEPT_ENDPOINT")
                    api_key = api_key or os.environ.get("KEPT_API_KEY")
                    timeout = self._setting("request_timeout", request_timeout, 10.0, 1e-3)
                    transport = make_transport(endpoint, api_key, timeout)
                    if transport is not None and not api_key:
                        logger.warning("kept: no API key (set KEPT_API_KEY or pass api_key=)")
                if transport is not None:
                    self._worker = Worker(
                        transport,
                        encode_event,
                        self._stats,
                        self._limiter,
                        max_queue_size=int(
                            self._setting("max_queue_size", max_queue_size, 10_000, 1)
                        ),
                        batch_size=int(self._setting("batch_size", batch_size, 500, 1)),
                        flush_interval=self._setting("flush_interval", flush_interval, 0.5, 1e-3),
                        shutdown_timeout=self._shutdown_timeout,
                    )
                    # If the app drops the client without closing it, let the thread end.
                    weakref.finalize(self, self._worker.release).atexit = False
        except Exception as exc:
            self._fail("Client()", exc)
        if self._worker is None:
            why = "disabled" if not enabled else "no usable endpoint (set KEPT_ENDPOINT)"
            logger.warning("kept: %s; events will be dropped", why)

    def _setting(self, name: str, value: float, default: float, minimum: float) -> float:
        if _number(value) and value >= minimum:
            return value
        if self._debug:
            raise _InvalidArgumentError(f"{name} must be a number >= {minimum}")
        logger.warning("kept: invalid %s; using %s", name, default)
        return default

    # --- events ---------------------------------------------------------------------

    def log_generation(
        self,
        *,
        model: str,
        input: str | list[Message] | None = None,
        output: str | None = None,
        prompt_version: str | None = None,
        latency_ms: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        metadata: dict[str, str] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        generation_id: str | None = None,
        ts: datetime | None = None,
    ) -> str:
        """Record one model call; returns its generation id (a new uuid4 unless given).

        ``input`` is a prompt string or a list of chat messages ``{role, content}``;
        leave ``output`` out when the app may not capture content. A float
        ``latency_ms`` is rounded.
        """
        gid = new_id() if generation_id is None else generation_id
        op = "log_generation"
        try:
            if self._worker is None or self._closed:
                self._skip()
            elif not _name(model):
                self._invalid(op, "model must be a non-empty string")
            elif not (input is None or isinstance(input, (str, list, tuple))):
                self._invalid(op, "input must be a string or a list of messages")
            elif not (_str_or_none(output) and _str_or_none(prompt_version)):
                self._invalid(op, "output and prompt_version must be strings")
            elif not (latency_ms is None or (_number(latency_ms) and latency_ms >= 0)):
                self._invalid(op, "latency_ms must be a non-negative number")
            elif not (_count_or_none(input_tokens) and _count_or_none(output_tokens)):
                self._invalid(op, "input_tokens and output_tokens must be non-negative ints")
            elif not (cost_usd is None or (_number(cost_usd) and cost_usd >= 0)):
                self._invalid(op, "cost_usd must be a non-negative number")
            elif metadata is not None and not (
                isinstance(metadata, dict) and _string_map(metadata)
            ):
                self._invalid(op, "metadata must be a dict of strings to strings")
            else:
                fields: dict[str, object] = {
                    "model": model,
                    "prompt_version": prompt_version,
                    "input": list(input) if isinstance(input, (list, tuple)) else input,
                    "output": output,
                    "latency_ms": None if latency_ms is None else round(latency_ms),
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "cost_usd": None if cost_usd is None else float(cost_usd),
                    "metadata": None if metadata is None else dict(metadata),
                }
                self._put(op, "generation", gid, user_id, session_id, ts, fields)
        except Exception as exc:
            self._fail(op, exc)
        return gid

    def vote(
        self,
        generation_id: str,
        value: int,
        *,
        comment: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        ts: datetime | None = None,
    ) -> bool:
        """Thumbs up (``1``) or down (``-1``); the latest vote of a generation counts."""
        try:
            if self._worker is None or self._closed:
                return self._skip()
            if isinstance(value, bool) or value not in (1, -1):
                return self._invalid("vote", "value must be 1 or -1")
            if not _str_or_none(comment):
                return self._invalid("vote", "comment must be a string")
            fields: dict[str, object] = {"value": int(value), "comment": comment}
            return self._put("vote", "vote", generation_id, user_id, session_id, ts, fields)
        except Exception as exc:
            return self._fail("vote", exc)

    def action(
        self,
        generation_id: str,
        name: str,
        *,
        value: str | float | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        ts: datetime | None = None,
    ) -> bool:
        """Something the user did with the output: ``accept``, ``copy``, ``regenerate``..."""
        try:
            if self._worker is None or self._closed:
                return self._skip()
            if not _name(name):
                return self._invalid("action", "name must be a non-empty string")
            if not (value is None or isinstance(value, str) or _number(value)):
                return self._invalid("action", "value must be a string or a finite number")
            fields: dict[str, object] = {"name": name, "value": value}
            return self._put("action", "action", generation_id, user_id, session_id, ts, fields)
        except Exception as exc:
            return self._fail("action", exc)

    def accept(
        self,
        generation_id: str,
        *,
        value: str | float | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        ts: datetime | None = None,
    ) -> bool:
        """The user accepted the output: the ``accept`` action."""
        return self.action(
            generation_id, "accept", value=value, user_id=user_id, session_id=session_id, ts=ts
        )

    def correct(
        self,
        generation_id: str,
        text: str,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        ts: datetime | None = None,
    ) -> bool:
        """The text the user ended up with after editing the output."""
        try:
            if self._worker is None or self._closed:
                return self._skip()
            if not isinstance(text, str):
                return self._invalid("correct", "text must be a string")
            fields: dict[str, object] = {"text": text}
            return self._put(
                "correct", "correction", generation_id, user_id, session_id, ts, fields
            )
        except Exception as exc:
            return self._fail("correct", exc)

    def score(
        self,
        generation_id: str,
        name: str,
        value: float,
        *,
        source: ScoreSource = "code",
        comment: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        ts: datetime | None = None,
    ) -> bool:
        """A named numeric judgement from a ``human``, an ``llm`` judge or ``code``."""
        try:
            if self._worker is None or self._closed:
                return self._skip()
            if not _name(name):
                return self._invalid("score", "name must be a non-empty string")
            if not _number(value):
                return self._invalid("score", "value must be a finite number")
            if source not in _SCORE_SOURCES:
                return self._invalid("score", "source must be 'human', 'llm' or 'code'")
            if not _str_or_none(comment):
                return self._invalid("score", "comment must be a string")
            fields: dict[str, object] = {
                "name": name,
                "value": float(value),
                "source": source,
                "comment": comment,
            }
            return self._put("score", "score", generation_id, user_id, session_id, ts, fields)
        except Exception as exc:
            return self._fail("score", exc)

    def survival(
        self,
        generation_id: str,
        checkpoint_s: int,
        score: float,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        ts: datetime | None = None,
    ) -> bool:
        """How much (0..1) of the accepted text is still there ``checkpoint_s`` seconds later."""
        try:
            if self._worker is None or self._closed:
                return self._skip()
            if isinstance(checkpoint_s, bool) or not isinstance(checkpoint_s, int):
                return self._invalid("survival", "checkpoint_s must be an int")
            if checkpoint_s <= 0:
                return self._invalid("survival", "checkpoint_s must be positive")
            if not (_number(score) and 0.0 <= score <= 1.0):
                return self._invalid("survival", "score must be a number from 0 to 1")
            fields: dict[str, object] = {"checkpoint_s": checkpoint_s, "score": float(score)}
            return self._put("survival", "survival", generation_id, user_id, session_id, ts, fields)
        except Exception as exc:
            return self._fail("survival", exc)

    # --- lifecycle ------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything enqueued so far; True when it all settled within ``timeout``.

        Settled means sent or permanently rejected. Never blocks longer than ``timeout``
        (default: ``shutdown_timeout``).
        """
        try:
            if self._worker is None:
                return True
            return self._worker.flush(self._shutdown_timeout if timeout is None else timeout)
        except Exception as exc:
            return self._fail("flush", exc)

    def close(self, timeout: float | None = None) -> None:
        """Flush until ``timeout``, then stop; later calls are dropped as ``closed``."""
        try:
            self._closed = True
            if self._worker is not None:
                self._worker.close(self._shutdown_timeout if timeout is None else timeout)
        except Exception as exc:
            self._fail("close", exc)

    def stats(self) -> dict[str, int]:
        """Counters: ``enqueued``, ``sent``, ``queued``, ``retries``, ``dropped_*``, ``errors``."""
        try:
            enqueued, queued = (0, 0) if self._worker is None else self._worker.counts()
            counts = self._stats.snapshot()
            result = {"enqueued": enqueued, "sent": counts["sent"], "queued": queued}
            result.update((name, counts[name]) for name in COUNTERS if name != "sent")
        except Exception as exc:
            self._fail("stats", exc)
            return {}
        return result

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------

    def _put(
        self,
        op: str,
        kind: str,
        generation_id: str,
        user_id: str | None,
        session_id: str | None,
        ts: datetime | None,
        fields: dict[str, object],
    ) -> bool:
        if not _name(generation_id):
            return self._invalid(op, "generation_id must be a non-empty string")
        if not (_str_or_none(user_id) and _str_or_none(session_id)):
            return self._invalid(op, "user_id and session_id must be strings")
        if ts is None:
            when: float | datetime = time.time()
        elif isinstance(ts, datetime):
            when = ts
        else:
            return self._invalid(op, "ts must be a datetime")
        assert self._worker is not None  # checked by every caller
        return self._worker.put((kind, generation_id, when, user_id, session_id, fields))

    def _skip(self) -> bool:
        self._stats.add("dropped_closed" if self._closed else "dropped_no_transport")
        return False

    def _invalid(self, op: str, why: str) -> bool:
        self._stats.add("dropped_invalid")
        if self._debug:
            raise _InvalidArgumentError(f"kept.{op}: {why}")
        self._limiter.log(
            logging.WARNING, f"invalid:{op}:{why}", "kept.%s: %s", op, why + "; dropped"
        )
        return False

    def _fail(self, op: str, exc: Exception) -> bool:
        if self._debug:
            raise exc
        self._stats.add("errors")
        # Only the exception's type: its message could quote the app's data.
        self._limiter.log(
            logging.ERROR, f"fail:{op}", "kept: %s failed (%s)", op, type(exc).__name__
        )
        return False
