"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from kept_service.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    status: str
    """`ready` or `not_ready`."""
    checks: dict[str, bool]
    """`store` (answers), `inserts` (the latest insert batches succeeded), `writer` and,
    with Kafka, `consumer`."""


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: a check failed"}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready to accept events: the writer runs, the store answers and takes inserts."""
    store_ok = await run_in_threadpool(runtime.store.ping)
    checks = {
        "store": store_ok,
        "inserts": runtime.inserts.healthy(),
        "writer": runtime.writer.alive,
    }
    if runtime.consumer is not None:
        checks["consumer"] = runtime.consumer.alive
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
    )


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
