"""The built-in live page and its data: `/`, `/static/*`, `/v1/dashboard`,
`/v1/panels/{id}` and `/v1/variables/{name}`. The `rollouts` panel has no SQL of its own:
its rows come from the analytics layer (`kept_analytics.rollouts`).

Who may read: the admin token (any project), a project key (its own project only), or,
without a token, a client on the loopback interface, so that `kept serve` on a laptop
shows its dashboard with no set-up. Anyone else gets 401. Behind a reverse proxy on the
same host every client looks local: put authentication in the proxy.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from kept_analytics.alerts.state import ACTIVE, current, history
from kept_analytics.report import ReportSpec
from kept_analytics.rollouts import Rollout, rollouts
from kept_dashboards import catalog, live
from kept_dashboards.macros import Window
from kept_dashboards.spec import ALL
from kept_service.api import openapi
from kept_service.api.auth import PageReaderDep
from kept_service.api.deps import RuntimeDep
from kept_service.api.errors import ApiError
from kept_service.runtime import Runtime

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


def _report_spec(runtime: Runtime, win: Window) -> ReportSpec:
    """The page's window and filters as a report spec (the rollup's whole hours)."""

    def chosen(name: str) -> tuple[str, ...]:
        value = win.values.get(name, ALL)
        return () if value == ALL else (value,)

    settings = runtime.settings
    project = chosen("project")
    return ReportSpec(
        since=win.start,
        until=win.end,
        project=project[0] if project else None,
        models=chosen("model"),
        prompt_versions=chosen("prompt_version"),
        threshold=settings.kept_threshold,
        checkpoints=settings.survival_checkpoints,
    )


def _rollout_row(rollout: Rollout) -> list[Any]:
    e = rollout.evidence
    row = {
        "key": rollout.key,
        "candidate": rollout.candidate,
        "baseline": rollout.baseline,
        "verdict": rollout.verdict,
        "metric": e.metric,
        "better": e.better,
        "difference": e.difference,
        "low": e.ci_low,
        "high": e.ci_high,
        "n": e.b_n,
        "baseline_n": e.a_n,
    }
    return [row[column] for column in live.ROLLOUT_COLUMNS]


_ALERT_ROWS = 100
"""The alerts panel lists at most this many (active ones first)."""


def _alerts_panel(runtime: Runtime, win: Window) -> dict[str, Any]:
    """Active alerts, then the range's transitions newest first; a project key sees only
    alerts about its project."""
    active = [a for a in current(runtime.store).values() if a.state in ACTIVE]
    past = sorted(history(runtime.store, win.start, win.end), key=lambda a: a.at, reverse=True)
    rows = []
    mine = [a for a in [*active, *past] if win.tenant in (None, a.labels.get("project"))]
    for alert in mine[:_ALERT_ROWS]:
        group = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())) or "all"
        rows.append([alert.at.isoformat(timespec="seconds"), alert.state, alert.severity,
                     alert.rule, group, alert.summary])  # fmt: skip
    return {"columns": list(live.ALERT_COLUMNS), "rows": rows}


def _rollouts_panel(runtime: Runtime, win: Window) -> dict[str, Any]:
    found = rollouts(runtime.store, _report_spec(runtime, win))
    return {"columns": list(live.ROLLOUT_COLUMNS), "rows": [_rollout_row(r) for r in found]}


@router.get("/v1/panels/{panel_id}", openapi_extra=_PAGE_DATA, responses=_PANEL_REFUSALS)
async def panel(
    panel_id: str, request: Request, runtime: RuntimeDep, who: PageReaderDep
) -> JSONResponse:
    """One panel's data: `?from=now-24h&to=now&project=&model=&prompt_version=`; the
    `rollouts` panel: each prompt version and model against its baseline."""
    if panel_id in (live.ROLLOUTS_ID, live.ALERTS_ID):
        win = _window(request, who.project)
        build = _rollouts_panel if panel_id == live.ROLLOUTS_ID else _alerts_panel
        return JSONResponse(await run_in_threadpool(build, runtime, win))
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
