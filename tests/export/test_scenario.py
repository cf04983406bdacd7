"""Which generations each filter exports, and the exact records, on a scenario worked
out by hand (tests/export/scenario.py), through the library on the real engine."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kept_analytics.export import ExportSpec, Summary, default_redact, run
from tests.export.scenario import CHAT_E2, DAY, load, sft_lines
from tests.helpers import InProcessServer


@pytest.fixture
def scenario(server: InProcessServer) -> InProcessServer:
    load(server)
    return server


def export(server: InProcessServer, **spec: Any) -> tuple[list[dict[str, Any]], Summary]:
    summary = Summary()
    records = run(server.runtime.store, ExportSpec(**spec), default_redact, summary)
    return [r for _, r in records], summary


def test_default_openai_chat_is_what_users_endorsed(scenario: InProcessServer) -> None:
    records, summary = export(scenario)
    # endorsed: e12, e1, e2 (corrected), e4, e5 (no output), e6 (= e1), e9, e10
    assert records == sft_lines("e12", "e1", "e2", "e4", "e9", "e10")
    assert summary.as_dict() == {
        "written": 6,
        "parts": {"train": 6},
        "skipped": {"duplicate": 1, "no_output": 1},
    }


def test_exact_line_of_a_corrected_chat_generation(scenario: InProcessServer) -> None:
    records, _ = export(scenario, corrected=True)
    assert records == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Q2"},
                {"role": "assistant", "content": "A2 fixed"},
            ]
        }
    ]


CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"models": ("B",)}, ["e4"]),  # e5: no output; e7: down-voted
    ({"prompt_versions": ("p2",)}, []),  # e3, e8 not endorsed; e5 no output
    ({"since": DAY}, ["e1", "e2", "e4", "e9", "e10"]),
    ({"until": DAY}, ["e12"]),
    # e6 repeats e1, which is outside this window
    ({"since": DAY + timedelta(minutes=3), "until": DAY + timedelta(minutes=9)}, ["e4", "e6"]),
    ({"accepted": True}, ["e12", "e1", "e4", "e7", "e9"]),  # an explicit filter: e7 counts
    ({"accepted": False}, ["e2", "e3", "e8", "e10", "e11"]),
    ({"vote": 1}, ["e1", "e4", "e10"]),
    ({"vote": -1}, ["e2", "e3", "e7"]),
    ({"corrected": True}, ["e2"]),
    ({"kept_at": 30}, ["e4"]),
    ({"kept_at": 30, "threshold": 0.3}, ["e1", "e4"]),
    ({"kept_at": 120}, []),
    ({"min_scores": {"helpfulness": 0.8}}, ["e9"]),
    ({"min_scores": {"helpfulness": 0.5}}, ["e9", "e10"]),
    ({"metadata": {"app": "x"}}, ["e9"]),
    ({"models": ("A",), "vote": 1}, ["e1", "e10"]),
    ({"accepted": True, "vote": 1, "kept_at": 30}, ["e4"]),
    ({"project": "other"}, []),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_filters(scenario: InProcessServer, spec: dict[str, Any], expected: list[str]) -> None:
    records, _ = export(scenario, **spec)
    assert records == sft_lines(*expected)


def test_no_dedup_keeps_the_repeat(scenario: InProcessServer) -> None:
    records, summary = export(scenario, dedup=False)
    assert records == sft_lines("e12", "e1", "e2", "e4", "e6", "e9", "e10")
    assert "duplicate" not in summary.skipped


def test_limit_stops_after_n(scenario: InProcessServer) -> None:
    records, summary = export(scenario, limit=2)
    assert records == sft_lines("e12", "e1")
    assert summary.written == 2


def _turn(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_dpo_pairs(scenario: InProcessServer) -> None:
    records, summary = export(scenario, format="dpo")
    assert records == [
        # e2's correction over its output
        {"prompt": CHAT_E2, "chosen": _turn("A2 fixed"), "rejected": _turn("A2")},
        # prompt Q3: e4 (up-voted, kept) over e3 (down-voted) and e8 (regenerated)
        {"prompt": _user("Q3"), "chosen": _turn("A4"), "rejected": _turn("A3")},
        {"prompt": _user("Q3"), "chosen": _turn("A4"), "rejected": _turn("A8")},
    ]
    assert summary.written == 3


def test_dpo_standard_form_skips_chat_input(scenario: InProcessServer) -> None:
    records, summary = export(scenario, format="dpo", dpo_form="standard")
    assert records == [
        {"prompt": "Q3", "chosen": "A4", "rejected": "A3"},
        {"prompt": "Q3", "chosen": "A4", "rejected": "A8"},
    ]
    assert summary.skipped == {"chat_input_in_standard_form": 1}


def test_dpo_filters_apply_to_the_chosen_side(scenario: InProcessServer) -> None:
    records, _ = export(scenario, format="dpo", kept_at=120)
    assert records == []  # e2 was never accepted, e4 not kept at 120 s
    records, _ = export(scenario, format="dpo", models=("A",))
    assert [r["rejected"] for r in records] == [_turn("A2")]  # e4 (model B) is out


def test_jsonl_has_every_generation_and_its_feedback(scenario: InProcessServer) -> None:
    records, summary = export(scenario, format="jsonl")
    ids = [r["generation_id"] for r in records]
    assert ids == ["e12", "e1", "e2", "e3", "e4", "e7", "e8", "e9", "e10", "e11"]
    assert summary.skipped == {"duplicate": 1, "no_output": 1}
    e4 = records[ids.index("e4")]
    assert e4 == {
        "generation_id": "e4",
        "project": "demo",
        "ts": (DAY + timedelta(minutes=4)).isoformat(timespec="milliseconds")[:-6] + "Z",
        "model": "B",
        "prompt_version": "p1",
        "metadata": {},
        "prompt": _user("Q3"),
        "completion": _turn("A4"),
        "output": "A4",
        "correction": None,
        "accepted": True,
        "vote": 1,
        "corrected": False,
        "survival": {"30": 0.9, "120": 0.3},
        "scores": {},
        "actions": ["accept"],
    }
    e2 = records[ids.index("e2")]
    assert (e2["completion"], e2["output"], e2["correction"], e2["vote"]) == (
        _turn("A2 fixed"),
        "A2",
        "A2 fixed",
        -1,
    )


def test_late_feedback_is_exported_after_the_job_runs(scenario: InProcessServer) -> None:
    from tests.export.scenario import fb

    assert scenario.post([fb("vote", "e11", 30, value=1)]).status == 202
    scenario.runtime.analytics.run_now()
    records, _ = export(scenario, vote=1)
    assert records == sft_lines("e1", "e4", "e10", "e11")


def test_dpo_pairs_read_in_buckets_are_the_same(
    scenario: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, _ = export(scenario, format="dpo")
    from kept_analytics.export import query

    monkeypatch.setattr(query, "PAIR_ROWS_PER_PASS", 1)  # 5 repeated-prompt rows: 5 passes
    bucketed, _ = export(scenario, format="dpo")
    assert bucketed == whole
