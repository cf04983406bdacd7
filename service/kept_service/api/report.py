"""Reports over HTTP: `GET /v1/report`, `GET /v1/compare`, and running the job on demand.

A project key sees its own project only; the admin token (the CLI through a running
server) may name any project or none (all projects). The query strings go through the
CLI's parser (`kept_analytics.params`), so both accept the same inputs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from kept_analytics.compare import CompareResult, compare_groups
from kept_analytics.params import InvalidQuery, Params, compare_options, spec_from_params
from kept_analytics.report import ReportSpec, report
from kept_analytics.runner import AnalyticsBusy, analytics_status
from kept_service.api import openapi
from kept_service.api.auth import AdminDep, Reader, ReaderDep, scope
from kept_service.api.deps import RuntimeDep, query_params
from kept_service.api.errors import ApiError
from kept_service.runtime import Runtime

router = APIRouter(tags=["analytics"])
_INVALID_QUERY = "`invalid_query`: a parameter is unknown or wrong; `message` says which"


def _spec(runtime: Runtime, who: Reader, params: Params) -> ReportSpec:
    """The caller's spec, limited to what the caller may read."""
    settings = runtime.settings
    try:
        spec = spec_from_params(
            params, threshold=settings.kept_threshold, checkpoints=settings.survival_checkpoints
        )
    except InvalidQuery as exc:
        raise ApiError(422, "invalid_query", str(exc)) from None
    return scope(spec, who)


@router.get(
    "/v1/report",
    description=f"Every metric of the contract per group.{openapi.METADATA_NOTE}",
    openapi_extra=openapi.report_query(),
    responses=openapi.refusals(401, 403, 422, e422=_INVALID_QUERY),
)
async def get_report(request: Request, runtime: RuntimeDep, who: ReaderDep) -> JSONResponse:
    """Every metric of the contract per group; see `kept report --help` for parameters."""
    spec = _spec(runtime, who, query_params(request))
    groups = await run_in_threadpool(report, runtime.store, spec)
    return JSONResponse(groups)


@router.get(
    "/v1/compare",
    response_model=CompareResult,
    description=(
        "B against A with intervals and a verdict per metric: fixed-horizon (1 - `alpha`) "
        "intervals (one look), or with `sequential=true` always-valid confidence sequences "
        f"(any number of looks; `alpha` over all the metrics together).{openapi.METADATA_NOTE}"
    ),
    openapi_extra=openapi.compare_query(),
    responses=openapi.refusals(401, 403, 422, e422=_INVALID_QUERY),
)
async def get_compare(request: Request, runtime: RuntimeDep, who: ReaderDep) -> JSONResponse:
    """`?by=prompt_version&a=summarize@1&b=summarize@2[&sequential=true&alpha=0.05]`."""
    params = query_params(request, drop=("a", "b"))
    key = (params.pop("by", None) or ["prompt_version"])[-1]
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if not a or not b:
        raise ApiError(422, "invalid_query", "give the two values to compare as a= and b=")
    try:
        options, rest = compare_options(params)
    except InvalidQuery as exc:
        raise ApiError(422, "invalid_query", str(exc)) from None
    spec = _spec(runtime, who, rest)
    try:
        result = await run_in_threadpool(
            compare_groups,
            runtime.store,
            spec,
            key,
            a,
            b,
            sequential=options.sequential,
            alpha=options.alpha,
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_query", str(exc)) from None
    return JSONResponse(result.model_dump())


@router.post(
    "/v1/admin/analytics/run",
    tags=["admin"],
    responses=openapi.refusals(401, 409, 422),
)
async def run_analytics(runtime: AdminDep, full: bool = False) -> JSONResponse:
    """Fold new events into outcomes now (`full=true` rebuilds them from scratch).

    When another process holds the analytics lease, waits for its next run instead
    (`generations` is then null) and refuses a rebuild."""
    try:
        result = await run_in_threadpool(runtime.analytics.run_now, full)
    except AnalyticsBusy as exc:
        raise ApiError(409, "analytics_busy", str(exc)) from None
    if result is None:
        return JSONResponse(
            analytics_status(runtime.analytics.lease, runtime.analytics.job) | {"generations": None}
        )
    body: dict[str, Any] = {
        "generations": result.generations,
        "days": result.days,
        "until": result.until.isoformat(),
        "seconds": round(result.seconds, 3),
    }
    return JSONResponse(body)


@router.get("/v1/admin/analytics/status", tags=["admin"], responses=openapi.refusals(401))
async def analytics_state(runtime: AdminDep) -> JSONResponse:
    """Who holds the analytics lease, and how far the outcomes have folded."""
    return JSONResponse(
        await run_in_threadpool(analytics_status, runtime.analytics.lease, runtime.analytics.job)
    )
