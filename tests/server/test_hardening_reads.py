"""Edges of the read routes' parameters: every bad time gets a 4xx with the one error
body, never a 500 or a broken stream."""

from __future__ import annotations

import urllib.parse
from http.client import HTTPConnection

import pytest

from tests.helpers import InProcessServer, http

# Times no store column can hold, or that are not times at all.
EDGE_TIMES = [
    "999999d",
    "now-999999w",
    "now-99999999999999999999d",
    "9" * 400 + "d",
    "0001-01-01",
    "0001-01-01T00:00:00+01:00",
    "0999-12-31",
    "1899-12-31",
    "1969-12-31T23:59:59Z",
    "2300-01-01",
    "9999-12-31",
    "9999-12-31T23:59:59-01:00",
    "99999999999999999999",
    "9" * 5000,
    "253402300800000",
    "٣",
    "٣d",
    "now-٣h",
    "2026-11-0٣",
    "1e999",
    "nan",
    "inf",
    "-1",
    "now-",
    "now+1d",
    "\x00",
]

# Each route with the parameters that take a time; `{}` is the time.
ROUTES = {
    "report-since": "/v1/report?since={}",
    "report-until": "/v1/report?since=0&until={}",
    "compare": "/v1/compare?a=x&b=y&since={}",
    "export-since": "/v1/export?since={}",
    "export-until": "/v1/export?until={}",
    "panel-from": "/v1/panels/acceptance_rate?from={}",
    "panel-to": "/v1/panels/volume?from=now-1h&to={}",
    "variable": "/v1/variables/model?from={}",
}


@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
@pytest.mark.parametrize("value", EDGE_TIMES)
def test_edge_times_get_a_4xx_with_the_error_body(
    server: InProcessServer, route: str, value: str
) -> None:
    url = server.url + route.format(urllib.parse.quote(value))
    response = http("GET", url, headers={"Authorization": f"Bearer {server.key}"})
    assert 400 <= response.status < 500, (response.status, response.body)
    assert isinstance(response.body, dict)
    assert response.body["error"] == "invalid_query"
    assert isinstance(response.body["message"], str) and response.body["message"]


def test_an_export_out_of_range_is_refused_before_streaming(server: InProcessServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    conn = HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(
            "GET", "/v1/export?since=0999-12-31", headers={"Authorization": f"Bearer {server.key}"}
        )
        response = conn.getresponse()
        assert response.status == 422
        assert response.getheader("Transfer-Encoding") != "chunked"
        assert b'"invalid_query"' in response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "route",
    [
        "/v1/report?since=1970-01-01&until=2105-12-31",
        "/v1/export?since=1970-01-01&until=2105-12-31",
        "/v1/panels/volume?from=0&to=4291747200000",
        "/v1/variables/model?from=now-9999d",
    ],
)
def test_the_widest_valid_windows_still_answer(server: InProcessServer, route: str) -> None:
    response = http("GET", server.url + route, headers={"Authorization": f"Bearer {server.key}"})
    assert response.status == 200, response.body


# Other parameters at their edges (route with the parameter in place).
EDGE_PARAMS = [
    "/v1/report?threshold=nan",
    "/v1/report?threshold=1e999",
    "/v1/report?threshold=-0.5",
    "/v1/report?exact=maybe",
    "/v1/report?by=nope",
    "/v1/report?by=metadata.%00",
    "/v1/compare?a=x&b=y&threshold=inf",
    "/v1/compare?a=x&b=y&by=nope",
    "/v1/compare?a=x&b=y&by=model&since=now&until=now",
    "/v1/export?limit=-1",
    "/v1/export?kept_at=99999999999999999999999",
    "/v1/export?kept_at=-1",
    "/v1/export?sample=nan",
    "/v1/export?split=nan",
    "/v1/export?min_score=x%3Dnan",
    "/v1/export?min_score=x%3D1e999",
    "/v1/export?threshold=nan",
    "/v1/export?since=now&until=now",
    "/v1/panels/volume?model=" + "x" * 300,
    "/v1/panels/volume?from=now&to=now",
    "/v1/panels/%00",
    "/v1/variables/nope",
]


@pytest.mark.parametrize("route", EDGE_PARAMS)
def test_other_edge_parameters_get_a_4xx_with_the_error_body(
    server: InProcessServer, route: str
) -> None:
    response = http("GET", server.url + route, headers={"Authorization": f"Bearer {server.key}"})
    assert 400 <= response.status < 500, (response.status, response.body)
    assert isinstance(response.body, dict) and response.body["error"], response.body
    assert isinstance(response.body["message"], str) and response.body["message"]
