"""Feedback from browsers: `POST /v1/feedback` with a feedback token.

The app's server mints a short-lived token for one generation with its project key
(tokens.py); the web page sends votes, actions, corrections, scores and survival checks
for that generation with the token, through the dependency-free snippet at `/sdk.js`.
Survival checks come up to 15 minutes after the accept (the last default checkpoint), so
a page that tracks survival needs a token that outlives its last checkpoint: the default
lifetime, KEPT_FEEDBACK_TOKEN_TTL_S = 3600 s, does; a shorter `ttl_s` should be at least
the last checkpoint plus a few minutes (a hidden tab may read late).

Only `/v1/feedback` speaks CORS: the rest of the API takes project keys, which belong on
servers. It accepts a `text/plain` body carrying the token, so that a page's request is a
CORS "simple request" and needs no preflight; a token in `Authorization` works too.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from kept_ingest.decode import DecodeLimits, InvalidEvents, decode_json_array
from kept_ingest.fast_contract import AnyEvent
from kept_ingest.feedback_tokens import FeedbackGrant, FeedbackTokenError, verify_token
from kept_ingest.jsonshape import (
    DuplicateKey,
    ShapeError,
    TooManyValues,
    check_duplicates,
    check_shape,
)
from kept_service.api import openapi
from kept_service.api.auth import FeedbackCredentials
from kept_service.api.bodies import BodyTooLarge, inflate, off_loop, read_raw
from kept_service.api.deps import RuntimeDep
from kept_service.api.errors import ApiError, set_refusal_headers
from kept_service.api.events import Accepted, decode_limits, invalid_events, store_events
from kept_service.api.tokens import body_error, envelope_errors, invalid
from kept_service.runtime import Runtime
from kept_service.runtime.settings import ServerSettings
from kept_wire.contract import EVENT_TYPES

router = APIRouter(tags=["feedback"])
FEEDBACK_ROUTE = "/v1/feedback"
FEEDBACK_TYPES = ("vote", "action", "correction", "score", "survival")
"""What a feedback token sends: everything but the generation itself. `survival`
(checkpoint_s, score) is validated by the contract like any event."""
MAX_EVENTS = 100
"""Events in one /v1/feedback request: a page reports what one user did, not a backlog."""


class FeedbackRequest(BaseModel):
    """Body of `POST /v1/feedback`; each event is checked against the contract afterwards."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = None
    events: list[Any]


def _schemas() -> dict[str, dict[str, Any]]:
    schemas = openapi.feedback_event_schemas(FEEDBACK_TYPES)
    request = openapi.model_schemas(FeedbackRequest)
    events = request["FeedbackRequest"]["properties"]["events"]
    events["items"] = {"$ref": openapi.REF.format(model="FeedbackEvent")}
    events["maxItems"] = MAX_EVENTS
    return schemas | request


SCHEMAS = _schemas()
"""Components the hand-written body declaration refers to."""


# ---- CORS -----------------------------------------------------------------------------


def _cors(request: Request, runtime: Runtime) -> tuple[dict[str, str], bool]:
    """CORS headers for this request, and whether its origin may send feedback at all.

    A text/plain POST reaches the server whatever CORS says (only reading the answer is
    blocked), so a configured origin list is enforced here too, not only by the browser.
    Requests without an Origin header (servers, edge functions) are not browsers' and pass.
    """
    allowed = runtime.settings.feedback_origins
    headers = {"Access-Control-Expose-Headers": "Retry-After"}
    if "*" in allowed:
        return {**headers, "Access-Control-Allow-Origin": "*"}, True
    headers["Vary"] = "Origin"
    origin = request.headers.get("origin")
    if origin is None:
        return headers, True
    if origin.rstrip("/") in allowed:
        return {**headers, "Access-Control-Allow-Origin": origin}, True
    return headers, False


def _origin_refused(request: Request, headers: dict[str, str]) -> ApiError:
    origin = request.headers.get("origin")
    message = f"origin {origin!r} may not send feedback (allowed: KEPT_FEEDBACK_ORIGINS)"
    return ApiError(403, "forbidden", message, headers=headers)


