"""Shared request dependencies: the runtime, and query parameters as routes parse them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kept_service.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def query_params(request: Request, drop: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Query parameters as lists (repeated names keep every value)."""
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key not in drop:
            params.setdefault(key, []).append(value)
    return params
