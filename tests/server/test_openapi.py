"""The OpenAPI document, as a client generator or an API fuzzer reads it from a running
server: every input, credential and refusal of every operation is declared."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import jsonschema
import pytest

from tests.helpers import InProcessServer, feedback, generation, http

Document = dict[str, Any]
ERROR_BODY = "#/components/schemas/ErrorBody"
OTLP_STATUS = "#/components/schemas/OtlpStatus"
OTLP_ROUTES = ("/v1/traces", "/v1/logs")
READERS: list[dict[str, list[str]]] = [{"projectKey": []}, {"adminToken": []}]


@pytest.fixture(scope="module")
def document(session_server: InProcessServer) -> Document:
    response = http("GET", session_server.url + "/openapi.json")
    assert response.status == 200
    body: Document = response.body
    return body


def operations(document: Document) -> Iterator[tuple[str, str, Document]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def operation(document: Document, method: str, path: str) -> Document:
    found: Document = document["paths"][path][method]
    return found


def query_names(op: Document) -> set[str]:
    return {p["name"] for p in op.get("parameters", ()) if p["in"] == "query"}


def schema_at(document: Document, schema: Document) -> jsonschema.Draft202012Validator:
    """A validator for `schema` whose `#/components/...` refs resolve in the document."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def test_the_document_is_valid_openapi(document: Document) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)


def test_every_ref_resolves(document: Document) -> None:
    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    schemas = document["components"]["schemas"]
    found = set(refs(document))
    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_routes_that_read_their_body_declare_it(document: Document) -> None:
    events = operation(document, "post", "/v1/events")["requestBody"]["content"]
    assert set(events) == {"application/json", "application/x-ndjson"}
    array = schema_at(document, events["application/json"]["schema"])
    assert array.is_valid([generation(), feedback("vote", "g1", value=1)])
    assert not array.is_valid([{"type": "vote", "value": 1}])  # no ids, no ts
    assert not array.is_valid([generation(colour="red")])  # unknown fields are refused

    body = operation(document, "post", "/v1/feedback")["requestBody"]["content"]
    assert set(body) == {"application/json", "text/plain"}
    assert body["text/plain"]["schema"]["contentMediaType"] == "application/json"
    feedback_body = schema_at(document, body["application/json"]["schema"])
    vote = feedback("vote", "g1", value=1)
    del vote["generation_id"]  # the token's is used
    assert feedback_body.is_valid({"token": "kft_x", "events": [vote]})
    assert not feedback_body.is_valid({"token": "kft_x", "events": [generation()]})

    tokens = operation(document, "post", "/v1/feedback-tokens")["requestBody"]["content"]
    token_body = schema_at(document, tokens["application/json"]["schema"])
    assert token_body.is_valid({"generation_id": "g1", "ttl_s": 60})
    assert not token_body.is_valid({"ttl_s": 60})

    keys = operation(document, "post", "/v1/admin/keys")["requestBody"]["content"]
    assert schema_at(document, keys["application/json"]["schema"]).is_valid({"project": "shop"})


def test_routes_that_parse_their_query_declare_it(document: Document) -> None:
    report = query_names(operation(document, "get", "/v1/report"))
    assert report >= {"since", "until", "by", "project", "model", "prompt_version", "exact"}
    compare = operation(document, "get", "/v1/compare")
    assert query_names(compare) >= {"a", "b", "by", "since", "until", "project"}
    assert all(p["required"] for p in compare["parameters"] if p["name"] in ("a", "b"))
    export = query_names(operation(document, "get", "/v1/export"))
    assert export >= {"format", "since", "vote", "min_score", "split", "envelope", "part"}
    for path in ("/v1/panels/{panel_id}", "/v1/variables/{name}"):
        assert query_names(operation(document, "get", path)) >= {"from", "to", "project"}
    assert query_names(operation(document, "post", "/v1/admin/analytics/run")) == {"full"}


