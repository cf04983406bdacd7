"""Every metric (README, "Metrics") on a scenario computed by hand: late feedback, changed
votes, repeated corrections, duplicates, no feedback, empty denominators; through the
rollup and the exact path alike."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kept_analytics.report import ReportSpec, report
from tests.helpers import InProcessServer, feedback, generation

DAY = (datetime.now(timezone.utc) - timedelta(days=1)).replace(
    hour=10, minute=0, second=0, microsecond=0
)


def at(minutes: float) -> str:
    return (DAY + timedelta(minutes=minutes)).isoformat()


def gen(gid: str, minute: float, model: str, pv: str, **fields: Any) -> dict[str, Any]:
    return generation(generation_id=gid, ts=at(minute), model=model, prompt_version=pv, **fields)


def fb(kind: str, gid: str, minute: float, **fields: Any) -> dict[str, Any]:
    return feedback(kind, gid, ts=at(minute), **fields)


def scenario_events() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Generations, first wave and late wave of feedback, with fresh event ids."""
    generations = [
        gen(
            "g1",
            5,
            "A",
            "p1",
            output="hello world",
            latency_ms=100,
            cost_usd=0.01,
            output_tokens=10,
        ),
        gen("g2", 20, "A", "p1", output="abc", latency_ms=200, cost_usd=0.02, output_tokens=20),
        gen("g3", 40, "A", "p2", latency_ms=300, cost_usd=0.03, output_tokens=30),
        gen("g4", 70, "B", "p1", latency_ms=400, output_tokens=40),
        gen("g5", 90, "B", "p2", cost_usd=0.05),  # no feedback at all, no latency
        gen(
            "g6",
            110,
            "A",
            "p1",
            latency_ms=600,
            cost_usd=0.06,
            output_tokens=60,
            metadata={"app": "x"},
        ),
    ]
    survival_g2 = fb("survival", "g2", 21, checkpoint_s=30, score=0.5)
    first = [
        fb("action", "g1", 6, name="accept"),
        fb("action", "g1", 6.5, name="copy"),
        fb("vote", "g1", 7, value=1),
        fb("survival", "g1", 7, checkpoint_s=30, score=0.9),
        fb("survival", "g1", 9, checkpoint_s=120, score=0.4),
        fb("correction", "g1", 8, text="hello there world"),
        fb("action", "g2", 21, name="copy"),
        fb("vote", "g2", 21, value=1),
        survival_g2,
        survival_g2,  # the same event twice in one request
        fb("action", "g3", 41, name="regenerate"),
        fb("vote", "g3", 41, value=-1),
        fb("action", "g3", 42, name="dismiss"),
        fb("action", "g4", 71, name="accept"),
        fb("survival", "g4", 71.5, checkpoint_s=30, score=0.2),
        fb("survival", "g4", 76, checkpoint_s=300, score=0.0),
        fb("survival", "g6", 111, checkpoint_s=30, score=0.95),  # not accepted: not in kept_rate
    ]
    late = [
        fb("vote", "g1", 30, value=-1),  # changed vote: the latest counts
        fb("correction", "g1", 31, text="hello world!"),  # repeated correction: the latest counts
        fb("action", "g3", 60, name="accept"),  # late acceptance
        survival_g2,  # a client retry, long after
    ]
    return generations, first, late


# By hand, after both waves (threshold 0.5).
EXPECTED = {
    "A": {
        "generations": 4,
        "accepted": 3,  # g1 (accept, copy), g2 (copy), g3 (late accept)
        "acceptance_rate": 3 / 4,
        "survival_measured": {"30": 2, "120": 1, "300": 0, "600": 0, "900": 0},
        "kept": {"30": 2, "120": 0, "300": 0, "600": 0, "900": 0},  # 0.9, 0.5 kept; 0.4 not
        "kept_rate": {"30": 1.0, "120": 0.0, "300": None, "600": None, "900": None},
        "kept_of_shown": {"30": 0.5, "120": 0.0, "300": 0.0, "600": 0.0, "900": 0.0},
        "votes_up": 1,  # g2; g1 changed to down
        "votes_down": 2,  # g1, g3
        "vote_score": 1 / 3,
        "corrected": 1,
        "correction_rate": 1 / 4,
        "correction_similarity": 1 - 1 / 12,  # "hello world" → "hello world!"
        "action_counts": {"accept": 2, "copy": 2, "dismiss": 1, "regenerate": 1},
        "action_rates": {"accept": 0.5, "copy": 0.5, "dismiss": 0.25, "regenerate": 0.25},
        "cost_usd_total": 0.12,
        "output_tokens_total": 120,
    },
    "B": {
        "generations": 2,
        "accepted": 1,
        "acceptance_rate": 0.5,
        "survival_measured": {"30": 1, "120": 0, "300": 1, "600": 0, "900": 0},
        "kept": {"30": 0, "120": 0, "300": 0, "600": 0, "900": 0},
        "kept_rate": {"30": 0.0, "120": None, "300": 0.0, "600": None, "900": None},
        "kept_of_shown": {"30": 0.0, "120": 0.0, "300": 0.0, "600": 0.0, "900": 0.0},
        "votes_up": 0,
        "votes_down": 0,
        "vote_score": None,
        "corrected": 0,
        "correction_rate": 0.0,
        "correction_similarity": None,
        "action_counts": {"accept": 1},
        "action_rates": {"accept": 0.5},
        "cost_usd_total": 0.05,
        "output_tokens_total": 40,
    },
}
LATENCY = {"A": [100, 200, 300, 600], "B": [400]}


