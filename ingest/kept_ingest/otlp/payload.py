"""OTLP/HTTP bodies: protobuf or JSON in, the collector's request messages out; and the
answers, encoded as the request was (OTLP specification, "OTLP/HTTP").

OTLP/JSON is the protobuf JSON mapping with one difference: trace and span ids are hex,
not base64. They are turned into base64 before the standard parser runs, so both
encodings become the same messages and the same events (and a re-sent span the same
event id whichever encoding carried it).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["ExportLogsServiceRequest", "ExportTraceServiceRequest"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)
RequestT = TypeVar("RequestT", ExportTraceServiceRequest, ExportLogsServiceRequest)

# Where OTLP/JSON carries ids (hex): the fields of spans, span links and log records.
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_CONTAINERS = {
    "resourceSpans": ("scopeSpans", "spans"),
    "resource_spans": ("scope_spans", "spans"),
    "resourceLogs": ("scopeLogs", "logRecords"),
    "resource_logs": ("scope_logs", "log_records"),
}


class UnsupportedContentType(Exception):
    """Neither protobuf nor JSON (415)."""


class Undecodable(Exception):
    """The body is not an OTLP request of its encoding (400); the message says why."""


def media_type(content_type: str | None) -> str:
    """The body's encoding from its Content-Type (parameters ignored)."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in CONTENT_TYPES:
        raise UnsupportedContentType(
            f"Content-Type must be {PROTOBUF} or {JSON}, not {content_type or 'absent'!r}"
        )
    return kind


def decode(body: bytes, kind: str, message: type[RequestT]) -> RequestT:
    """`body` as a `message` (ExportTraceServiceRequest or ExportLogsServiceRequest)."""
    request = message()
    if kind == PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise Undecodable(f"invalid protobuf body: {exc}") from None
        return request
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Undecodable(f"invalid JSON body: {exc}") from None
    if not isinstance(document, dict):
        raise Undecodable("the JSON body must be an object")
    _hex_ids_to_base64(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise Undecodable(f"the JSON body is not an OTLP request: {exc}") from None
    return request


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    for key, (scope_key, items_key) in _CONTAINERS.items():
        for resource in _dicts(document.get(key)):
            for scope in _dicts(resource.get(scope_key)):
                for item in _dicts(scope.get(items_key)):
                    _convert_ids(item)
                    for link in _dicts(item.get("links")):
                        _convert_ids(link)


def _dicts(value: object) -> Iterable[dict[str, Any]]:
    if isinstance(value, list):
        yield from (v for v in value if isinstance(v, dict))


def _convert_ids(item: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        value = item.get(name)
        if not isinstance(value, str) or not value:
            continue
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise Undecodable(f"{name} {value[:40]!r} is not hex (OTLP/JSON ids are hex)") from None
        item[name] = base64.b64encode(raw).decode()


def encode(message: Message, kind: str) -> bytes:
    """`message` in the request's encoding."""
    if kind == PROTOBUF:
        return bytes(message.SerializeToString())
    return str(json_format.MessageToJson(message, indent=None)).encode()


def traces_answer(rejected: int, message: str) -> ExportTraceServiceResponse:
    """Success, partial when `rejected` spans were not stored."""
    if not rejected and not message:
        return ExportTraceServiceResponse()
    partial = ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
    return ExportTraceServiceResponse(partial_success=partial)


def logs_answer(rejected: int, message: str) -> ExportLogsServiceResponse:
    """Success, partial when `rejected` log records were not stored."""
    if not rejected and not message:
        return ExportLogsServiceResponse()
    partial = ExportLogsPartialSuccess(rejected_log_records=rejected, error_message=message)
    return ExportLogsServiceResponse(partial_success=partial)


def failure(code: int, message: str, kind: str) -> bytes:
    """The body of a refusal: a google.rpc.Status (`code`: the gRPC code) in `kind`.

    Written out by hand: its two fields are all kept sends, and the message's generated
    class lives in googleapis-common-protos, a dependency for these few bytes."""
    if kind == JSON:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
