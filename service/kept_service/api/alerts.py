"""`GET /v1/alerts`: the alerts active now and the transitions of a window (admin token).

What the analytics lease holder recorded in `alert_events`; any replica answers the same.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from kept_analytics.alerts.state import ACTIVE, current, history
from kept_service.api import openapi
from kept_service.api.auth import AdminDep
from kept_service.api.errors import ApiError
from kept_storage import Store
from kept_wire.timespec import parse_instant

router = APIRouter(tags=["alerts"])


def _alerts(store: Store, since: datetime, until: datetime) -> dict[str, Any]:
    active = [a.as_dict() for a in current(store).values() if a.state in ACTIVE]
    active.sort(key=lambda a: (a["state"] != "firing", a["rule"], a["fingerprint"]))
    return {
        "current": active,
        "history": [a.as_dict() for a in history(store, since, until)],
        "since": since.isoformat(),
        "until": until.isoformat(),
    }


@router.get("/v1/alerts", responses=openapi.refusals(401, 422))
async def alerts(
    runtime: AdminDep,
    since: Annotated[str, Query(description="start of the history: 7d (ago), ISO 8601")] = "7d",
    until: Annotated[str, Query(description="end of the history: now, 1h (ago), ISO 8601")] = "now",
) -> JSONResponse:
    """Alerts pending or firing now (`current`), and every transition between `since` and
    `until` (`history`: pending, firing, resolved, inactive), with their evidence."""
    now = datetime.now(timezone.utc)
    try:
        start, end = parse_instant(since, now), parse_instant(until, now)
    except ValueError as exc:
        raise ApiError(422, "invalid_query", str(exc)) from None
    return JSONResponse(await run_in_threadpool(_alerts, runtime.store, start, end))
