"""Shared request dependencies and the error body every route uses."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from kept.ingest.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def error_response(
    status: int, error: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """`{"error": code, "message": text, ...}`: one shape for every refusal."""
    return JSONResponse({"error": error, "message": message, **extra}, status, headers=headers)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_admin(request: Request, runtime: Runtime) -> bool:
    token = bearer_token(request)
    return token is not None and hmac.compare_digest(token, runtime.admin_token)
