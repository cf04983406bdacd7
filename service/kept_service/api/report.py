"""Reports over HTTP: `GET /v1/report`, `GET /v1/compare`, and running the job on demand.

A project key sees its own project only; the admin token (the CLI through a running
server) may name any project or none (all projects).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from kept_analytics.compare import compare_groups
from kept_analytics.params import InvalidQuery, Params, spec_from_params
from kept_analytics.report import ReportSpec, report
from kept_service.api.deps import (
    RuntimeDep,
    error_response,
    is_admin,
    query_params,
    reader,
    scope,
)
from kept_service.runtime import Runtime

router = APIRouter()


def _spec(request: Request, runtime: Runtime, params: Params) -> ReportSpec | Response:
    """The caller's spec, or the error response to send instead."""
    who = reader(request, runtime)
    if who is None:
        return error_response(401, "unauthorized", "a project key or the admin token is required")
    settings = runtime.settings
    try:
        spec = spec_from_params(
            params, threshold=settings.kept_threshold, checkpoints=settings.survival_checkpoints
        )
    except InvalidQuery as exc:
        return error_response(422, "invalid_query", str(exc))
    return scope(spec, who)


@router.get("/v1/report")
async def get_report(request: Request, runtime: RuntimeDep) -> Response:
    """Every metric of the contract per group; see `kept report --help` for parameters."""
    spec = _spec(request, runtime, query_params(request))
    if isinstance(spec, Response):
        return spec
    groups = await run_in_threadpool(report, runtime.store, spec)
    return JSONResponse(groups)


@router.get("/v1/compare")
async def get_compare(request: Request, runtime: RuntimeDep) -> Response:
    """`?by=prompt_version&a=summarize@1&b=summarize@2`: B against A with 95% intervals."""
    params = query_params(request, drop=("a", "b"))
    key = (params.pop("by", None) or ["prompt_version"])[-1]
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if not a or not b:
        return error_response(422, "invalid_query", "give the two values to compare as a= and b=")
    spec = _spec(request, runtime, params)
    if isinstance(spec, Response):
        return spec
    try:
        result = await run_in_threadpool(compare_groups, runtime.store, spec, key, a, b)
    except ValueError as exc:
        return error_response(422, "invalid_query", str(exc))
    return JSONResponse(result.model_dump())


@router.post("/v1/admin/analytics/run")
async def run_analytics(request: Request, runtime: RuntimeDep, full: bool = False) -> Response:
    """Fold new events into outcomes now (`full=true` rebuilds them from scratch)."""
    if not is_admin(request, runtime):
        return error_response(401, "unauthorized", "admin token required")
    result = await run_in_threadpool(runtime.analytics.run_now, full)
    body: dict[str, Any] = {
        "generations": result.generations,
        "days": result.days,
        "until": result.until.isoformat(),
        "seconds": round(result.seconds, 3),
    }
    return JSONResponse(body)
