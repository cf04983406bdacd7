"""`POST /v1/events`: validate, then answer 202 only once the events are durable."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from operator import attrgetter
from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from kept_ingest.decode import (
    DecodeLimits,
    EventError,
    InvalidEvents,
    TooManyEvents,
    decode_body,
)
from kept_ingest.fast_contract import AnyEvent
from kept_ingest.metrics import IngestMetrics
from kept_ingest.sink import SinkUnavailable
from kept_ingest.writer import Overloaded, WriterStopped
from kept_service.api import openapi
from kept_service.api.auth import IntakeProject
from kept_service.api.bodies import BodyTooLarge, inflate, off_loop, read_raw
from kept_service.api.deps import RuntimeDep
from kept_service.api.errors import ApiError
from kept_service.runtime import Runtime
from kept_service.runtime.settings import ServerSettings
from kept_storage import StorageError
from kept_wire.contract import SPOOL_BYTES_HEADER

router = APIRouter(tags=["intake"])
ROUTE = "/v1/events"
SCHEMAS = openapi.event_schemas()
"""Components the hand-written body declaration refers to."""
_TYPE = attrgetter("type")
_MAX_SPOOL_DIGITS = 18
"""Longer spool reports are ignored (an exabyte of spool is no report worth a metric)."""

SpoolReport = Annotated[
    str | None,
    Header(
        alias=SPOOL_BYTES_HEADER,
        description="Bytes of events waiting in the sending client's disk spool (the SDK "
        "sends it while its spool holds events); shown per project in "
        "`kept_client_spool_bytes`. A malformed value is ignored, never refused.",
    ),
]


def decode_limits(settings: ServerSettings, max_events: int | None = None) -> DecodeLimits:
    """What one body may cost, from the settings."""
    return DecodeLimits(
        max_events=max_events or settings.max_events_per_request,
        max_errors=settings.max_errors,
        max_depth=settings.max_json_depth,
    )


def _decode(
    raw: bytes, encoding: str | None, content_type: str | None, settings: ServerSettings
) -> Sequence[AnyEvent]:
    """Inflate and validate a body (on the decode executor: CPU-bound)."""
    body = inflate(raw, encoding, settings.max_inflated_bytes)
    return decode_body(body, content_type, decode_limits(settings))


def _project_mismatches(events: Sequence[AnyEvent], project: str) -> InvalidEvents | None:
    if {e.project for e in events} <= {None, project}:  # the usual case: one set, no list
        return None
    mismatched = [
        (i, e) for i, e in enumerate(events) if e.project is not None and e.project != project
    ]
    if not mismatched:
        return None
    errors = [
        EventError(i, "project", f"{e.project!r} does not match the key's project {project!r}")
        for i, e in mismatched
    ]
    return InvalidEvents(errors, types=Counter(e.type for _, e in mismatched))


def invalid_events(metrics: IngestMetrics, exc: InvalidEvents, max_errors: int) -> ApiError:
    """422 listing the first `max_errors` contract errors; validation stops there, and the
    answer says how many errors and events were left out. Rejected events are counted by
    type."""
    for kind, count in exc.types.items():
        metrics.events_rejected.labels(kind, "invalid").inc(count)
    shown = exc.errors[:max_errors]
    omitted = exc.omitted + len(exc.errors) - len(shown)
    message = f"{exc.events} event(s) break the contract; nothing of this request was stored"
    if omitted or exc.unchecked:
        message += f"; the first {len(shown)} errors are listed"
        if omitted:
            message += f", {omitted} more are not"
        if exc.unchecked:
            message += f"; the {exc.unchecked} event(s) after them were not checked"
    return ApiError(
        422,
        "invalid_events",
        message,
        errors=[e.as_dict() for e in shown],
        errors_omitted=omitted,
        events_unchecked=exc.unchecked,
    )


def too_large(metrics: IngestMetrics, message: str, events: int = 1) -> ApiError:
    metrics.events_rejected.labels("unknown", "too_large").inc(events)
    return ApiError(413, "too_large", message)


def report_spool(metrics: IngestMetrics, project: str, value: str | None) -> None:
    """Record a client's spool report; a value that is no byte count is ignored."""
    if value is None:
        return
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) <= _MAX_SPOOL_DIGITS:
        metrics.client_spools.report(project, int(value))


class Accepted(BaseModel):
    """Every event of the request is stored (durable)."""

    accepted: int


@router.post(
    ROUTE,
    status_code=202,
    openapi_extra=openapi.events_body(),
    responses=openapi.refusals(
        401,
        413,
        422,
        429,
        503,
        e422="`invalid_events`: an event breaks the contract (README, 'Event contract')",
    ),
)
async def post_events(
    request: Request, runtime: RuntimeDep, project: IntakeProject, spool_bytes: SpoolReport = None
) -> Accepted:
    """Store a JSON array or NDJSON of events, all or nothing."""
    metrics, settings = runtime.metrics, runtime.settings
    # Before anything may refuse the request: clients spool most while the intake answers
    # 429 or 503, and those requests carry the reports that matter.
    report_spool(metrics, project, spool_bytes)
    encoding, content_type = (request.headers.get(h) for h in ("content-encoding", "content-type"))
    try:
        raw = await read_raw(request, settings.max_body_bytes)
        events = await off_loop(
            settings.decode_threads, _decode, raw, encoding, content_type, settings
        )
    except BodyTooLarge as exc:
        raise too_large(metrics, str(exc)) from None
    except TooManyEvents as exc:
        raise too_large(metrics, str(exc), exc.limit + 1) from None
    except InvalidEvents as exc:
        raise invalid_events(metrics, exc, settings.max_errors) from None
    if mismatches := _project_mismatches(events, project):
        raise invalid_events(metrics, mismatches, settings.max_errors)
    return await store_events(runtime, events, project)


async def store_events(runtime: Runtime, events: Sequence[AnyEvent], project: str) -> Accepted:
    """Hand validated events to the sink: 202 once durable, else 429 or 503."""
    metrics = runtime.metrics
    try:
        await runtime.sink.write(events, project)
    except Overloaded as exc:
        metrics.events_rejected.labels("unknown", "overloaded").inc(len(events))
        raise ApiError(
            429,
            "overloaded",
            "too many events are waiting to be stored; retry later",
            headers={"Retry-After": str(max(1, round(exc.retry_after)))},
        ) from None
    except (StorageError, WriterStopped, SinkUnavailable) as exc:
        metrics.events_rejected.labels("unknown", "unavailable").inc(len(events))
        raise ApiError(
            503, "unavailable", f"events could not be stored: {exc}", headers={"Retry-After": "5"}
        ) from None
    for kind, count in Counter(map(_TYPE, events)).items():
        metrics.events_accepted.labels(kind).inc(count)
    return Accepted(accepted=len(events))
