"""Feedback from browsers: `POST /v1/feedback-tokens`, `POST /v1/feedback`, `GET /sdk.js`.

The app's server mints a short-lived token for one generation with its project key; the
web page sends votes, actions, corrections and scores for that generation with the token
(see feedback_tokens.py), through the dependency-free snippet at `/sdk.js`.

Only `/v1/feedback` speaks CORS: the rest of the API takes project keys, which belong on
servers. It accepts a `text/plain` body carrying the token, so that a page's request is a
CORS "simple request" and needs no preflight; a token in `Authorization` works too.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kept_ingest.contract import Id
from kept_ingest.decode import InvalidEvents, decode_json_array
from kept_ingest.feedback_tokens import FeedbackGrant, FeedbackTokenError, mint_token, verify_token
from kept_service.api.deps import RuntimeDep, bearer_token, error_response
from kept_service.api.events import BodyTooLarge, read_body, refuse_invalid, store_events
from kept_service.runtime import Runtime
from kept_wire.contract import EVENT_TYPES

router = APIRouter()
TOKENS_ROUTE = "/v1/feedback-tokens"
FEEDBACK_ROUTE = "/v1/feedback"
FEEDBACK_TYPES = ("vote", "action", "correction", "score")
MAX_EVENTS = 100
"""Events in one /v1/feedback request: a page reports what one user did, not a backlog."""
_MAX_TOKEN_REQUEST_BYTES = 16 * 1024


class TokenRequest(BaseModel):
    """Body of `POST /v1/feedback-tokens`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    generation_id: Id
    ttl_s: Annotated[int, Field(ge=1)] | None = None
    """Lifetime in seconds; default KEPT_FEEDBACK_TOKEN_TTL_S, at most ..._MAX_TTL_S."""


class TokenResponse(BaseModel):
    token: str
    generation_id: str
    expires_at: str
    """RFC 3339, UTC."""


class FeedbackRequest(BaseModel):
    """Body of `POST /v1/feedback`; each event is checked against the contract afterwards."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = None
    events: list[Any]


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    content = {"application/json": {"schema": schema}}
    if model is FeedbackRequest:
        content["text/plain"] = {"schema": schema}
    return {"requestBody": {"required": True, "content": content}}


def _observe(runtime: Runtime, route: str, started: float, response: Response) -> Response:
    runtime.metrics.requests.labels(route, str(response.status_code)).inc()
    runtime.metrics.request_latency.labels(route).observe(time.perf_counter() - started)
    return response


def _invalid(message: str, errors: list[dict[str, Any]]) -> JSONResponse:
    return error_response(422, "invalid_events", message, errors=errors)


def _envelope_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "index": None,
            "field": ".".join(str(p) for p in err["loc"]) or None,
            "message": str(err["msg"]),
        }
        for err in exc.errors(include_url=False)
    ]


# ---- minting --------------------------------------------------------------------------


@router.post(
    TOKENS_ROUTE,
    status_code=201,
    response_model=TokenResponse,
    openapi_extra=_json_body(TokenRequest),
)
async def create_feedback_token(request: Request, runtime: RuntimeDep) -> Response:
    """Mint a feedback token for one generation of the key's project (server to server)."""
    started = time.perf_counter()
    return _observe(runtime, TOKENS_ROUTE, started, await _mint(request, runtime))


async def _mint(request: Request, runtime: Runtime) -> Response:
    settings = runtime.settings
    key = bearer_token(request)
    project = runtime.keys.project_for(key) if key else None
    if project is None:
        return error_response(
            401,
            "unauthorized",
            "missing or invalid project key (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        body = TokenRequest.model_validate_json(
            await read_body(request, _MAX_TOKEN_REQUEST_BYTES) or b"null"
        )
    except BodyTooLarge:
        return error_response(413, "too_large", "a token request is a small JSON object")
    except ValidationError as exc:
        return _invalid("invalid token request", _envelope_errors(exc))
    ttl = body.ttl_s if body.ttl_s is not None else settings.feedback_token_ttl_s
    if ttl > settings.feedback_token_max_ttl_s:
        message = f"ttl_s is at most {settings.feedback_token_max_ttl_s}"
        return _invalid(message, [{"index": None, "field": "ttl_s", "message": message}])
    token, grant = mint_token(runtime.feedback_secret, project, body.generation_id, ttl)
    answer = TokenResponse(
        token=token, generation_id=grant.generation_id, expires_at=grant.expires_at_rfc3339
    )
    return JSONResponse(answer.model_dump(), 201, headers={"Cache-Control": "no-store"})


# ---- feedback from the browser --------------------------------------------------------


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


def _origin_refused(request: Request) -> JSONResponse:
    origin = request.headers.get("origin")
    return error_response(
        403,
        "forbidden",
        f"origin {origin!r} may not send feedback (allowed: KEPT_FEEDBACK_ORIGINS)",
    )


