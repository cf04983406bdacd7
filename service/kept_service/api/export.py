"""Fine-tuning export over HTTP: `GET /v1/export`, NDJSON streamed as it is read.

Takes the parameters of `kept export` (named as in `kept_analytics.export.spec`). A
project key exports its own project only; the admin token any. The export runs on one
of the runtime's export threads (`KEPT_EXPORT_MAX_CONCURRENT`; when all are busy: 429)
and hands chunks to the response through a small bounded channel, so a slow client
slows the export down instead of growing memory, and a client that takes nothing for
`KEPT_WRITE_TIMEOUT_S` stops it. No thread waits on the response's side. `envelope=true`
(what the CLI asks for) wraps each record as `{"part", "record"}` and ends with
`{"summary"}`; without it, `part=train|validation` picks one side of a split.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from kept_analytics.export import (
    ExportSpec,
    Summary,
    default_redact,
    no_redact,
    run,
    spec_from_params,
)
from kept_analytics.export.writer import line
from kept_analytics.params import InvalidQuery
from kept_analytics.runner import AnalyticsBusy
from kept_service.api import openapi
from kept_service.api.auth import Reader, ReaderDep, scope
from kept_service.api.channel import Channel, ChannelClosed
from kept_service.api.deps import RuntimeDep, query_params
from kept_service.api.errors import ApiError
from kept_service.runtime import Runtime

router = APIRouter(tags=["export"])
log = logging.getLogger("kept.export")

_OWN = ("envelope", "part")
_CHUNK_BYTES = 64 * 1024
_CHUNKS_AHEAD = 16
_RETRY_AFTER_S = 10
_DONE = object()
_NDJSON = {
    "responses": {
        "200": {
            "description": "A JSON record a line; with `envelope`, {part, record} then {summary}",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    }
}


def _spec(request: Request, runtime: Runtime, who: Reader) -> ExportSpec:
    try:
        spec = spec_from_params(
            query_params(request), threshold=runtime.settings.kept_threshold, extra=_OWN
        )
    except InvalidQuery as exc:
        raise ApiError(422, "invalid_query", str(exc)) from None
    return scope(spec, who)


def _produce(
    runtime: Runtime,
    spec: ExportSpec,
    keep: Callable[[str], bool],
    envelope: bool,
    out: Channel,
) -> None:
    summary = Summary()
    chunk: list[str] = []
    size = 0
    try:
        # Feedback stored before the request belongs in the outcomes the export reads.
        try:
            runtime.analytics.run_now()
        except AnalyticsBusy as exc:  # export what is folded: minutes old at worst
            log.warning("export without a fresh outcomes run: %s", exc)
        redact = default_redact if spec.redact else no_redact
        records = run(runtime.store, spec, redact, summary)
        try:
            for part, record in records:
                if not keep(part):
                    continue
                text = line({"part": part, "record": record} if envelope else record)
                chunk.append(text)
                size += len(text)
                if size >= _CHUNK_BYTES:
                    out.put("".join(chunk).encode())
                    chunk, size = [], 0
        finally:
            records.close()  # ends the store's query now, also when the client went away
        if envelope:
            chunk.append(line({"summary": summary.as_dict()}))
        out.put("".join(chunk).encode())
        out.put(_DONE)
    except ChannelClosed as exc:
        log.warning("export stopped: %s", exc)
    except Exception as exc:
        log.error("export failed: %s", exc)
        with contextlib.suppress(ChannelClosed):
            out.put(exc)


@router.get(
    "/v1/export",
    response_class=StreamingResponse,
    description=f"Training data as NDJSON, streamed as it is read.{openapi.METADATA_NOTE}",
    openapi_extra=openapi.export_query() | _NDJSON,
    responses=openapi.refusals(
        401,
        403,
        422,
        429,
        e422="`invalid_query`: a parameter is unknown or wrong; `message` says which",
        e429="`overloaded`: as many exports as `KEPT_EXPORT_MAX_CONCURRENT` are running; "
        "`Retry-After`",
    ),
)
async def get_export(request: Request, runtime: RuntimeDep, who: ReaderDep) -> StreamingResponse:
    """Training data as NDJSON; see `kept export --help` for the parameters."""
    spec = _spec(request, runtime, who)
    envelope = request.query_params.get("envelope", "false").lower() in ("true", "1")
    part = request.query_params.get("part")
    if part not in (None, "train", "validation"):
        raise ApiError(422, "invalid_query", "part must be train or validation")
    if part is not None and spec.split is None:
        raise ApiError(422, "invalid_query", "part needs split")
    chunks = Channel(
        asyncio.get_running_loop(), _CHUNKS_AHEAD, stall_s=runtime.settings.write_timeout_s
    )

    def keep(p: str) -> bool:
        return part is None or p == part

    if not runtime.exports.try_start(lambda: _produce(runtime, spec, keep, envelope, chunks)):
        raise ApiError(
            429,
            "overloaded",
            f"{runtime.exports.size} export(s) are running; retry later",
            headers={"Retry-After": str(_RETRY_AFTER_S)},
        )

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                item = await chunks.get()
                if item is _DONE:
                    return
                if isinstance(item, Exception):
                    raise item  # ends the chunked response early: the client sees it broken
                assert isinstance(item, bytes)
                yield item
        finally:
            chunks.close()

    return StreamingResponse(body(), media_type="application/x-ndjson")
