"""Reports over HTTP: `GET /v1/report`, `GET /v1/compare`, and running the job on demand.

A project key sees its own project only; the admin token (the CLI through a running
server) may name any project or none (all projects).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from kept.analytics.compare import compare_groups
from kept.analytics.params import InvalidQuery, Params, spec_from_params
from kept.analytics.report import ReportSpec, report
from kept.ingest.api.deps import RuntimeDep, bearer_token, error_response, is_admin
from kept.ingest.runtime import Runtime

router = APIRouter()


def _params(request: Request, drop: tuple[str, ...] = ()) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key not in drop:
            params.setdefault(key, []).append(value)
    return params


def _spec(request: Request, runtime: Runtime, params: Params) -> ReportSpec | Response:
    """The caller's spec, or the error response to send instead."""
    settings = runtime.settings
    admin = is_admin(request, runtime)
    token = bearer_token(request)
    own = None if admin or token is None else runtime.keys.project_for(token)
    if not admin and own is None:
        return error_response(401, "unauthorized", "a project key or the admin token is required")
    try:
        spec = spec_from_params(
            params, threshold=settings.kept_threshold, checkpoints=settings.survival_checkpoints
        )
    except InvalidQuery as exc:
        return error_response(422, "invalid_query", str(exc))
    if own is not None:
        if spec.project not in (None, own):
            return error_response(403, "forbidden", f"this key reads project {own!r} only")
        spec = spec.model_copy(update={"project": own})
    return spec


@router.get("/v1/report")
async def get_report(request: Request, runtime: RuntimeDep) -> Response:
    """Every metric of the contract per group; see `kept report --help` for parameters."""
    spec = _spec(request, runtime, _params(request))
    if isinstance(spec, Response):
        return spec
    groups = await run_in_threadpool(report, runtime.store, spec)
    return JSONResponse(groups)


@router.get("/v1/compare")
async def get_compare(request: Request, runtime: RuntimeDep) -> Response:
    """`?by=prompt_version&a=summarize@1&b=summarize@2`: B against A with 95% intervals."""
    params = _params(request, drop=("a", "b"))
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
