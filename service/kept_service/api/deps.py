"""Shared request dependencies and the error body every route uses."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from kept_service.runtime import Runtime


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


@dataclass(frozen=True)
class Reader:
    """Who reads data: the admin token (any project) or a project key (`project` only)."""

    project: str | None


def reader(request: Request, runtime: Runtime) -> Reader | None:
    """The caller as a reader, or None when it shows neither a valid key nor the token."""
    if is_admin(request, runtime):
        return Reader(project=None)
    token = bearer_token(request)
    own = runtime.keys.project_for(token) if token is not None else None
    return Reader(project=own) if own is not None else None


Scoped = TypeVar("Scoped", bound=BaseModel)


def scope(spec: Scoped, who: Reader) -> Scoped | JSONResponse:
    """`spec` limited to the reader's project (a project key asking for another: 403)."""
    if who.project is None:
        return spec
    if getattr(spec, "project", None) not in (None, who.project):
        return error_response(403, "forbidden", f"this key reads project {who.project!r} only")
    return spec.model_copy(update={"project": who.project})


def query_params(request: Request, drop: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Query parameters as lists (repeated names keep every value)."""
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key not in drop:
            params.setdefault(key, []).append(value)
    return params
