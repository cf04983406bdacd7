"""One error body for every refusal: `{"error": code, "message": text, ...extra}`.

Routes and auth dependencies raise `ApiError`; FastAPI's own refusals (request
validation, unknown routes, wrong methods) and unexpected failures get the same shape
from the handlers here, so a client reads every error the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

MAX_DETAILS = 20
"""Validation problems listed in one answer: enough to fix a request, bounded for a fuzzer."""

_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})
_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 413: "too_large"}


class ErrorDetail(BaseModel):
    """One problem of a request: `index` is the event's position where events are sent."""

    index: int | None = None
    field: str | None = None
    """A dotted path such as `input.0.content`, or a parameter's name."""
    message: str


class ErrorBody(BaseModel):
    """The body of every refusal; some codes add fields (`errors`, `reason`)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(examples=["unauthorized", "too_large", "invalid_events", "overloaded"])
    """A stable machine code (README, "HTTP intake")."""
    message: str
    """What went wrong, for people."""
    errors: list[ErrorDetail] = Field(default_factory=list)
    """Present on `invalid_events`, `invalid_request` and scope refusals (403)."""
    reason: str | None = None
    """Present on feedback-token refusals: `expired_token`, `bad_signature`, ..."""


class ApiError(Exception):
    """A refusal, answered with `status`, `headers` and the error body."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra


def error_response(
    status: int, error: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """`{"error": code, "message": text, ...}`: one shape for every refusal."""
    body = {"error": error, "message": message, **extra}
    return JSONResponse(body, status, headers=dict(headers) if headers else None)


def refusal_headers(request: Request) -> dict[str, str]:
    """Headers that every answer to this request carries, refusals included."""
    headers: dict[str, str] = getattr(request.state, "refusal_headers", {})
    return headers


def set_refusal_headers(request: Request, headers: Mapping[str, str]) -> None:
    """Make refusals of this request carry `headers` (CORS on `/v1/feedback`)."""
    request.state.refusal_headers = dict(headers)


async def _api_error(request: Request, exc: ApiError) -> Response:
    headers = {**refusal_headers(request), **exc.headers}
    return error_response(exc.status, exc.error, exc.message, headers, **exc.extra)


def validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's validation errors as `{field, message}`, at most MAX_DETAILS of them.

    The offending input is not echoed: it may be large, and the client has it.
    """
    details = []
    for err in errors[:MAX_DETAILS]:
        loc = [str(part) for part in err.get("loc", ())]
        if loc and loc[0] in _LOCATIONS:
            loc = loc[1:]
        details.append({"field": ".".join(loc) or None, "message": str(err.get("msg", ""))})
    return details


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    problems = exc.errors()
    shown = "" if len(problems) <= MAX_DETAILS else f" (the first {MAX_DETAILS} listed)"
    message = f"{len(problems)} problem(s) with the request{shown}"
    errors = validation_details(problems)
    return error_response(422, "invalid_request", message, refusal_headers(request), errors=errors)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's and FastAPI's own refusals: unknown route (404), wrong method (405)."""
    status = exc.status_code
    if status in (204, 304):
        return Response(status_code=status, headers=exc.headers)
    phrase = HTTPStatus(status).phrase
    code = _CODES.get(status) or phrase.lower().replace(" ", "_").replace("-", "_")
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    message = f"{detail}: {request.method} {request.url.path}" if detail == phrase else detail
    headers = {**refusal_headers(request), **(exc.headers or {})}
    return error_response(status, code, message, headers)


async def _internal(request: Request, exc: Exception) -> Response:
    # The exception itself is logged by the server; its text may hold internals.
    return error_response(500, "internal", "the server failed to answer this request")


Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

HANDLERS: dict[int | type[Exception], Handler] = {
    ApiError: _api_error,
    RequestValidationError: _invalid_request,
    HTTPException: _http_error,
    Exception: _internal,
}
"""Exception handlers for `FastAPI(exception_handlers=...)`."""
