"""`POST /v1/events`: validate, then answer 202 only once the events are durable."""

from __future__ import annotations

import json
import zlib
from collections import Counter

from fastapi import APIRouter, Request
from pydantic import BaseModel

from kept_ingest.contract import Event
from kept_ingest.decode import EventError, InvalidEvents, decode_body
from kept_ingest.metrics import IngestMetrics
from kept_ingest.sink import SinkUnavailable
from kept_ingest.writer import Overloaded, WriterStopped
from kept_service.api import openapi
from kept_service.api.auth import IntakeProject
from kept_service.api.deps import RuntimeDep
from kept_service.api.errors import ApiError
from kept_service.runtime import Runtime
from kept_storage import StorageError
from kept_wire.contract import EVENT_TYPES

router = APIRouter(tags=["intake"])
ROUTE = "/v1/events"
SCHEMAS = openapi.event_schemas()
"""Components the hand-written body declaration refers to."""


_DRAIN_LIMIT = 8


class BodyTooLarge(Exception):
    """The request body is over the route's limit (413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, gunzipped when it says so; BodyTooLarge past `limit` bytes either way."""
    declared = request.headers.get("content-length")
    too_large = declared is not None and declared.isdigit() and int(declared) > limit
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            too_large = True
        if too_large:
            # Read the rest before answering: a client still sending when the connection
            # closes sees a reset instead of the 413, and would retry forever.
            if size > _DRAIN_LIMIT * limit:
                break
            continue
        chunks.append(chunk)
    if too_large:
        raise BodyTooLarge
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise InvalidEvents([EventError(None, None, f"invalid gzip body: {exc}")]) from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise BodyTooLarge
    return body


def _types_by_index(body: bytes, errors: list[EventError]) -> list[str]:
    """Event types of the failing events, for metrics only (the slow path)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    types = []
    for index in {e.index for e in errors}:
        kind = "unknown"
        if isinstance(parsed, list) and index is not None and index < len(parsed):
            item = parsed[index]
            # Known types only: a label per value a client makes up would let any client
            # grow the metrics without bound.
            if isinstance(item, dict) and item.get("type") in EVENT_TYPES:
                kind = item["type"]
        types.append(kind)
    return types


def _project_mismatches(events: list[Event], project: str) -> list[EventError]:
    return [
        EventError(i, "project", f"{e.project!r} does not match the key's project {project!r}")
        for i, e in enumerate(events)
        if e.project is not None and e.project != project
    ]


def invalid_events(metrics: IngestMetrics, body: bytes, errors: list[EventError]) -> ApiError:
    """422 listing every contract error; rejected events are counted by type."""
    for kind in _types_by_index(body, errors):
        metrics.events_rejected.labels(kind, "invalid").inc()
    bad = len({e.index for e in errors})
    return ApiError(
        422,
        "invalid_events",
        f"{bad} event(s) break the contract; nothing of this request was stored",
        errors=[e.as_dict() for e in errors],
    )


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
async def post_events(request: Request, runtime: RuntimeDep, project: IntakeProject) -> Accepted:
    """Store a JSON array or NDJSON of events, all or nothing."""
    metrics, settings = runtime.metrics, runtime.settings
    body = b""
    try:
        body = await read_body(request, settings.max_body_bytes)
        events = decode_body(body, request.headers.get("content-type"))
    except BodyTooLarge:
        metrics.events_rejected.labels("unknown", "too_large").inc()
        limit = settings.max_body_bytes
        raise ApiError(413, "too_large", f"the body is larger than {limit} bytes") from None
    except InvalidEvents as exc:
        raise invalid_events(metrics, body, exc.errors) from None
    if len(events) > settings.max_events_per_request:
        metrics.events_rejected.labels("unknown", "too_large").inc(len(events))
        raise ApiError(
            413,
            "too_large",
            f"{len(events)} events in one request; at most {settings.max_events_per_request}",
        )
    if mismatches := _project_mismatches(events, project):
        raise invalid_events(metrics, body, mismatches)
    return await store_events(runtime, events, project)


async def store_events(runtime: Runtime, events: list[Event], project: str) -> Accepted:
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
    for kind, count in Counter(e.type for e in events).items():
        metrics.events_accepted.labels(kind).inc(count)
    return Accepted(accepted=len(events))
