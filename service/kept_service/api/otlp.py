"""OTLP/HTTP receiver: `POST /v1/traces` and `POST /v1/logs` (README, "OpenTelemetry").

An app instrumented with OpenTelemetry points its OTLP exporter at kept with the project
key in `OTEL_EXPORTER_OTLP_HEADERS`; its GenAI spans and events are stored as events,
with the durability and idempotency of `/v1/events`. Answers follow the OTLP
specification: 200 with the export response (partial success names the records not
stored), and refusals with a google.rpc.Status body, both in the request's encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from google.protobuf.message import Message

from kept_ingest.decode import InvalidEvents
from kept_ingest.otlp import payload
from kept_ingest.otlp.logs import map_logs
from kept_ingest.otlp.records import Tally
from kept_ingest.otlp.settings import OtlpSettings
from kept_ingest.otlp.spans import map_traces
from kept_service.api import openapi
from kept_service.api.auth import IntakeProject
from kept_service.api.bodies import BodyTooLarge, inflate, off_loop, read_raw
from kept_service.api.deps import RuntimeDep
from kept_service.api.errors import ApiError
from kept_service.api.events import store_events, too_large
from kept_service.runtime import Runtime

GRPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 429: 8, 503: 14}
"""google.rpc.Code of each refusal (INVALID_ARGUMENT, UNAUTHENTICATED, ...)."""
_INTERNAL = 13


def _answer_kind(request: Request) -> str:
    """Refusals are encoded as the request was; JSON when its type is not OTLP's."""
    try:
        return payload.media_type(request.headers.get("content-type"))
    except payload.UnsupportedContentType:
        return payload.JSON


class OtlpRoute(APIRoute):
    """A route whose refusals (its dependencies' too) carry an OTLP Status body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def otlp_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                kind = _answer_kind(request)
                code = GRPC_CODES.get(exc.status, _INTERNAL)
                body = payload.failure(code, exc.message, kind)
                return Response(body, exc.status, exc.headers, media_type=kind)

        return otlp_handler


router = APIRouter(tags=["opentelemetry"], route_class=OtlpRoute)
SCHEMAS = openapi.OTLP_SCHEMAS

Mapper = Callable[[Any, OtlpSettings], Tally]
Answer = Callable[[int, str], Message]


def _decode(raw: bytes, encoding: str | None, kind: str, message: type[Any],
            mapper: Mapper, settings: OtlpSettings, limit: int) -> Tally:  # fmt: skip
    """Inflate, decode and map a body (on the decode executor: CPU-bound)."""
    body = inflate(raw, encoding, limit)
    return mapper(payload.decode(body, kind, message), settings)


async def _export(request: Request, runtime: Runtime, project: str, signal: str,
                  message: type[Any], mapper: Mapper, answer: Answer) -> Response:  # fmt: skip
    metrics, settings = runtime.metrics, runtime.settings
    try:
        kind = payload.media_type(request.headers.get("content-type"))
    except payload.UnsupportedContentType as exc:
        raise ApiError(415, "unsupported_media_type", str(exc)) from None
    encoding = request.headers.get("content-encoding")
    try:
        raw = await read_raw(request, settings.max_body_bytes)
        tally = await off_loop(
            settings.decode_threads, _decode, raw, encoding, kind, message, mapper, settings,
            settings.max_inflated_bytes,
        )  # fmt: skip
    except BodyTooLarge as exc:
        raise too_large(metrics, str(exc)) from None
    except (payload.Undecodable, InvalidEvents) as exc:  # InvalidEvents: a broken gzip
        raise ApiError(400, "undecodable", str(exc)) from None
    if len(tally.events) > settings.max_events_per_request:
        raise too_large(
            metrics,
            f"the request holds {len(tally.events)} GenAI records; at most "
            f"{settings.max_events_per_request} are taken at once",
            len(tally.events),
        )
    if tally.events:
        await store_events(runtime, tally.events, project)
    for outcome, count in (
        ("stored", len(tally.events)), ("ignored", tally.ignored), ("rejected", tally.rejected)
    ):  # fmt: skip
        if count:
            metrics.otlp_records.labels(signal, outcome).inc(count)
    body = payload.encode(answer(tally.rejected, tally.message()), kind)
    return Response(body, 200, media_type=kind)


@router.post(
    "/v1/traces",
    openapi_extra=openapi.otlp_body("ExportTraceServiceRequest"),
    responses=openapi.otlp_answers("ExportTraceServiceResponse"),
    response_class=Response,
)
async def post_traces(request: Request, runtime: RuntimeDep, project: IntakeProject) -> Response:
    """OTLP/HTTP traces: GenAI model-call spans become generations, their evaluation
    events scores; other spans are ignored."""
    return await _export(
        request, runtime, project, "traces", payload.ExportTraceServiceRequest, map_traces,
        payload.traces_answer,
    )  # fmt: skip


@router.post(
    "/v1/logs",
    openapi_extra=openapi.otlp_body("ExportLogsServiceRequest"),
    responses=openapi.otlp_answers("ExportLogsServiceResponse"),
    response_class=Response,
)
async def post_logs(request: Request, runtime: RuntimeDep, project: IntakeProject) -> Response:
    """OTLP/HTTP logs: `kept.feedback`, `gen_ai.evaluation.result` and
    `gen_ai.client.inference.operation.details` events become events; other records
    are ignored."""
    return await _export(
        request, runtime, project, "logs", payload.ExportLogsServiceRequest, map_logs,
        payload.logs_answer,
    )  # fmt: skip