def _sample(parameter: Document) -> str:
    """A value of the parameter's schema the route should take."""
    schema = parameter["schema"]
    if "enum" in schema:
        return str(schema["enum"][0])
    kind = schema.get("type")
    if kind == "boolean":
        return "true"
    if kind == "integer":
        return "1"
    if kind == "number":
        return "0.5"
    names = {"by": "model", "min_score": "helpfulness=0.5", "since": "7d", "until": "now"}
    return names.get(parameter["name"], "x")


@pytest.mark.parametrize("path", ["/v1/report", "/v1/compare", "/v1/export"])
def test_every_declared_query_parameter_is_one_the_route_knows(
    server: InProcessServer, document: Document, path: str
) -> None:
    admin = {"Authorization": f"Bearer {server.runtime.admin_token}"}
    base = {"a": "x", "b": "y"} if path == "/v1/compare" else {}
    for parameter in operation(document, "get", path)["parameters"]:
        query = urlencode(base | {parameter["name"]: _sample(parameter)})
        response = http("GET", f"{server.url}{path}?{query}", headers=admin)
        message = str(response.body.get("message", "")) if isinstance(response.body, dict) else ""
        assert "unknown parameter" not in message, (parameter["name"], response.body)


def test_security_is_declared_where_credentials_are_needed(document: Document) -> None:
    schemes = document["components"]["securitySchemes"]
    for name in ("projectKey", "adminToken", "feedbackToken"):
        assert (schemes[name]["type"], schemes[name]["scheme"]) == ("http", "bearer")
    expected = {
        ("post", "/v1/events"): [{"projectKey": []}],
        ("post", "/v1/traces"): [{"projectKey": []}],
        ("post", "/v1/logs"): [{"projectKey": []}],
        ("post", "/v1/feedback-tokens"): [{"projectKey": []}],
        ("post", "/v1/feedback"): [{"feedbackToken": []}, {}],  # or the token in the body
        ("get", "/v1/report"): READERS,
        ("get", "/v1/compare"): READERS,
        ("get", "/v1/export"): READERS,
        ("get", "/v1/panels/{panel_id}"): [*READERS, {}],  # keyless on loopback
        ("get", "/v1/variables/{name}"): [*READERS, {}],
        ("get", "/v1/alerts"): [{"adminToken": []}],
    }
    for method, path, op in operations(document):
        if path.startswith("/v1/admin/"):
            assert op.get("security") == [{"adminToken": []}], (method, path)
        elif (method, path) in expected:
            assert op.get("security") == expected[method, path], (method, path)
        else:
            assert "security" not in op, (method, path)  # public: health, page layout


def _error_ref(response: Document) -> str | None:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref: str | None = schema.get("$ref")
    return ref


def test_refusals_are_declared_with_the_error_body(document: Document) -> None:
    for method, path, op in operations(document):
        where = (method, path)
        refusals = {c: r for c, r in op["responses"].items() if c[0] in "45"}
        security = op.get("security", [])
        if op.get("parameters") or op.get("requestBody") or security:
            assert refusals, where
        otlp = path in OTLP_ROUTES  # OTLP's own refusal body, and no 422 in its protocol
        if (op.get("parameters") or op.get("requestBody")) and not otlp:
            assert "422" in refusals, where
        if security:
            assert "401" in refusals, where
        if security and {} not in security:  # a bearer credential is required
            assert "WWW-Authenticate" in refusals["401"]["headers"], where
        for code, response in refusals.items():
            if (path, code) == ("/readyz", "503"):
                continue  # readiness has its own body
            body = OTLP_STATUS if otlp else ERROR_BODY
            assert _error_ref(response) == body, (method, path, code)
            assert response["description"], (method, path, code)
    for path in ("/v1/events", *OTLP_ROUTES):
        for code in ("429", "503"):
            assert "Retry-After" in operation(document, "post", path)["responses"][code]["headers"]
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "message"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