async def _browser_origin(request: Request, response: Response, runtime: RuntimeDep) -> None:
    """Every answer, refusals included, carries the CORS headers; other origins get 403."""
    headers, allowed = _cors(request, runtime)
    if not allowed:
        runtime.metrics.events_rejected.labels("unknown", "forbidden").inc()
        raise _origin_refused(request, headers)
    response.headers.update(headers)
    set_refusal_headers(request, headers)


@router.options(FEEDBACK_ROUTE, include_in_schema=False)
async def feedback_preflight(request: Request, runtime: RuntimeDep) -> Response:
    """Answer the browser's preflight (sent when the page uses the Authorization header)."""
    headers, allowed = _cors(request, runtime)
    if not allowed:
        raise _origin_refused(request, headers)
    headers |= {
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "7200",
    }
    return Response(status_code=204, headers=headers)


# ---- the token ------------------------------------------------------------------------


def _unauthorized(runtime: Runtime, message: str, reason: str) -> ApiError:
    runtime.metrics.events_rejected.labels("unknown", "unauthorized").inc()
    return ApiError(401, "unauthorized", message, reason=reason)


def _verify(runtime: Runtime, token: str) -> FeedbackGrant:
    try:
        return verify_token(runtime.feedback_secret, token)
    except FeedbackTokenError as exc:
        raise _unauthorized(runtime, str(exc), exc.reason) from None


@dataclass(frozen=True)
class HeaderToken:
    """A valid feedback token from the Authorization header, and what it grants."""

    token: str
    grant: FeedbackGrant


async def _header_token(
    runtime: RuntimeDep, credentials: FeedbackCredentials
) -> HeaderToken | None:
    # Checked before the body is read: a page with a stale token should learn that,
    # whatever else is wrong.
    if credentials is None:
        return None
    return HeaderToken(credentials.credentials, _verify(runtime, credentials.credentials))


HeaderTokenDep = Annotated[HeaderToken | None, Depends(_header_token)]
"""The feedback token in `Authorization` (401 for a bad one), or None without one."""


# ---- the route ------------------------------------------------------------------------


@router.post(
    FEEDBACK_ROUTE,
    status_code=202,
    dependencies=[Depends(_browser_origin)],
    # The token may come in the body instead of the header: no credential is required.
    openapi_extra=openapi.json_body("FeedbackRequest", text_plain=True) | {"security": [{}]},
    responses=openapi.refusals(
        401,
        403,
        413,
        422,
        429,
        503,
        challenge=False,
        e401="`unauthorized`: no token, or a bad one; `reason` says which",
        e403="`forbidden`: the Origin may not send feedback, or an event is not the token's",
        e422="`invalid_events`: the body or an event breaks the contract",
    ),
)
async def post_feedback(request: Request, runtime: RuntimeDep, header: HeaderTokenDep) -> Accepted:
    """Store feedback events for the generation a feedback token names, all or nothing.

    Body: `{"token": "kft_...", "events": [...]}` as application/json or text/plain; the
    token may instead come as `Authorization: Bearer kft_...`. Events may leave out
    `generation_id` (the token's is used); `project` is the token's.
    """
    metrics, settings = runtime.metrics, runtime.settings
    threads, limits = settings.decode_threads, decode_limits(settings, MAX_EVENTS)
    try:
        raw = await read_raw(request, settings.feedback_max_body_bytes)
        encoding = request.headers.get("content-encoding")
        text, body = await off_loop(threads, _envelope, raw, encoding, settings)
    except BodyTooLarge as exc:
        metrics.events_rejected.labels("unknown", "too_large").inc()
        raise ApiError(413, "too_large", str(exc)) from None
    except InvalidEvents as exc:
        raise invalid_events(metrics, exc, settings.max_errors) from None
    except ValidationError as exc:
        metrics.events_rejected.labels("unknown", "invalid").inc()
        message = 'expected a JSON object {"token": "kft_...", "events": [...]}'
        raise invalid(message, envelope_errors(exc, settings.max_errors)) from None
    grant = _grant(runtime, header, body.token)
    if len(body.events) > MAX_EVENTS:
        metrics.events_rejected.labels("unknown", "too_large").inc(len(body.events))
        message = f"{len(body.events)} events in one request; at most {MAX_EVENTS}"
        raise ApiError(413, "too_large", message)
    _check_scope(runtime, body.events, grant)
    try:
        events = await off_loop(threads, _events, body.events, text, limits)
    except InvalidEvents as exc:
        raise invalid_events(metrics, exc, settings.max_errors) from None
    return await store_events(runtime, events, grant.project)