@router.options(FEEDBACK_ROUTE, include_in_schema=False)
async def feedback_preflight(request: Request, runtime: RuntimeDep) -> Response:
    """Answer the browser's preflight (sent when the page uses the Authorization header)."""
    headers, allowed = _cors(request, runtime)
    if not allowed:
        return _with(headers, _origin_refused(request))
    headers |= {
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "7200",
    }
    return Response(status_code=204, headers=headers)


def _with(headers: dict[str, str], response: Response) -> Response:
    response.headers.update(headers)
    return response


@router.post(FEEDBACK_ROUTE, status_code=202, openapi_extra=_json_body(FeedbackRequest))
async def post_feedback(request: Request, runtime: RuntimeDep) -> Response:
    """Store feedback events for the generation a feedback token names, all or nothing.

    Body: `{"token": "kft_...", "events": [...]}` as application/json or text/plain; the
    token may instead come as `Authorization: Bearer kft_...`. Events may leave out
    `generation_id` (the token's is used); `project` is the token's.
    """
    started = time.perf_counter()
    headers, allowed = _cors(request, runtime)
    if allowed:
        response = await _feedback(request, runtime)
    else:
        runtime.metrics.events_rejected.labels("unknown", "forbidden").inc()
        response = _origin_refused(request)
    return _observe(runtime, FEEDBACK_ROUTE, started, _with(headers, response))


def _unauthorized(runtime: Runtime, message: str, reason: str) -> JSONResponse:
    runtime.metrics.events_rejected.labels("unknown", "unauthorized").inc()
    return error_response(401, "unauthorized", message, reason=reason)


def _verify(runtime: Runtime, token: str) -> FeedbackGrant | JSONResponse:
    try:
        return verify_token(runtime.feedback_secret, token)
    except FeedbackTokenError as exc:
        return _unauthorized(runtime, str(exc), exc.reason)


async def _feedback(request: Request, runtime: Runtime) -> Response:
    metrics, settings = runtime.metrics, runtime.settings
    # A token in the header is checked before the body is read: a page with a stale
    # token should learn that, whatever else is wrong.
    header_token = bearer_token(request)
    grant = _verify(runtime, header_token) if header_token else None
    if isinstance(grant, JSONResponse):
        return grant
    try:
        body = FeedbackRequest.model_validate_json(
            await read_body(request, settings.feedback_max_body_bytes) or b"null"
        )
    except BodyTooLarge:
        metrics.events_rejected.labels("unknown", "too_large").inc()
        limit = settings.feedback_max_body_bytes
        return error_response(413, "too_large", f"the body is larger than {limit} bytes")
    except ValidationError as exc:
        metrics.events_rejected.labels("unknown", "invalid").inc()
        message = 'expected a JSON object {"token": "kft_...", "events": [...]}'
        return _invalid(message, _envelope_errors(exc))
    if grant is None:
        if not body.token:
            return _unauthorized(
                runtime,
                'missing feedback token (body {"token": "kft_..."} or Authorization: Bearer)',
                "missing_token",
            )
        grant = _verify(runtime, body.token)
        if isinstance(grant, JSONResponse):
            return grant
    elif body.token and body.token != header_token:
        return _unauthorized(
            runtime, "the Authorization header and the body carry different tokens", "two_tokens"
        )
    if len(body.events) > MAX_EVENTS:
        metrics.events_rejected.labels("unknown", "too_large").inc(len(body.events))
        return error_response(
            413, "too_large", f"{len(body.events)} events in one request; at most {MAX_EVENTS}"
        )
    if refusal := _out_of_scope(runtime, body.events, grant):
        return refusal
    encoded = json.dumps(body.events).encode()
    try:
        events = decode_json_array(encoded)
    except InvalidEvents as exc:
        return refuse_invalid(metrics, encoded, exc.errors)
    return await store_events(runtime, events, grant.project)


def _out_of_scope(runtime: Runtime, events: list[Any], grant: FeedbackGrant) -> Response | None:
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
        return None
    kinds = Counter(
        e["type"] if isinstance(e, dict) and e.get("type") in EVENT_TYPES else "unknown"
        for e in events
    )
    for kind, count in kinds.items():
        runtime.metrics.events_rejected.labels(kind, "forbidden").inc(count)
    return error_response(
        403,
        "forbidden",
        f"{len({p['index'] for p in problems})} event(s) are outside what the feedback token "
        "allows; nothing of this request was stored",
        errors=problems,
    )


# ---- the snippet ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def _snippet() -> tuple[str, str]:
    text = (resources.files("kept_service") / "static" / "sdk.js").read_text("utf-8")
    return text, '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


@router.get("/sdk.js", include_in_schema=False)
async def sdk_js(request: Request) -> Response:
    """The browser snippet; `<script src="https://kept.example/sdk.js">` defines `kept`."""
    text, etag = _snippet()
    # Public code: any page may load it, also with `crossorigin` and integrity checks.
    headers = {
        "Cache-Control": "public, max-age=3600",
        "ETag": etag,
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(text, media_type="application/javascript", headers=headers)
