"""The FastAPI application: routes plus a lifespan that owns the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from kept.ingest.api import admin, events, health
from kept.ingest.datadir import DataDir
from kept.ingest.runtime import Runtime, close_runtime, open_runtime
from kept.ingest.settings import ServerSettings

_INDEX = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kept</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:.1rem .3rem}</style></head><body>
<h1>kept is running</h1>
<p>Send events to <code>POST /v1/events</code> with a project key, or run <code>kept demo</code>.
Service health: <a href="/readyz">/readyz</a>, <a href="/metrics">/metrics</a>.</p>
</body></html>"""


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
    app.include_router(health.router)
    app.include_router(admin.router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return _INDEX

    return app
