"""The FastAPI application: routes plus a lifespan that owns the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from kept_service.api import admin, events, export, feedback, health, panels, report
from kept_service.runtime import Runtime, close_runtime, open_runtime
from kept_service.settings import ServerSettings
from kept_storage.datadir import DataDir


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

    app = FastAPI(title="kept", version="0.1.0", lifespan=lifespan, docs_url="/docs")
    app.include_router(events.router)
    app.include_router(feedback.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(report.router)
    app.include_router(export.router)
    app.include_router(panels.router)

    return app
