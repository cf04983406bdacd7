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
from kept_dashboards.macros import Window
from kept_service.api import openapi
from kept_service.api.auth import PageReaderDep
from kept_service.api.deps import RuntimeDep
from kept_service.api.errors import ApiError

router = APIRouter(tags=["dashboard"])

_ASSETS = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"}
# Without a token the page's data is readable from the loopback interface only: no
# credential is required by the document ({}), and others get 401.
_PAGE_DATA = openapi.window_query() | {"security": [{}]}
_REFUSALS = openapi.refusals(
    401,
    404,
    422,
    e401="`unauthorized`: no valid key or token, and not on the loopback interface",
    e422="`invalid_query`: a time or variable the page cannot use",
)


def _asset(name: str) -> str:
    return (resources.files("kept_dashboards") / "static" / name).read_text("utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    """The live dashboard page (static; its data comes from the endpoints below)."""
    return HTMLResponse(_asset("index.html"), headers={"Cache-Control": "no-cache"})


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    if name not in _ASSETS:
        raise ApiError(404, "not_found", "no such asset")
    return Response(_asset(name), media_type=_ASSETS[name], headers={"Cache-Control": "no-cache"})


@router.get("/v1/dashboard")
async def dashboard() -> JSONResponse:
    """The page's layout: rows, panels (titles, units, thresholds) and variables."""
    return JSONResponse(live.page_spec())


def _window(request: Request, project: str | None) -> Window:
    try:
        return live.window(dict(request.query_params), project)
    except live.BadWindow as exc:
        raise ApiError(422, "invalid_query", str(exc)) from None


_PANEL_REFUSALS = _REFUSALS | openapi.refusals(
    403, e403="`forbidden`: a service health panel asked for with a project key"
)


@router.get("/v1/panels/{panel_id}", openapi_extra=_PAGE_DATA, responses=_PANEL_REFUSALS)
async def panel(
    panel_id: str, request: Request, runtime: RuntimeDep, who: PageReaderDep
) -> JSONResponse:
    """One panel's data: `?from=now-24h&to=now&project=&model=&prompt_version=`."""
    spec = catalog.panel(panel_id)
    if spec is None:
        raise ApiError(404, "not_found", f"no panel {panel_id!r}")
    if spec.source == "prometheus" and who.project is not None:
        # Service health counts every project's traffic: not one project's to read.
        raise ApiError(403, "forbidden", "service health panels need the admin token")
    win = _window(request, who.project)
    registry = runtime.metrics.registry
    data = await run_in_threadpool(live.panel_data, runtime.store, registry, spec, win)
    return JSONResponse(data)


@router.get("/v1/variables/{name}", openapi_extra=_PAGE_DATA, responses=_REFUSALS)
async def variable(
    name: str, request: Request, runtime: RuntimeDep, who: PageReaderDep
) -> JSONResponse:
    """The values a filter offers in the time range."""
    spec = catalog.variable(name)
    if spec is None:
        raise ApiError(404, "not_found", f"no variable {name!r}")
    win = _window(request, who.project)
    values = await run_in_threadpool(live.variable_values, runtime.store, spec, win)
    return JSONResponse({"name": name, "values": values})
