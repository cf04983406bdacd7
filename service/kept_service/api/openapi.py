"""What the OpenAPI document says that the routes' signatures cannot: the bodies and
query parameters of routes that parse them themselves, and the refusals of each route.

The intake reads its body itself (size limits, gzip, NDJSON, per-event error indices) and
the reading routes parse their query strings with the CLI's parsers (one grammar for
both, unknown names refused), so their inputs are declared here, by hand, for client
generators and API fuzzers. The event schemas come from `kept_ingest.contract`.
"""

from __future__ import annotations

import copy
from typing import Any, get_args

from pydantic import BaseModel

from kept_analytics.export import ExportSpec
from kept_analytics.params import ALPHA_RANGE
from kept_ingest.contract import EVENT_ADAPTER
from kept_ingest.otlp.payload import JSON, PROTOBUF
from kept_service.api.errors import ErrorBody

REF = "#/components/schemas/{model}"

_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}
_CHALLENGE = {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}}
_REFUSALS = {
    401: "`unauthorized`: missing or invalid credentials",
    403: "`forbidden`: the credential does not cover what was asked",
    404: "`not_found`",
    409: "`analytics_busy`: another process holds the analytics lease; `message` says which",
    413: "`too_large`: the body or the number of events is over the limit",
    422: "`invalid_request`: the request does not fit this operation",
    429: "`overloaded`: too many events wait to be stored; retry after `Retry-After`",
    503: "`unavailable`: the store is unavailable or the server is stopping; `Retry-After`",
}


def refusals(*codes: int, challenge: bool = True, **notes: str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status with the error body; `notes` (`e422=...`)
    replace the generic description of a status; `challenge`: a 401 says
    `WWW-Authenticate: Bearer`."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        response: dict[str, Any] = {
            "model": ErrorBody,
            "description": notes.get(f"e{code}", _REFUSALS[code]),
        }
        if code in (429, 503):
            response["headers"] = _RETRY_AFTER
        elif code == 401 and challenge:
            response["headers"] = _CHALLENGE
        responses[code] = response
    return responses


