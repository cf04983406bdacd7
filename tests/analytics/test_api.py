"""Reports over HTTP and through the CLI, as users reach them."""

from __future__ import annotations

import json
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.analytics.test_scenario import DAY, scenario_events
from tests.helpers import InProcessServer, Response, http, run_kept, serve_process

WINDOW = {"since": DAY.isoformat(), "until": "now"}


def _get(server: InProcessServer, path: str, token: str | None, **params: str) -> Response:
    from urllib.parse import urlencode

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http("GET", f"{server.url}{path}?{urlencode(WINDOW | params)}", headers=headers)


@pytest.fixture
def loaded(server: InProcessServer) -> InProcessServer:
    generations, first, late = scenario_events()
    assert server.post(generations + first + late).status == 202
    server.runtime.analytics.run_now()
    return server


def test_report_with_a_project_key(loaded: InProcessServer) -> None:
    response = _get(loaded, "/v1/report", loaded.key, by="model")
    assert response.status == 200
    assert [(g["model"], g["generations"]) for g in response.body] == [("A", 4), ("B", 2)]
    other = _get(loaded, "/v1/report", loaded.key, project="someone-else")
    assert other.status == 403


def test_report_with_the_admin_token_and_errors(loaded: InProcessServer) -> None:
    admin = loaded.runtime.admin_token
    assert _get(loaded, "/v1/report", admin, project="demo").body[0]["generations"] == 6
    assert _get(loaded, "/v1/report", None).status == 401
    assert _get(loaded, "/v1/report", "kept_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbb").status == 401
    bad = _get(loaded, "/v1/report", admin, by="colour")
    assert bad.status == 422
    assert "cannot group by 'colour'" in bad.body["message"]
    assert "invalid time" in _get(loaded, "/v1/report", admin, since="last week").body["message"]
    assert _get(loaded, "/v1/report", admin, threshold="2").status == 422
    assert _get(loaded, "/v1/report", admin, colour="red").status == 422


def test_compare_over_http(loaded: InProcessServer) -> None:
    response = _get(loaded, "/v1/compare", loaded.key, by="model", a="B", b="A")
    assert response.status == 200
    result = response.body
    assert (result["a_group"]["generations"], result["b_group"]["generations"]) == (2, 4)
    acceptance = next(c for c in result["comparisons"] if c["metric"] == "acceptance_rate")
    assert acceptance["difference"] == pytest.approx(0.25)
    assert acceptance["verdict"] == "no detectable difference"  # six generations prove nothing
    assert _get(loaded, "/v1/compare", loaded.key, a="x").status == 422


@pytest.mark.slow
def test_cli_report_and_compare_through_the_server_and_without(data_dir: Path) -> None:
    def kept(command: str, *args: str) -> CompletedProcess[str]:
        window = ("--data", str(data_dir), "--since", DAY.isoformat())
        return run_kept(command, *window, *args)

    with serve_process(data_dir, KEPT_ANALYTICS_LAG_S="0.1") as proc:
        generations, first, late = scenario_events()
        assert proc.post(generations + first + late).status == 202
        ran = run_kept("analytics", "run", "--data", str(data_dir))
        assert ran.returncode == 0, ran.stderr
        assert "outcomes updated for 6 generation(s)" in ran.stderr
        served = kept("report", "--by", "model", "--format", "json")
        assert served.returncode == 0, served.stderr
        table = kept("report", "--by", "model,prompt_version").stdout
        assert "A" in table and "p1" in table and "accept" in table
        compared = kept("compare", "--by", "model", "B", "A").stdout
        assert "acceptance_rate" in compared and "no detectable difference" in compared
        proc.stop()
    # No server now: the CLI opens the store, folds new events in, and reports the same.
    direct = kept("report", "--by", "model", "--format", "json")
    assert direct.returncode == 0, direct.stderr
    assert json.loads(direct.stdout) == json.loads(served.stdout)
    wrong = kept("report", "--by", "nope")
    assert wrong.returncode == 1
    assert "cannot group by" in wrong.stderr
