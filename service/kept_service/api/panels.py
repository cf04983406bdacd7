"""The built-in live page and its data: `/`, `/static/*`, `/v1/dashboard`,
`/v1/panels/{id}` and `/v1/variables/{name}`.

Who may read: the admin token (any project), a project key (its own project only), or,
without a token, a client on the loopback interface, so that `kept serve` on a laptop
shows its dashboard with no set-up. Anyone else gets 401. Behind a reverse proxy on the
same host every client looks local: put authentication in the proxy.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from kept_dashboards import catalog, live
from kept_service.api.deps import RuntimeDep, bearer_token, error_response, reader
from kept_service.runtime import Runtime

router = APIRouter()

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_ASSETS = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"}
_UNAUTHORIZED = "a project key or the admin token is required (or open the page on localhost)"


def _asset(name: str) -> str:
    return (resources.files("kept_dashboards") / "static" / name).read_text("utf-8")


def _reader(request: Request, runtime: Runtime) -> tuple[bool, str | None]:
    """(allowed, the project the caller is limited to): a reader, or a keyless local user."""
    who = reader(request, runtime)
    if who is not None:
        return True, who.project
    if bearer_token(request) is not None:
        return False, None
    host = request.client.host if request.client else ""
    return host in _LOOPBACK, None


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    """The live dashboard page (static; its data comes from the endpoints below)."""
    return HTMLResponse(_asset("index.html"), headers={"Cache-Control": "no-cache"})


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    if name not in _ASSETS:
        return error_response(404, "not_found", "no such asset")
    return Response(_asset(name), media_type=_ASSETS[name], headers={"Cache-Control": "no-cache"})


@router.get("/v1/dashboard")
async def dashboard() -> JSONResponse:
    """The page's layout: rows, panels (titles, units, thresholds) and variables."""
    return JSONResponse(live.page_spec())


@router.get("/v1/panels/{panel_id}")
async def panel(panel_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """One panel's data: `?from=now-24h&to=now&project=&model=&prompt_version=`."""
    allowed, project = _reader(request, runtime)
    if not allowed:
        return error_response(401, "unauthorized", _UNAUTHORIZED)
    spec = catalog.panel(panel_id)
    if spec is None:
        return error_response(404, "not_found", f"no panel {panel_id!r}")
    try:
        win = live.window(dict(request.query_params), project)
    except live.BadWindow as exc:
        return error_response(422, "invalid_query", str(exc))
    registry = runtime.metrics.registry
    data = await run_in_threadpool(live.panel_data, runtime.store, registry, spec, win)
    return JSONResponse(data)


@router.get("/v1/variables/{name}")
async def variable(name: str, request: Request, runtime: RuntimeDep) -> Response:
    """The values a filter offers in the time range."""
    allowed, project = _reader(request, runtime)
    if not allowed:
        return error_response(401, "unauthorized", _UNAUTHORIZED)
    spec = catalog.variable(name)
    if spec is None:
        return error_response(404, "not_found", f"no variable {name!r}")
    try:
        win = live.window(dict(request.query_params), project)
    except live.BadWindow as exc:
        return error_response(422, "invalid_query", str(exc))
    values = await run_in_threadpool(live.variable_values, runtime.store, spec, win)
    return JSONResponse({"name": name, "values": values})
