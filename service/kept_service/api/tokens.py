"""`POST /v1/feedback-tokens`: an app's server mints a feedback token for a generation.

The token lets a web page send feedback on that one generation without the project key
(see feedback.py and `kept_ingest.feedback_tokens`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kept_ingest.contract import Id
from kept_ingest.decode import EventError, InvalidEvents
from kept_ingest.feedback_tokens import TokenTooLong, mint_token
from kept_ingest.jsonshape import (
    DuplicateKey,
    ShapeError,
    TooManyValues,
    check_duplicates,
    check_shape,
)
from kept_service.api import openapi
from kept_service.api.auth import KeyProject
from kept_service.api.bodies import BodyTooLarge, inflate, read_raw
from kept_service.api.deps import RuntimeDep
from kept_service.api.errors import ApiError

router = APIRouter(tags=["feedback"])
TOKENS_ROUTE = "/v1/feedback-tokens"
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


SCHEMAS = openapi.model_schemas(TokenRequest)
"""Components the hand-written body declaration refers to."""


def invalid(message: str, errors: list[dict[str, Any]]) -> ApiError:
    """A body that is not what the route takes: `invalid_events`, as the intake says."""
    return ApiError(422, "invalid_events", message, errors=errors)


def envelope_errors(exc: ValidationError, limit: int) -> list[dict[str, Any]]:
    """A request object's first `limit` validation errors (not an event's: no index)."""
    return [
        {
            "index": None,
            "field": ".".join(str(p) for p in err["loc"]) or None,
            "message": str(err["msg"]),
        }
        for err in exc.errors(include_url=False, include_input=False)[:limit]
    ]


def body_error(message: str, field: str | None = None, index: int | None = None) -> InvalidEvents:
    """A body that breaks the rules of every body (depth, repeated keys)."""
    return InvalidEvents([EventError(index, field or None, message)])


def _token_request(raw: bytes, encoding: str | None, max_depth: int) -> TokenRequest:
    # At most 16 KiB: cheap enough for the event loop.
    text = inflate(raw, encoding, _MAX_TOKEN_REQUEST_BYTES) or b"null"
    try:
        check_shape(text, max_depth)
        request = TokenRequest.model_validate_json(text)
        check_duplicates(text)
    except (ShapeError, TooManyValues) as exc:
        raise body_error(str(exc)) from None
    except DuplicateKey as exc:
        raise body_error(str(exc), ".".join(str(p) for p in exc.path)) from None
    return request


@router.post(
    TOKENS_ROUTE,
    status_code=201,
    openapi_extra=openapi.json_body("TokenRequest"),
    responses=openapi.refusals(
        401,
        413,
        422,
        e401="`unauthorized`: missing or invalid project key (the admin token is not one)",
        e422="`invalid_events`: the body is not a token request, or `ttl_s` is over the limit",
    ),
)
async def create_feedback_token(
    request: Request, response: Response, runtime: RuntimeDep, project: KeyProject
) -> TokenResponse:
    """Mint a feedback token for one generation of the key's project (server to server)."""
    settings = runtime.settings
    try:
        raw = await read_raw(request, _MAX_TOKEN_REQUEST_BYTES)
        encoding = request.headers.get("content-encoding")
        body = _token_request(raw, encoding, settings.max_json_depth)
    except BodyTooLarge:
        raise ApiError(413, "too_large", "a token request is a small JSON object") from None
    except InvalidEvents as exc:
        raise invalid(str(exc.errors[0].message), [e.as_dict() for e in exc.errors]) from None
    except ValidationError as exc:
        errors = envelope_errors(exc, settings.max_errors)
        raise invalid("invalid token request", errors) from None
    ttl = body.ttl_s if body.ttl_s is not None else settings.feedback_token_ttl_s
    if ttl > settings.feedback_token_max_ttl_s:
        message = f"ttl_s is at most {settings.feedback_token_max_ttl_s}"
        raise invalid(message, [{"index": None, "field": "ttl_s", "message": message}])
    try:
        token, grant = mint_token(runtime.feedback_secret, project, body.generation_id, ttl)
    except TokenTooLong as exc:
        field = {"index": None, "field": "generation_id", "message": str(exc)}
        raise invalid(str(exc), [field]) from None
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(
        token=token, generation_id=grant.generation_id, expires_at=grant.expires_at_rfc3339
    )
