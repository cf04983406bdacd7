"""Deduplication, the train/validation split, sampling and redaction, on exported data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kept_analytics.export import ExportSpec, Summary, default_redact, no_redact, run
from kept_analytics.export.redact import load_redactor
from tests.export.scenario import at
from tests.helpers import InProcessServer, feedback, generation

PROMPTS = 300


def _load_many(server: InProcessServer) -> None:
    """300 prompts; every 10th asked 3 times with different answers, every 7th answered
    twice with the same text (duplicates)."""
    events: list[dict[str, Any]] = []
    n = 0
    for p in range(PROMPTS):
        answers = [f"answer {p}.{k}" for k in range(3 if p % 10 == 0 else 1)]
        if p % 7 == 0:
            answers.append(answers[0])
        for answer in answers:
            gid = f"s{n}"
            events.append(
                generation(generation_id=gid, ts=at(n / 100), input=f"prompt {p}", output=answer)
            )
            events.append(feedback("action", gid, ts=at(n / 100 + 1), name="accept"))
            n += 1
    assert server.post(events).status == 202
    server.runtime.analytics.run_now()


def _export(server: InProcessServer, **spec: Any) -> tuple[list[tuple[str, Any]], Summary]:
    summary = Summary()
    out = list(run(server.runtime.store, ExportSpec(**spec), default_redact, summary))
    return out, summary


def _prompt(record: dict[str, Any]) -> str:
    return str(record["messages"][0]["content"])


def test_dedup_split_and_sample(server: InProcessServer) -> None:
    _load_many(server)
    expected_examples = PROMPTS + 2 * (PROMPTS // 10)  # 360 distinct (prompt, answer)
    duplicates = len(range(0, PROMPTS, 7))

    out, summary = _export(server, split=0.8)
    assert summary.written == expected_examples
    assert summary.skipped == {"duplicate": duplicates}
    pairs = [(_prompt(r), r["messages"][-1]["content"]) for _, r in out]
    assert len(set(pairs)) == len(pairs)
    train = {_prompt(r) for part, r in out if part == "train"}
    validation = {_prompt(r) for part, r in out if part == "validation"}
    assert train and validation and not train & validation
    assert train | validation == {f"prompt {p}" for p in range(PROMPTS)}
    # By prompt: 300 draws at 0.8 have a standard deviation of about 7 prompts.
    assert abs(len(train) / PROMPTS - 0.8) < 0.08

    again, _ = _export(server, split=0.8)
    assert again == out  # deterministic

    sampled, summary = _export(server, sample=0.25)
    assert abs(summary.written / expected_examples - 0.25) < 0.08
    assert summary.skipped["not_sampled"] == expected_examples - summary.written
    assert sampled == _export(server, sample=0.25)[0]
    kept = {json.dumps(r) for _, r in sampled}
    assert kept <= {json.dumps(r) for _, r in out}


def test_export_redacts_before_anything_leaves(server: InProcessServer) -> None:
    secret = "mail jane.doe@example.com or call +1 (415) 555-0100, key sk-abcDEF1234567890xyz"
    chat = [
        {"role": "system", "content": "Agent for bob@corp.io"},
        {"role": "user", "content": secret},
    ]
    events = [
        generation(
            generation_id="r1", ts=at(1), input=chat, output="Reply to jane.doe@example.com"
        ),
        feedback("correction", "r1", ts=at(2), text="Wrote to +44 20 7946 0958 instead"),
    ]
    assert server.post(events).status == 202
    server.runtime.analytics.run_now()
    out, _ = _export(server)
    assert out == [
        (
            "train",
            {
                "messages": [
                    {"role": "system", "content": "Agent for [EMAIL]"},
                    {"role": "user", "content": "mail [EMAIL] or call [PHONE], key [API_KEY]"},
                    {"role": "assistant", "content": "Wrote to [PHONE] instead"},
                ]
            },
        ),
    ]
    dpo, _ = _export(server, format="dpo")
    assert dpo[0][1]["rejected"] == [{"role": "assistant", "content": "Reply to [EMAIL]"}]
    raw = list(run(server.runtime.store, ExportSpec(), no_redact, Summary()))
    assert raw[0][1]["messages"][1]["content"] == secret


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to a.b+c@mail.example.org.", "write to [EMAIL]."),
        ("call 0171 555 0123 now", "call [PHONE] now"),
        ("call +49-30-1234567", "call [PHONE]"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345", "Authorization: [API_KEY]"),
        ("AKIAIOSFODNN7EXAMPLE and ghp_0123456789abcdefghijABCDEFGHIJ", "[API_KEY] and [API_KEY]"),
        # not personal data: dates, versions, small numbers, ordinary words
        ("on 2026-11-21 at 10:30, v1.2.3, 42 items, order 1234567", None),
        ("skip-the-line task", None),
    ],
)
def test_default_redaction_patterns(text: str, expected: str | None) -> None:
    assert default_redact(text) == (expected or text)


def test_custom_redaction_hook_is_loaded_by_path() -> None:
    hook = load_redactor("tests.export.hooks:shout")
    assert hook("quiet") == "QUIET"
    for bad in ("tests.export.hooks", "no.such.module:f", "tests.export.hooks:missing"):
        with pytest.raises(ValueError, match=r"hook|import|callable"):
            load_redactor(bad)


def test_a_hook_redacts_the_same_texts_on_the_server_and_in_the_cli() -> None:
    """A record redacted as the store's side builds it equals the unredacted record
    redacted by `kept export` after a remote server sent it (one walker does both)."""
    from datetime import datetime

    from kept_analytics.export import formats
    from kept_analytics.export.query import Generation
    from kept_wire.export import redact_record

    gen = Generation(
        "g1", "shop", datetime(2026, 1, 2, 3, 4, 5), "gpt", "v1",
        {"model": "x@example.com", "team": "y"}, True, 1, True, {30: 1.0}, {"judge": 0.9},
        ("accept", "copy"), "chat", json.dumps([{"role": "user", "content": "hi"}]), True,
        "out", "fixed",
    )  # fmt: skip
    hook = load_redactor("tests.export.hooks:shout")
    for make in (formats.jsonl, formats.openai_chat):
        here, raw = make(gen, hook), make(gen, no_redact)
        assert not isinstance(here, str) and not isinstance(raw, str)
        assert here.record == redact_record(raw.record, hook)
    record = formats.jsonl(gen, hook)
    assert not isinstance(record, str)
    assert record.record["metadata"] == {"model": "X@EXAMPLE.COM", "team": "Y"}
    assert (record.record["model"], record.record["actions"]) == ("gpt", ["accept", "copy"])
    assert record.record["prompt"] == [{"role": "user", "content": "HI"}]
