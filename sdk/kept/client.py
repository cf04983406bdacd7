"""The :class:`Client`: validates the app's calls and enqueues compact records.

The app's thread does only cheap checks, takes ``time.time()`` and appends a tuple to the
worker's queue. Event ids, timestamps and JSON are produced later on the worker thread by
:func:`kept_wire.encoding.encode_event`, the one place that defines the wire format.
Instrumentation (:mod:`kept.integrations`) takes the client as a parameter; the methods
here that delegate to it are conveniences.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from kept_wire.contract import PROJECT_PATTERN
from kept_wire.encoding import Record, encode_event, new_id, reseed_ids
from kept_wire.redaction import Redactor

from . import integrations
from .arguments import (
    RECORD_OVERHEAD,
    SCORE_SOURCES,
    InvalidArgumentError,
    Message,
    ScoreSource,
    count_or_none,
    is_name,
    is_number,
    is_string_map,
    str_or_none,
    text_size,
)
from .feedback_tokens import FeedbackTokenError, mint_feedback_token, token_url
from .guard import Guard
from .integrations import Generation, Prices
from .process_hooks import after_fork_in_child
from .spool import DEFAULT_MAX_BYTES, Spool, make_spool
from .stats import COUNTERS, LogLimiter, Stats
from .survival_tracking import (
    DEFAULT_CHECKPOINTS,
    CurrentText,
    RecentOutputs,
    SurvivalTracker,
    checkpoints_or_error,
)
from .transports import Transport, default_endpoint, endpoint_scheme, make_transport
from .worker import Worker

logger = logging.getLogger("kept")

P = ParamSpec("P")
R = TypeVar("R")

_PROJECT = re.compile(PROJECT_PATTERN)
# A forked child must not repeat its parent's ids: registered with the first client.
_ids_fork_hook = after_fork_in_child(reseed_ids)


class Client:
    """Sends generations and feedback to a kept sink without ever blocking or raising.

    Every call only enqueues; a daemon thread sends batches in the background. Calls
    return False (and count the reason in :meth:`stats`) when an event is dropped.
    The endpoint and key default to ``KEPT_ENDPOINT`` and ``KEPT_API_KEY``; a given
    ``transport`` is used instead of the one the endpoint's scheme would pick. Naive
    ``ts`` datetimes are taken as UTC. ``debug=True`` raises errors and invalid
    arguments instead of logging them (for tests).

    ``kafka://host:9092,host2:9092[?topic=kept.events]`` (or ``KEPT_KAFKA=host:9092``
    when ``KEPT_ENDPOINT`` is unset) sends to Kafka; it needs ``pip install 'kept[kafka]'``
    and a ``project`` (or ``KEPT_PROJECT``), which each event then carries. Batches that
    the sink keeps refusing wait in a disk spool (``spool_dir``: a base directory, default
    ``KEPT_SPOOL_DIR`` or ``~/.cache/kept/spool``; ``False`` for none) of at most
    ``spool_max_bytes``, and are sent, oldest first, when the sink is back, also by the
    next client of the same endpoint after a restart.

    Consent and privacy: ``capture_content=False`` sends no text the model or the user
    wrote (generation input and output, correction text, vote and score comments); a
    correction is then sent as a ``correct`` action, and survival scores are still
    computed in the process. ``redact`` (a ``str -> str`` function, e.g.
    :func:`kept.redact_pii`) rewrites every such text on the sender thread, never on the
    app's; an event whose redaction fails is dropped, not sent as it was.

    Memory stays bounded at any call rate: at most ``max_queue_size`` events and about
    ``max_queue_bytes`` of their texts wait in memory; more are dropped and counted.
    Survival checks (see :meth:`accept`) read at ``survival_checkpoints`` seconds; at
    most ``max_survival_checks`` tracked texts wait, each read may take
    ``survival_read_timeout`` seconds, and the outputs of the last ``remember_outputs``
    generations are remembered so that ``accept`` need not be given the text again.

    ``server_url`` is the kept server's HTTP address for :meth:`feedback_token`: by
    default the endpoint when it is http(s), else ``KEPT_URL``.
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
        project: str | None = None,
        spool_dir: str | os.PathLike[str] | bool | None = None,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        capture_content: bool = True,
        redact: Redactor | None = None,
        max_queue_bytes: int = 64 * 2**20,
        survival_checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS,
        survival_read_timeout: float = 1.0,
        max_survival_checks: int = 10_000,
        remember_outputs: int = 1_000,
        server_url: str | None = None,
    ) -> None:
        _ids_fork_hook.ensure()
        self._debug = debug
        self._stats = Stats()
        self._limiter = LogLimiter()
        self._guard = Guard(self._stats, self._limiter, debug=debug)
        self._worker: Worker[Record] | None = None
        self._tracker: SurvivalTracker | None = None
        self._outputs: RecentOutputs | None = None
        self._capture_content = capture_content is not False
        self._closed = False
        self._shutdown_timeout = 5.0
        endpoint = endpoint or default_endpoint()
        api_key = api_key or os.environ.get("KEPT_API_KEY")
        self._api_key = api_key
        self._server_url = server_url or (
            endpoint
            if endpoint_scheme(endpoint) in ("http", "https")
            else os.environ.get("KEPT_URL")
        )
        setting = self._guard.setting
        with self._guard["Client()"]:
            self._shutdown_timeout = setting("shutdown_timeout", shutdown_timeout, 5.0, 0.0)
            if redact is not None and not callable(redact):
                why = "redact must be a function from str to str"
                if self._debug:
                    raise InvalidArgumentError(why)
                logger.error("kept: %s; events will be dropped", why)
                transport, enabled = None, False
            if enabled:
                project = project or os.environ.get("KEPT_PROJECT") or None
                if project is not None and not (
                    isinstance(project, str) and _PROJECT.match(project)
                ):
                    why = "project must be 1-64 letters, digits, '.', '_' or '-'"
                    if self._debug:
                        raise InvalidArgumentError(why)
                    logger.error("kept: %s", why)
                    transport, enabled = None, False
                # The spool is per sink: its events must never replay into another one.
                sink: tuple[str | None, ...] | None = None
                if transport is None and enabled:
                    timeout = setting("request_timeout", request_timeout, 10.0, 1e-3)
                    transport = make_transport(endpoint, api_key, timeout, project=project)
                    kafka = endpoint_scheme(endpoint) == "kafka"
                    if transport is not None and not api_key and not kafka:
                        logger.warning("kept: no API key (set KEPT_API_KEY or pass api_key=)")
                    sink = (endpoint, api_key, project)
                elif transport is not None and spool_dir not in (None, False):
                    sink = (type(transport).__name__,)  # an app's own transport: spool if asked
                spool: Spool | None = None
                if transport is not None and sink is not None:
                    limit = setting("spool_max_bytes", spool_max_bytes, DEFAULT_MAX_BYTES, 0)
                    spool = make_spool(spool_dir, int(limit), *sink)
                if transport is not None:
                    encode = functools.partial(encode_event, project=project, redact=redact)
                    self._worker = Worker(
                        transport,
                        encode,
                        self._stats,
                        self._limiter,
                        max_queue_size=int(setting("max_queue_size", max_queue_size, 10_000, 1)),
                        max_queue_bytes=int(
                            setting("max_queue_bytes", max_queue_bytes, 64 * 2**20, 0)
                        ),
                        batch_size=int(setting("batch_size", batch_size, 500, 1)),
                        flush_interval=setting("flush_interval", flush_interval, 0.5, 1e-3),
                        shutdown_timeout=self._shutdown_timeout,
                        spool=spool,
                    )
                    # If the app drops the client without closing it, let the thread end.
                    weakref.finalize(self, self._worker.release).atexit = False
                    if spool is not None and spool.directory.is_dir():
                        self._worker.start()  # send what an earlier run left in the spool
                    self._start_survival(
                        survival_checkpoints,
                        survival_read_timeout,
                        max_survival_checks,
                        remember_outputs,
                    )
        if self._worker is None:
            why = "disabled" if not enabled else "no usable endpoint (set KEPT_ENDPOINT)"
            logger.warning("kept: %s; events will be dropped", why)

    def _start_survival(
        self, checkpoints: Sequence[int], read_timeout: float, max_checks: int, remember: int
    ) -> None:
        try:
            chosen = checkpoints_or_error(checkpoints)
        except ValueError as exc:
            if self._debug:
                raise InvalidArgumentError(str(exc)) from None
            logger.warning("kept: %s; using %s", exc, DEFAULT_CHECKPOINTS)
            chosen = DEFAULT_CHECKPOINTS
        setting = self._guard.setting
        # The tracker's thread must not keep a client alive that the app dropped.
        method = weakref.WeakMethod(self._emit_survival)

        def emit(gid: str, checkpoint: int, score: float, uid: str | None, sid: str | None) -> None:
            bound = method()
            if bound is not None:
                bound(gid, checkpoint, score, uid, sid)

        reverted = weakref.WeakMethod(self._emit_revert)

        def on_revert(gid: str, checkpoint: int, uid: str | None, sid: str | None) -> None:
            bound = reverted()
            if bound is not None:
                bound(gid, uid, sid)

        self._tracker = SurvivalTracker(
            emit,
            self._stats,
            self._limiter,
            checkpoints=chosen,
            max_pending=int(setting("max_survival_checks", max_checks, 10_000, 0)),
            read_timeout=setting("survival_read_timeout", read_timeout, 1.0, 1e-3),
            on_revert=on_revert,
        )
        weakref.finalize(self, self._tracker.close, 0.0).atexit = False
        remember = int(setting("remember_outputs", remember, 1_000, 0))
        self._outputs = RecentOutputs(remember) if remember > 0 else None

    def _emit_revert(self, gid: str, uid: str | None, sid: str | None) -> None:
        # The accepted text was undone at once: the `revert` action says so (Copilot's
        # no-revert guard), beside the checkpoint's score of 0.
        self._stats.add("survival_reverted")
        self.action(gid, "revert", user_id=uid, session_id=sid)

    def _emit_survival(
        self, gid: str, checkpoint: int, score: float, uid: str | None, sid: str | None
    ) -> None:
        self.survival(gid, checkpoint, score, user_id=uid, session_id=sid)

    # --- events: each public call runs inside its guard (kept.guard) -------------------

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
        leave ``output`` out when the app may not capture content (or make the client
        with ``capture_content=False``). A float ``latency_ms`` is rounded.
        """
        gid = new_id() if generation_id is None else generation_id
        op = "log_generation"
        with self._guard[op]:
            invalid = self._guard.invalid
            if self._worker is None or self._closed:
                self._skip()
            elif not is_name(model):
                invalid(op, "model must be a non-empty string")
            elif not (input is None or isinstance(input, (str, list, tuple))):
                invalid(op, "input must be a string or a list of messages")
            elif not (str_or_none(output) and str_or_none(prompt_version)):
                invalid(op, "output and prompt_version must be strings")
            elif not (latency_ms is None or (is_number(latency_ms) and latency_ms >= 0)):
                invalid(op, "latency_ms must be a non-negative number")
            elif not (count_or_none(input_tokens) and count_or_none(output_tokens)):
                invalid(op, "input_tokens and output_tokens must be non-negative ints")
            elif not (cost_usd is None or (is_number(cost_usd) and cost_usd >= 0)):
                invalid(op, "cost_usd must be a non-negative number")
            elif metadata is not None and not (
                isinstance(metadata, dict) and is_string_map(metadata)
            ):
                invalid(op, "metadata must be a dict of strings to strings")
            else:
                if output is not None and self._outputs is not None:
                    self._outputs.remember(gid, output)
                if not self._capture_content:
                    input = output = None
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
                size = RECORD_OVERHEAD + text_size(input) + text_size(output)
                self._put(op, "generation", gid, user_id, session_id, ts, fields, size)
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
        with self._guard["vote"]:
            if self._worker is None or self._closed:
                return self._skip()
            if isinstance(value, bool) or value not in (1, -1):
                return self._guard.invalid("vote", "value must be 1 or -1")
            if not str_or_none(comment):
                return self._guard.invalid("vote", "comment must be a string")
            if not self._capture_content:
                comment = None
            fields: dict[str, object] = {"value": int(value), "comment": comment}
            return self._put("vote", "vote", generation_id, user_id, session_id, ts, fields)
        return False

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
        with self._guard["action"]:
            if self._worker is None or self._closed:
                return self._skip()
            if not is_name(name):
                return self._guard.invalid("action", "name must be a non-empty string")
            if not (value is None or isinstance(value, str) or is_number(value)):
                return self._guard.invalid("action", "value must be a string or a finite number")
            fields: dict[str, object] = {"name": name, "value": value}
            return self._put("action", "action", generation_id, user_id, session_id, ts, fields)
        return False

    def accept(
        self,
        generation_id: str,
        *,
        current_text: CurrentText | None = None,
        text: str | None = None,
        value: str | float | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        ts: datetime | None = None,
    ) -> bool:
        """The user accepted the output: the ``accept`` action.

        With ``current_text`` (a function returning the user's text as it is now, e.g.
        the editor's buffer), survival is tracked too: see :meth:`track_survival`.
        """
        sent = self.action(
            generation_id, "accept", value=value, user_id=user_id, session_id=session_id, ts=ts
        )
        if current_text is not None:
            self.track_survival(
                generation_id, current_text, text=text, user_id=user_id, session_id=session_id
            )
        return sent

    def track_survival(
        self,
        generation_id: str,
        current_text: CurrentText,
        *,
        text: str | None = None,
        checkpoints: Sequence[int] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> bool:
        """Read ``current_text()`` at each checkpoint and send how much of ``text`` survives.

        ``text`` is the accepted text; by default the output this client logged for the
        generation (the last ``remember_outputs`` are remembered). ``current_text`` is
        called on a background thread and returns the user's text now, or None when it
        is gone for good (nothing is sent for that checkpoint); one that raises or takes
        longer than ``survival_read_timeout`` is counted in :meth:`stats` and skipped.
        Each checkpoint sends a ``survival`` event whose score is
        :func:`kept.survival_score`. Pending checks end with :meth:`close`.
        """
        op = "track_survival"
        with self._guard[op]:
            invalid = self._guard.invalid
            if self._tracker is None or self._closed:
                return self._skip()
            if not is_name(generation_id):
                return invalid(op, "generation_id must be a non-empty string")
            if not callable(current_text):
                return invalid(op, "current_text must be a function returning the text")
            if text is None and self._outputs is not None:
                text = self._outputs.get(generation_id)
            if text is None:
                why = "no text to track: pass text= (this client logged no output for the id)"
                return invalid(op, why)
            if not isinstance(text, str):
                return invalid(op, "text must be a string")
            if checkpoints is not None:
                try:
                    checkpoints = checkpoints_or_error(checkpoints)
                except ValueError as exc:
                    return invalid(op, str(exc))
            if not (str_or_none(user_id) and str_or_none(session_id)):
                return invalid(op, "user_id and session_id must be strings")
            return self._tracker.track(
                generation_id,
                text,
                current_text,
                checkpoints=checkpoints,
                user_id=user_id,
                session_id=session_id,
            )
        return False

    def correct(
        self,
        generation_id: str,
        text: str,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        ts: datetime | None = None,
    ) -> bool:
        """The text the user ended up with after editing the output.

        Without content capture, only the fact is sent: a ``correct`` action.
        """
        with self._guard["correct"]:
            if self._worker is None or self._closed:
                return self._skip()
            if not isinstance(text, str):
                return self._guard.invalid("correct", "text must be a string")
            fields: dict[str, object]
            if self._capture_content:
                kind, fields = "correction", {"text": text}
            else:
                kind, fields = "action", {"name": "correct"}
            size = RECORD_OVERHEAD + len(text)
            return self._put("correct", kind, generation_id, user_id, session_id, ts, fields, size)
        return False

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
        with self._guard["score"]:
            invalid = self._guard.invalid
            if self._worker is None or self._closed:
                return self._skip()
            if not is_name(name):
                return invalid("score", "name must be a non-empty string")
            if not is_number(value):
                return invalid("score", "value must be a finite number")
            if source not in SCORE_SOURCES:
                return invalid("score", "source must be 'human', 'llm' or 'code'")
            if not str_or_none(comment):
                return invalid("score", "comment must be a string")
            if not self._capture_content:
                comment = None
            fields: dict[str, object] = {
                "name": name,
                "value": float(value),
                "source": source,
                "comment": comment,
            }
            return self._put("score", "score", generation_id, user_id, session_id, ts, fields)
        return False

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
        with self._guard["survival"]:
            invalid = self._guard.invalid
            if self._worker is None or self._closed:
                return self._skip()
            if isinstance(checkpoint_s, bool) or not isinstance(checkpoint_s, int):
                return invalid("survival", "checkpoint_s must be an int")
            if checkpoint_s <= 0:
                return invalid("survival", "checkpoint_s must be positive")
            if not (is_number(score) and 0.0 <= score <= 1.0):
                return invalid("survival", "score must be a number from 0 to 1")
            fields: dict[str, object] = {"checkpoint_s": checkpoint_s, "score": float(score)}
            return self._put("survival", "survival", generation_id, user_id, session_id, ts, fields)
        return False

    def feedback_token(
        self, generation_id: str, *, ttl_s: int | None = None, timeout: float = 2.0
    ) -> str | None:
        """A short-lived token with which a web page may send feedback on this generation.

        Call it on the app's server while rendering the page that shows the generation;
        the page's script (``/sdk.js`` of the kept server) sends votes, actions and
        corrections with it, without the project key. The token expires after ``ttl_s``
        seconds (the server's default: an hour). Unlike the other calls this one waits
        for the server, at most ``timeout`` seconds; it returns None when no token could
        be had (counted as ``feedback_token_errors``).
        """
        op = "feedback_token"
        with self._guard[op]:
            server, key = self._server_url, self._api_key
            if not server or not key:
                why = "needs the server's URL and an API key (an http endpoint, or KEPT_URL)"
            elif not is_name(generation_id):
                why = "generation_id must be a non-empty string"
            elif ttl_s is not None and not (count_or_none(ttl_s) and ttl_s > 0):
                why = "ttl_s must be a positive int"
            else:
                url = token_url(server)
                try:
                    return mint_feedback_token(url, key, generation_id, ttl_s, timeout)
                except FeedbackTokenError as exc:
                    self._stats.add("feedback_token_errors")
                    if self._debug:
                        raise
                    self._limiter.log(logging.WARNING, op, "kept: no feedback token: %s", exc)
                    return None
            self._guard.invalid(op, why)
        return None

    # --- instrumentation: kept.integrations, with this client ---------------------------

    def log_openai(
        self,
        response: object,
        *,
        input: str | Sequence[Any] | None = None,
        prompt_version: str | None = None,
        latency_ms: float | None = None,
        metadata: dict[str, str] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        generation_id: str | None = None,
        prices: Prices | None = None,
        model: str | None = None,
    ) -> str:
        """:func:`kept.integrations.log_openai` with this client: log an OpenAI Chat
        Completions or Responses API response; returns the generation id."""
        return integrations.log_openai(
            self,
            response,
            input=input,
            prompt_version=prompt_version,
            latency_ms=latency_ms,
            metadata=metadata,
            user_id=user_id,
            session_id=session_id,
            generation_id=generation_id,
            prices=prices,
            model=model,
        )

    def log_anthropic(
        self,
        response: object,
        *,
        input: str | Sequence[Any] | None = None,
        system: str | Sequence[Any] | None = None,
        prompt_version: str | None = None,
        latency_ms: float | None = None,
        metadata: dict[str, str] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        generation_id: str | None = None,
        prices: Prices | None = None,
        model: str | None = None,
    ) -> str:
        """:func:`kept.integrations.log_anthropic` with this client: log an Anthropic
        Messages API response; returns the generation id."""
        return integrations.log_anthropic(
            self,
            response,
            input=input,
            system=system,
            prompt_version=prompt_version,
            latency_ms=latency_ms,
            metadata=metadata,
            user_id=user_id,
            session_id=session_id,
            generation_id=generation_id,
            prices=prices,
            model=model,
        )

    def generation(
        self,
        *,
        model: str,
        input: str | Sequence[Any] | None = None,
        prompt_version: str | None = None,
        metadata: Mapping[str, str] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        generation_id: str | None = None,
        prices: Prices | None = None,
    ) -> Generation:
        """:func:`kept.integrations.generation` with this client: a context manager that
        times its block and logs one generation on exit."""
        return integrations.generation(
            self,
            model=model,
            input=input,
            prompt_version=prompt_version,
            metadata=metadata,
            user_id=user_id,
            session_id=session_id,
            generation_id=generation_id,
            prices=prices,
        )

    def observe(
        self,
        *,
        model: str | None = None,
        prompt_version: str | None = None,
        name: str | None = None,
        capture_input: bool = True,
        prices: Prices | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """:func:`kept.integrations.observe` with this client: decorate a function so that
        each call logs one generation."""
        return integrations.observe(
            self,
            model=model,
            prompt_version=prompt_version,
            name=name,
            capture_input=capture_input,
            prices=prices,
            metadata=metadata,
        )

    @property
    def debug(self) -> bool:
        """True when invalid arguments and kept's own errors raise instead of being counted."""
        return self._debug

    # --- lifecycle ------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything enqueued so far; True when it all settled within ``timeout``.

        Settled means sent or permanently rejected. Never blocks longer than ``timeout``
        (default: ``shutdown_timeout``).
        """
        with self._guard["flush"]:
            if self._worker is None:
                return True
            return self._worker.flush(self._shutdown_timeout if timeout is None else timeout)
        return False

    def close(self, timeout: float | None = None) -> None:
        """Cancel pending survival checks, flush until ``timeout``, then stop; later calls
        are dropped as ``closed``."""
        with self._guard["close"]:
            self._closed = True
            deadline = self._shutdown_timeout if timeout is None else timeout
            started = time.monotonic()
            if self._tracker is not None:
                self._tracker.close(min(deadline, 1.0))
            if self._worker is not None:
                self._worker.close(max(deadline - (time.monotonic() - started), 0.0))

    async def aflush(self, timeout: float | None = None) -> bool:
        """:meth:`flush` for async apps: waits on a worker thread, not the event loop."""
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> None:
        """:meth:`close` for async apps: waits on a worker thread, not the event loop."""
        await asyncio.to_thread(self.close, timeout)

    def stats(self) -> dict[str, int]:
        """Counters: ``enqueued``, ``sent`` (spooled events replayed included), ``queued``,
        ``retries``, ``spooled``, ``spool_bytes`` (waiting on disk), ``dropped_*``,
        ``errors``."""
        with self._guard["stats"]:
            enqueued, queued = (0, 0) if self._worker is None else self._worker.counts()
            counts = self._stats.snapshot()
            result = {"enqueued": enqueued, "sent": counts["sent"], "queued": queued}
            result.update((name, counts[name]) for name in COUNTERS if name != "sent")
            result["spool_bytes"] = 0 if self._worker is None else self._worker.spool_bytes()
            return result
        return {}

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
        size: int = RECORD_OVERHEAD,
    ) -> bool:
        if not is_name(generation_id):
            return self._guard.invalid(op, "generation_id must be a non-empty string")
        if not (str_or_none(user_id) and str_or_none(session_id)):
            return self._guard.invalid(op, "user_id and session_id must be strings")
        if ts is None:
            when: float | datetime = time.time()
        elif isinstance(ts, datetime):
            when = ts
        else:
            return self._guard.invalid(op, "ts must be a datetime")
        assert self._worker is not None  # checked by every caller
        return self._worker.put((kind, generation_id, when, user_id, session_id, fields), size)

    def _skip(self) -> bool:
        self._stats.add("dropped_closed" if self._closed else "dropped_no_transport")
        return False