OTLP_STATUS = "OtlpStatus"
OTLP_SCHEMAS = {
    OTLP_STATUS: {
        "title": OTLP_STATUS,
        "description": "google.rpc.Status, as OTLP answers refusals (protobuf or JSON, as "
        "the request was sent; JSON when its Content-Type was neither).",
        "type": "object",
        "properties": {
            "code": {"type": "integer", "description": "The gRPC status code"},
            "message": {"type": "string"},
        },
        "required": ["code", "message"],
    }
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def otlp_body(request: str) -> dict[str, Any]:
    """The `openapi_extra=` of an OTLP route: its body is the collector's `request`
    message, in protobuf or OTLP/JSON."""
    note = f"An OTLP `{request}`, protobuf or OTLP/JSON (ids in hex); gzip allowed."
    return {
        "requestBody": {
            "required": True,
            "description": note,
            "content": {PROTOBUF: _BINARY, JSON: {"schema": {"type": "object"}}},
        }
    }


def otlp_answers(answer: str, **notes: str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of an OTLP route: 200 with `answer`, refusals with a Status."""
    status = {"schema": {"$ref": REF.format(model=OTLP_STATUS)}}
    responses: dict[int | str, dict[str, Any]] = {
        200: {
            "description": f"Stored: an `{answer}`, whose partial_success names the records "
            "that were not.",
            "content": {PROTOBUF: _BINARY, JSON: {"schema": {"type": "object"}}},
        }
    }
    for code in (400, 401, 413, 415, 429, 503):
        response: dict[str, Any] = {
            "description": notes.get(f"e{code}", _OTLP_REFUSALS[code]),
            "content": {JSON: status, PROTOBUF: _BINARY},
        }
        if code in (429, 503):
            response["headers"] = _RETRY_AFTER
        elif code == 401:
            response["headers"] = _CHALLENGE
        responses[code] = response
    return responses


_OTLP_REFUSALS = {
    400: "The body is not an OTLP request of its encoding (truncated, invalid, ids not hex).",
    401: "Missing or invalid project key.",
    413: "The body, inflated or not, or its number of GenAI records, is over the limit.",
    415: "Content-Type is neither application/x-protobuf nor application/json.",
    429: "Too many events wait to be stored; retry after `Retry-After`.",
    503: "The store or Kafka did not take the events; `Retry-After`.",
}


# ---- query parameters -----------------------------------------------------------------


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _names(name: str, description: str, item: dict[str, Any] | None = None) -> dict[str, Any]:
    """A parameter that may repeat, or list values separated by commas."""
    schema = {"type": "array", "items": item or {"type": "string"}}
    return _query(name, description, schema) | {"style": "form", "explode": True}


def _enum(name: str, description: str, *values: str) -> dict[str, Any]:
    return _query(name, description, {"type": "string", "enum": list(values)})


def _export_choices(field: str) -> tuple[str, ...]:
    """The values an ExportSpec field (a Literal) takes: one list for the CLI and HTTP."""
    return get_args(ExportSpec.model_fields[field].annotation)


_WHEN = "`now`, a time ago (`7d`, `now-6h`), epoch milliseconds or ISO 8601 (UTC without a zone)"
_BOOLEAN = {"type": "boolean"}
_SHARE = {"type": "number", "minimum": 0, "maximum": 1}
_OPEN_SHARE = {"type": "number", "exclusiveMinimum": 0}
_ALPHA = {"type": "number", "minimum": ALPHA_RANGE[0], "maximum": ALPHA_RANGE[1]}
_VALUE = {"type": "string", "minLength": 1}
_MIN_SCORE = {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,200}=-?[0-9]{1,9}(\.[0-9]{1,9})?$"}
_FILTERS = [
    _query("project", "Only this project (a project key reads its own only)"),
    _names("model", "Only these models"),
    _names("prompt_version", "Only these prompt versions"),
]
METADATA_NOTE = " `metadata.KEY=VALUE` parameters filter on a metadata value."


def _report_params() -> list[dict[str, Any]]:
    return [
        _query("since", f"Start of the window ({_WHEN}); default 7d"),
        _query("until", f"End of the window ({_WHEN}); default now"),
        *_FILTERS,
        _query("threshold", "Survival score from which output counts as kept", _SHARE),
        _query("exact", "Read the events instead of the hourly rollup", _BOOLEAN),
    ]


def report_query() -> dict[str, Any]:
    """`openapi_extra` of `GET /v1/report`."""
    keys = r"^(project|model|prompt_version|day|hour|metadata\.[A-Za-z0-9_.:-]{1,128})$"
    by = _names(
        "by",
        "Group by `project`, `model`, `prompt_version`, `day`, `hour` or `metadata.KEY`",
        {"type": "string", "pattern": keys},
    )
    by["schema"]["uniqueItems"] = True
    return {"parameters": [*_report_params(), by]}


def compare_query() -> dict[str, Any]:
    """`openapi_extra` of `GET /v1/compare`."""
    pair = [
        _enum(
            "by", "What A and B are values of; default prompt_version", "prompt_version", "model"
        ),
        _query("a", "The baseline value", _VALUE) | {"required": True},
        _query("b", "The value compared with A", _VALUE) | {"required": True},
    ]
    method = [
        _query(
            "sequential",
            "Always-valid confidence sequences (right however often the comparison is looked "
            "at, alpha shared by all metrics) instead of fixed-horizon intervals",
            _BOOLEAN,
        ),
        _query("alpha", "Error rate; default 0.05", _ALPHA),
    ]
    return {"parameters": [*pair, *method, *_report_params()]}


def export_query() -> dict[str, Any]:
    """`openapi_extra` of `GET /v1/export` (the parameters of `kept export`)."""
    count = {"type": "integer", "minimum": 0}
    return {
        "parameters": [
            _enum("format", "Record format; default openai-chat", *_export_choices("format")),
            _query("since", f"Start of the window ({_WHEN}); default: the first event"),
            _query("until", f"End of the window ({_WHEN}); default now"),
            *_FILTERS,
            _query("accepted", "Only generations accepted (or not)", _BOOLEAN),
            _enum("vote", "Only generations whose latest vote is this", "up", "down"),
            _query("corrected", "Only generations corrected (or not)", _BOOLEAN),
            _query("kept_at", "Only generations kept at this checkpoint (seconds)", count),
            _query("threshold", "Survival score from which output counts as kept", _SHARE),
            _names("min_score", "`NAME=VALUE`: only generations scored at least VALUE", _MIN_SCORE),
            _enum("dpo_form", "Shape of dpo records", *_export_choices("dpo_form")),
            _query("dedup", "Drop repeated inputs (default true)", _BOOLEAN),
            _query("sample", "Share of records to keep", _OPEN_SHARE | {"maximum": 1}),
            _query("limit", "At most this many records", count),
            _query("split", "Share that goes to train", _OPEN_SHARE | {"exclusiveMaximum": 1}),
            _enum("redact", "`none` exports text as stored", "default", "none"),
            _query("envelope", "Wrap records as {part, record}, end with {summary}", _BOOLEAN),
            _enum("part", "One side of a split (needs `split`)", "train", "validation"),
        ]
    }


def window_query() -> dict[str, Any]:
    """`openapi_extra` of the dashboard page's data routes."""
    value = {"type": "string", "maxLength": 256}
    return {
        "parameters": [
            _query("from", f"Start of the time range ({_WHEN}); default now-24h"),
            _query("to", f"End of the time range ({_WHEN}); default now"),
            _query("project", "Project variable (a project key reads its own only)", value),
            _query("model", "Model variable", value),
            _query("prompt_version", "Prompt version variable", value),
        ]
    }


# ---- request bodies -------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def events_body() -> dict[str, Any]:
    """`openapi_extra` of `POST /v1/events`."""
    array = {"type": "array", "items": _ref("Event")}
    lines = {
        "type": "string",
        "description": "Newline-delimited JSON: one event (README, 'Event contract') a line",
    }
    content = {
        "application/json": {"schema": {"anyOf": [array, _ref("Event")]}},
        "application/x-ndjson": {"schema": lines},
    }
    description = (
        "A JSON array of events, or NDJSON; `Content-Encoding: gzip` is accepted. "
        "All or nothing: one bad event refuses the request."
    )
    return {"requestBody": {"required": True, "description": description, "content": content}}


def json_body(name: str, *, text_plain: bool = False) -> dict[str, Any]:
    """`openapi_extra` of a route that reads the JSON object `name` (a component) itself;
    `text_plain`: also as a text/plain body (a CORS simple request)."""
    content: dict[str, Any] = {"application/json": {"schema": _ref(name)}}
    if text_plain:
        text = {"type": "string", "contentMediaType": "application/json"}
        content["text/plain"] = {"schema": text | {"contentSchema": _ref(name)}}
    return {"requestBody": {"required": True, "content": content}}


# ---- component schemas ----------------------------------------------------------------


def model_schemas(*models: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Components for models that routes read by hand (FastAPI lists only typed ones)."""
    schemas: dict[str, dict[str, Any]] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def event_schemas() -> dict[str, dict[str, Any]]:
    """`Event` (README, "Event contract") and the models it is made of, as components."""
    event = EVENT_ADAPTER.json_schema(ref_template=REF)
    schemas: dict[str, dict[str, Any]] = event.pop("$defs")
    schemas["Event"] = event
    return schemas


def feedback_event_schemas(types: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`FeedbackEvent`: an event of `types` as a page sends it, `generation_id` optional
    (the token's is used)."""
    events = event_schemas()
    schemas: dict[str, dict[str, Any]] = {}
    for kind in types:
        schema = copy.deepcopy(events[kind.title()])
        schema["required"] = [f for f in schema["required"] if f != "generation_id"]
        schemas[f"Feedback{kind.title()}"] = schema
    mapping = {kind: REF.format(model=f"Feedback{kind.title()}") for kind in types}
    schemas["FeedbackEvent"] = {
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    return schemas


def add_components(document: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> None:
    """Put `schemas` into the document's components; a clash of names is a bug here."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in schemas.items():
        if components.setdefault(name, schema) != schema:
            raise RuntimeError(f"two OpenAPI schemas named {name!r}")
