"""The FastAPI application: routes, error handlers, request metrics, and a lifespan that
owns the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from kept_service.api import (
    admin,
    alerts,
    events,
    export,
    feedback,
    health,
    openapi,
    otlp,
    panels,
    report,
    snippet,
    tokens,
)
from kept_service.api.errors import HANDLERS
from kept_service.api.middleware import RequestMetrics, SecurityHeaders
from kept_service.runtime import Runtime, close_runtime, open_runtime
from kept_service.runtime.settings import ServerSettings
from kept_storage.datadir import DataDir

_DESCRIPTION = """Feedback capture for LLM apps: events in, reports and training data out.

Every refusal has the body `{"error": code, "message": text}`, some with `errors` (a
list of `{index, field, message}`) or `reason`; the codes are listed in the README
("HTTP intake")."""


class KeptAPI(FastAPI):
    """FastAPI with the schemas of hand-declared request bodies in its OpenAPI document."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            document = super().openapi()
            for schemas in (events.SCHEMAS, tokens.SCHEMAS, feedback.SCHEMAS, otlp.SCHEMAS):
                openapi.add_components(document, schemas)
            self.openapi_schema = document
        return self.openapi_schema


def create_app(
    settings: ServerSettings,
    data_dir: DataDir | None = None,
    on_ready: Callable[[Runtime], None] | None = None,
) -> FastAPI:
    """Build the app; the store opens when the app starts, not here."""
    directory = data_dir or DataDir(settings.data)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await run_in_threadpool(open_runtime, settings, directory)
        app.state.runtime = runtime
        if on_ready is not None:
            on_ready(runtime)
        try:
            yield
        finally:
            await run_in_threadpool(close_runtime, runtime)

    app = KeptAPI(
        title="kept",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
        # Swagger UI and ReDoc load from a CDN and run inline script: not offline, not
        # under the CSP. /openapi.json stays (open, as the routes are public anyway).
        docs_url=None,
        redoc_url=None,
        exception_handlers=HANDLERS,
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics)
    modules = (
        events, otlp, tokens, feedback, snippet, health, admin, report, export, panels, alerts,
    )  # fmt: skip
    for module in modules:
        app.include_router(module.router)
    return app
