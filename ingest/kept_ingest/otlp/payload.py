"""OTLP/HTTP bodies: protobuf or JSON in, the collector's request messages out; and the
answers, encoded as the request was (OTLP specification, "OTLP/HTTP").

OTLP/JSON is the protobuf JSON mapping with one difference: trace and span ids are hex,
not base64. `json_request` builds the same messages from it as protobuf decoding does,
so both encodings give the same events (and a re-sent span the same event id whichever
encoding carried it).
"""

from __future__ import annotations

import json
from typing import TypeVar

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

from kept_ingest.otlp import json_request
from kept_ingest.otlp.json_request import Undecodable

__all__ = ["ExportLogsServiceRequest", "ExportTraceServiceRequest", "Undecodable"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)
RequestT = TypeVar("RequestT", ExportTraceServiceRequest, ExportLogsServiceRequest)


class UnsupportedContentType(Exception):
    """Neither protobuf nor JSON (415)."""


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
    if kind == PROTOBUF:
        request = message()
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
    build = json_request.traces if message is ExportTraceServiceRequest else json_request.logs
    try:
        return build(document)
    except Undecodable as exc:
        raise Undecodable(f"the JSON body is not an OTLP request: {exc}") from None
    except (RecursionError, TypeError, ValueError, OverflowError) as exc:
        # What the message classes themselves refuse (an enum out of range, ...).
        raise Undecodable(f"the JSON body is not an OTLP request: {exc}") from None


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