def _spec(**kw: Any) -> ReportSpec:
    base = {"since": DAY, "until": DAY + timedelta(hours=3), "project": "demo"}
    return ReportSpec(**(base | kw))


def _check(group: dict[str, Any], expected: dict[str, Any]) -> None:
    for metric, value in expected.items():
        if isinstance(value, float):
            assert group[metric] == pytest.approx(value), metric
        else:
            assert group[metric] == value, metric


def _latency_plausible(group: dict[str, Any], samples: list[int]) -> None:
    # t-digest estimates: within the sample range, p50 at or below p95.
    assert min(samples) <= group["latency_ms_p50"] <= group["latency_ms_p95"] <= max(samples)


@pytest.fixture
def scenario(server: InProcessServer) -> InProcessServer:
    generations, first, late = scenario_events()
    assert server.post(generations + first).status == 202
    server.runtime.analytics.run_now()
    assert server.post(late).status == 202
    server.runtime.analytics.run_now()
    return server


@pytest.mark.parametrize("exact", [False, True])
def test_every_metric_by_model(scenario: InProcessServer, exact: bool) -> None:
    groups = {
        g["model"]: g for g in report(scenario.runtime.store, _spec(by=("model",), exact=exact))
    }
    assert set(groups) == {"A", "B"}
    for model, expected in EXPECTED.items():
        _check(groups[model], expected)
        _latency_plausible(groups[model], LATENCY[model])
    assert groups["B"]["latency_ms_p50"] == 400


def test_first_wave_alone(server: InProcessServer) -> None:
    generations, first, _ = scenario_events()
    assert server.post(generations + first).status == 202
    server.runtime.analytics.run_now()
    a = next(g for g in report(server.runtime.store, _spec(by=("model",))) if g["model"] == "A")
    assert (a["accepted"], a["votes_up"], a["votes_down"]) == (2, 2, 1)
    assert a["correction_similarity"] == pytest.approx(1 - 6 / 17)  # "hello there world"


def test_late_feedback_equals_a_full_recomputation(scenario: InProcessServer) -> None:
    incremental = report(scenario.runtime.store, _spec(by=("model", "prompt_version", "hour")))
    scenario.runtime.analytics.run_now(full=True)
    assert (
        report(scenario.runtime.store, _spec(by=("model", "prompt_version", "hour"))) == incremental
    )
    # The collapsing table holds one live row per generation, however many runs it took.
    live = scenario.runtime.store.scalar("SELECT sum(sign) FROM outcomes")
    assert live == 6


def test_groups_by_prompt_version_hour_and_metadata(scenario: InProcessServer) -> None:
    store = scenario.runtime.store
    by_pv = {g["prompt_version"]: g for g in report(store, _spec(by=("prompt_version",)))}
    assert {k: v["generations"] for k, v in by_pv.items()} == {"p1": 4, "p2": 2}
    assert by_pv["p2"]["accepted"] == 1 and by_pv["p2"]["vote_score"] == 0.0
    hours = [(g["hour"], g["generations"]) for g in report(store, _spec(by=("hour",)))]
    assert hours == [
        (DAY.isoformat(), 3),
        ((DAY + timedelta(hours=1)).isoformat(), 3),
    ]
    by_app = {
        g["metadata.app"]: g["generations"] for g in report(store, _spec(by=("metadata.app",)))
    }
    assert by_app == {"": 5, "x": 1}
    only_x = report(store, _spec(metadata={"app": "x"}))
    assert [(g["generations"], g["accepted"]) for g in only_x] == [(1, 0)]


def test_filters_and_thresholds(scenario: InProcessServer) -> None:
    store = scenario.runtime.store
    only_b = report(store, _spec(models=("B",)))
    assert [g["generations"] for g in only_b] == [2]
    # 0.6 is on the rollup's grid, 0.93 is not (exact path): both are computed.
    for threshold, kept_a in ((0.6, 0.5), (0.93, 0.0), (0.45, 1.0)):
        for exact in (False, True):
            groups = {
                g["model"]: g
                for g in report(store, _spec(by=("model",), threshold=threshold, exact=exact))
            }
            assert groups["A"]["kept_rate"]["30"] == kept_a, (threshold, exact)


def test_empty_window_and_empty_denominators(scenario: InProcessServer) -> None:
    store = scenario.runtime.store
    assert report(store, _spec(since=DAY - timedelta(days=3), until=DAY - timedelta(days=2))) == []
    assert report(store, _spec(project="nobody")) == []
    b = report(store, _spec(models=("B",), prompt_versions=("p2",)))[0]
    assert b["generations"] == 1
    assert b["acceptance_rate"] == 0.0
    assert b["vote_score"] is None
    assert b["correction_similarity"] is None
    assert b["latency_ms_p50"] is None
    assert all(v is None for v in b["kept_rate"].values())


def test_replayed_duplicates_do_not_count_twice(scenario: InProcessServer) -> None:
    # Replays older than the writer's window are stored again; the fold must not care.
    store = scenario.runtime.store
    store.command("INSERT INTO generations SELECT * FROM generations WHERE generation_id = 'g4'")
    store.command("INSERT INTO feedback SELECT * FROM feedback WHERE generation_id = 'g4'")
    scenario.runtime.analytics.run_now()
    for exact in (False, True):
        b = next(g for g in report(store, _spec(by=("model",), exact=exact)) if g["model"] == "B")
        _check(b, EXPECTED["B"])
