"""Around the whole app: request metrics for every route, observed once, and the
security headers of every answer.

Pure ASGI middlewares: BaseHTTPMiddleware would wrap each request in extra tasks and
streams, a cost the intake would pay on every request. Requests are labelled by the
route's template (`/v1/panels/{panel_id}`), never the raw path, so that a client cannot
grow the metrics without bound; requests no route matches share `unmatched`.
"""

from __future__ import annotations

import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kept_ingest.metrics import IngestMetrics
from kept_service.runtime import Runtime

UNMATCHED = "unmatched"


def route_label(scope: Scope) -> str:
    """The template of the route that handled the request (FastAPI puts it in scope)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestMetrics:
    """Counts requests (`kept_http_requests_total{route,status}`) and observes their
    duration up to the last byte sent (`kept_http_request_duration_seconds{route}`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before answering

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            metrics = _metrics(scope)
            if metrics is not None:
                route = route_label(scope)
                metrics.requests.labels(route, str(status)).inc()
                metrics.request_latency.labels(route).observe(time.perf_counter() - started)


def _metrics(scope: Scope) -> IngestMetrics | None:
    """The running app's metrics (none before the runtime opened)."""
    runtime: Runtime | None = getattr(scope["app"].state, "runtime", None)
    return runtime.metrics if runtime is not None else None


SECURITY_HEADERS = {
    # The page loads its script and style from this server only and runs no inline
    # script; nothing may frame it (clickjacking) or guess content types.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every answer (harmless on JSON, needed on the page)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, secured)