def _envelope(
    raw: bytes, encoding: str | None, settings: ServerSettings
) -> tuple[bytes, FeedbackRequest]:
    """The inflated body and its envelope (on the decode executor)."""
    text = inflate(raw, encoding, settings.feedback_max_body_bytes) or b"null"
    try:
        check_shape(text, settings.max_json_depth)
    except (ShapeError, TooManyValues) as exc:
        raise body_error(str(exc)) from None
    return text, FeedbackRequest.model_validate_json(text)


def _events(events: list[Any], text: bytes, limits: DecodeLimits) -> Sequence[AnyEvent]:
    """The events checked against the contract, then the body for repeated keys (once
    the events are valid, the body's size in objects is bounded)."""
    validated = decode_json_array(json.dumps(events).encode(), limits)
    try:
        check_duplicates(text)
    except DuplicateKey as exc:
        index = int(exc.path[1]) if exc.path[:1] == ("events",) and len(exc.path) > 2 else None
        rest = exc.path[2:] if index is not None else exc.path
        raise body_error(str(exc), ".".join(str(p) for p in rest), index) from None
    return validated


def _grant(runtime: Runtime, header: HeaderToken | None, body_token: str | None) -> FeedbackGrant:
    """What the header's token grants, or else the body's; when both come, they must match."""
    if header is None:
        if not body_token:
            message = 'missing feedback token (body {"token": "kft_..."} or Authorization: Bearer)'
            raise _unauthorized(runtime, message, "missing_token")
        return _verify(runtime, body_token)
    if body_token and body_token != header.token:
        message = "the Authorization header and the body carry different tokens"
        raise _unauthorized(runtime, message, "two_tokens")
    return header.grant


def _check_scope(runtime: Runtime, events: list[Any], grant: FeedbackGrant) -> None:
    """403 for an event the token does not cover; fills in the token's generation id.

    Runs on the raw objects, before contract validation, so that a generation event (say)
    is refused as out of scope rather than picked apart field by field.
    """
    problems: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            continue  # the contract check names it
        kind = event.get("type")
        if kind in EVENT_TYPES and kind not in FEEDBACK_TYPES:
            allowed = ", ".join(FEEDBACK_TYPES)
            message = f"a feedback token sends {allowed} events, not {kind}"
            problems.append({"index": index, "field": "type", "message": message})
        if event.get("generation_id") is None:
            event["generation_id"] = grant.generation_id
        elif event["generation_id"] != grant.generation_id:
            message = f"the token is for generation {grant.generation_id!r}"
            problems.append({"index": index, "field": "generation_id", "message": message})
        if event.get("project") not in (None, grant.project):
            message = f"the token is for project {grant.project!r}"
            problems.append({"index": index, "field": "project", "message": message})
    if not problems:
        return
    kinds = Counter(
        e["type"] if isinstance(e, dict) and e.get("type") in EVENT_TYPES else "unknown"
        for e in events
    )
    for kind, count in kinds.items():
        runtime.metrics.events_rejected.labels(kind, "forbidden").inc(count)
    raise ApiError(
        403,
        "forbidden",
        f"{len({p['index'] for p in problems})} event(s) are outside what the feedback token "
        "allows; nothing of this request was stored",
        errors=problems,
    )
