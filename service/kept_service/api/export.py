"""Fine-tuning export over HTTP: `GET /v1/export`, NDJSON streamed as it is read.

Takes the parameters of `kept export` (named as in `kept_analytics.export.spec`). A
project key exports its own project only; the admin token any. The export runs in a
worker thread that hands chunks to the response through a small bounded queue, so a
slow client slows the export down instead of growing memory. `envelope=true` (what the
CLI asks for) wraps each record as `{"part", "record"}` and ends with `{"summary"}`;
without it, `part=train|validation` picks one side of a split.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
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
from kept_service.api import openapi
from kept_service.api.auth import Reader, ReaderDep, scope
from kept_service.api.deps import RuntimeDep, query_params
from kept_service.api.errors import ApiError
from kept_service.runtime import Runtime

router = APIRouter(tags=["export"])
log = logging.getLogger("kept.export")

_OWN = ("envelope", "part")
_CHUNK_BYTES = 64 * 1024
# Few long-lived threads: each keeps its own store client for the next export. At most
# two exports run at once; more wait their turn (the engine shares two cores anyway).
_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kept-export")
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
    out: queue.Queue[object],
    stop: threading.Event,
) -> None:
    def put(item: object) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    summary = Summary()
    chunk: list[str] = []
    size = 0
    try:
        redact = default_redact if spec.redact else no_redact
        for part, record in run(runtime.store, spec, redact, summary):
            if stop.is_set():
                return
            if not keep(part):
                continue
            text = line({"part": part, "record": record} if envelope else record)
            chunk.append(text)
            size += len(text)
            if size >= _CHUNK_BYTES:
                put("".join(chunk).encode())
                chunk, size = [], 0
        if envelope:
            chunk.append(line({"summary": summary.as_dict()}))
        put("".join(chunk).encode())
        put(_DONE)
    except Exception as exc:
        log.error("export failed: %s", exc)
        put(exc)


@router.get(
    "/v1/export",
    response_class=StreamingResponse,
    description=f"Training data as NDJSON, streamed as it is read.{openapi.METADATA_NOTE}",
    openapi_extra=openapi.export_query() | _NDJSON,
    responses=openapi.refusals(
        401, 403, 422, e422="`invalid_query`: a parameter is unknown or wrong; `message` says which"
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
    # Feedback stored before the request belongs in the outcomes the export reads.
    await run_in_threadpool(runtime.analytics.run_now)
    chunks: queue.Queue[object] = queue.Queue(maxsize=16)
    stop = threading.Event()

    def keep(p: str) -> bool:
        return part is None or p == part

    _EXECUTOR.submit(_produce, runtime, spec, keep, envelope, chunks, stop)

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                item: Any = await run_in_threadpool(chunks.get)
                if item is _DONE:
                    return
                if isinstance(item, Exception):
                    raise item  # ends the chunked response early: the client sees it broken
                yield item
        finally:
            stop.set()

    return StreamingResponse(body(), media_type="application/x-ndjson")
