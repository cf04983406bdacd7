"""A full rebuild writes exactly the outcomes that a series of incremental runs wrote."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kept_analytics import rebuild
from kept_analytics.lease import Lease
from kept_analytics.outcomes import Deposed, OutcomesJob, RunResult
from kept_analytics.report import ReportSpec, report
from kept_storage import Store
from tests.helpers import InProcessServer, feedback, generation, store_events
from tests.synthetic import load

# Live outcome per generation: what its versions sum to (versions and the is_first of
# refolds differ between the two ways; everything users see must not). Maps and arrays
# sorted: their order is not part of an outcome.
_OUTCOMES = """
SELECT project, generation_id, toString(gen_ts), model, prompt_version,
    toString(mapSort(metadata)), latency_ms, output_tokens, cost_usd, accepted, vote,
    corrected, round(correction_similarity, 9), toString(mapSort(survival)),
    toString(arraySort(actions)), toString(mapSort(scores)), sum(sign) AS live
FROM outcomes
GROUP BY ALL
HAVING live != 0
ORDER BY ALL
"""
# (Which rows are marked is_first is no part of it: merges collapse a first version with
# its cancel at any time. That a latency counts once is test_merges.py's.)
# (Keys that cancellations brought to zero are no difference.)
_ROLLUP = """
SELECT project, hour, model, prompt_version, sum(generations), sum(accepted), sum(votes_up),
    sum(votes_down), sum(corrected), round(sum(similarity_sum), 6), sum(similarity_n),
    toString(mapSort(mapFilter((k, v) -> v != 0, sumMap(survival_hist)))),
    toString(mapSort(mapFilter((k, v) -> v != 0, sumMap(actions)))),
    round(sum(cost_usd_total), 9), sum(output_tokens_total)
FROM outcomes_hourly
GROUP BY ALL
ORDER BY ALL
"""


def _run(server: InProcessServer, full: bool = False) -> RunResult:
    result = server.runtime.analytics.run_now(full=full)
    assert result is not None, "the server's own runner holds the lease"
    return result


def rounded(value: Any) -> Any:
    """Floats to 9 digits: sums of similarities and costs in another order differ in the
    last bit."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def _snapshot(store: Store, spec: ReportSpec) -> dict[str, Any]:
    return {
        "outcomes": store.rows(_OUTCOMES),
        "rollup": store.rows(_ROLLUP),
        "report": rounded(report(store, spec)),
        "exact": rounded(report(store, spec.model_copy(update={"exact": True}))),
    }


def _events(now: datetime) -> list[dict[str, Any]]:
    """Generations of the last week with the feedback cases a fold must get right."""
    day = timedelta(days=1)
    old, recent = (now - 6 * day).isoformat(), (now - day).isoformat()
    return [
        generation(
            generation_id="e-old",
            ts=old,
            output="hello world",
            latency_ms=120,
            cost_usd=0.01,
            output_tokens=7,
            metadata={"app": "x"},
        ),
        generation(generation_id="e-recent", ts=recent, output="abc", model="other"),
        # A retry past the dedup window: one generation, the first value set wins.
        generation(generation_id="e-retry", ts=recent, metadata={}),
        generation(generation_id="e-retry", ts=recent, model="later", metadata={"app": "y"}),
        # An OTel span without its messages and the supplement that brings them; a
        # supplement alone, which is no generation (yet).
        generation(generation_id="e-span", ts=recent, output=None, latency_ms=300),
        generation(generation_id="e-span", ts=recent, output="from the event", supplement=True),
        generation(generation_id="e-supplement", ts=recent, supplement=True),
        # An id that project "a" of the rebuild tests also has (single rows there): a
        # retry here makes it an id of several rows, however many each project has.
        generation(generation_id="g5", ts=recent, model="shared", metadata={}),
        generation(generation_id="g5", ts=recent, model="later", metadata={"app": "z"}),
        feedback("vote", "e-old", ts=old, value=-1),
        feedback("action", "e-old", ts=old, name="copy"),
        feedback("correction", "e-old", ts=old, text="hello word"),
        feedback("survival", "e-recent", ts=recent, checkpoint_s=30, score=0.9),
        feedback("score", "e-recent", ts=recent, name="judge", value=0.4, source="llm"),
    ]


def _late(now: datetime) -> list[dict[str, Any]]:
    """Changed minds, days after the generation: the latest event of a kind wins."""
    return [
        feedback("vote", "e-old", ts=now.isoformat(), value=1),
        feedback("correction", "e-old", ts=now.isoformat(), text="hello, world"),
        feedback("action", "e-old", ts=now.isoformat(), name="accept"),
        feedback("survival", "e-recent", ts=now.isoformat(), checkpoint_s=30, score=0.2),
        feedback("survival", "e-recent", ts=now.isoformat(), checkpoint_s=300, score=0.1),
    ]


@pytest.mark.parametrize("span", [rebuild.SPAN_GENERATIONS, 700, 150])
def test_a_rebuild_equals_the_incremental_runs(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch, span: int
) -> None:
    """`span` 700 folds the week in several spans: late feedback must still find its
    generation in an earlier span; 150 splits days into parts by generation id."""
    monkeypatch.setattr(rebuild, "SPAN_GENERATIONS", span)
    store = server.runtime.store
    now = datetime.now(timezone.utc)
    # The store filled in increments, with a run after each.
    load(store, 2_000, now - timedelta(days=7), now - timedelta(days=3), project="a")
    store_events(store, _events(now), now)
    # (e-supplement is staged as touched and folds into nothing.)
    assert _run(server).generations == 2_000 + 6
    time.sleep(0.05)
    load(store, 1_000, now - timedelta(days=3), now - timedelta(hours=1), project="a",
         offset=2_000)  # fmt: skip
    load(store, 500, now - timedelta(days=5), now, project="b", prefix="b-")
    assert _run(server).generations == 1_500
    time.sleep(0.05)
    store_events(store, _late(now), now)
    # Late votes on generations of both projects, days after them.
    store.command(
        "INSERT INTO feedback (project, ts, generation_id, type, event_id, received_at, value) "
        "SELECT if(number % 2, 'a', 'b'), now64(3), "
        "if(number % 2, concat('g', toString(number * 7)), concat('b-', toString(number))), "
        "'vote', generateUUIDv4(number), now64(3), -1 FROM numbers(200)"
    )
    assert _run(server).generations == 2 + 200

    spec = ReportSpec(since=now - timedelta(days=8), until=now + timedelta(minutes=1),
                      by=("model", "prompt_version", "day"))  # fmt: skip
    incremental = _snapshot(store, spec)
    generations = 2_000 + 1_000 + 500 + 5
    assert len(incremental["outcomes"]) == generations

    full = _run(server, full=True)
    assert full.generations == generations
    rebuilt = _snapshot(store, spec)
    for part, rows in incremental.items():
        assert rebuilt[part] == rows, part

    # A run after the rebuild folds only what is new, and still agrees.
    assert _run(server).generations == 0
    store_events(store, [feedback("vote", "e-recent", ts=now.isoformat(), value=1)], now)
    assert _run(server).generations == 1
    after = _snapshot(store, spec)
    _run(server, full=True)
    assert _snapshot(store, spec) == after


def test_the_fold_keeps_the_latest_event_of_each_kind(server: InProcessServer) -> None:
    store = server.runtime.store
    now = datetime.now(timezone.utc)
    store_events(store, _events(now), now)
    store_events(store, _late(now), now)
    _run(server, full=True)
    rows = store.rows(
        "SELECT generation_id, vote, accepted, corrected, round(correction_similarity, 6), "
        "mapSort(survival), arraySort(actions), scores, model, prompt_version, metadata "
        "FROM outcomes WHERE sign = 1 ORDER BY generation_id"
    )
    by_id = {row[0]: row[1:] for row in rows}
    # "hello, world" against "hello world": one edit over 12 characters.
    assert by_id["e-old"][:5] == (1, 1, 1, round(1 - 1 / 12, 6), {})
    assert by_id["e-old"][5] == ["accept", "copy"]
    assert by_id["e-recent"][4] == {30: 0.2, 300: 0.1}
    assert by_id["e-recent"][6] == {"judge": 0.4}
    # The first row's metadata was empty: the retry's fills it.
    assert by_id["e-retry"][8:] == ("summarize@1", {"app": "y"})
    assert by_id["g5"][8:] == ("summarize@1", {"app": "z"})


def test_a_generation_whose_rows_span_two_spans_is_folded_once(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry stored past midnight puts a generation's rows on two days; with a span per
    day, the rebuild must fold it once, in the span of its first row, as the incremental
    run does."""
    monkeypatch.setattr(rebuild, "SPAN_GENERATIONS", 1)
    store = server.runtime.store
    now = datetime.now(timezone.utc)
    first = (now - timedelta(days=2)).replace(hour=23, minute=59)
    retry = first + timedelta(minutes=2)  # the next day
    events = [
        generation(generation_id="midnight", ts=first.isoformat(), model="m"),
        generation(generation_id="midnight", ts=retry.isoformat(), model="m"),
        generation(generation_id="other", ts=retry.isoformat(), model="m"),
    ]
    store_events(store, events, now)
    _run(server)
    live = "SELECT generation_id, toString(gen_ts), sum(sign) FROM outcomes GROUP BY ALL HAVING sum(sign) != 0 ORDER BY ALL"  # noqa: E501
    incremental = store.rows(live)
    assert [row[0] for row in incremental] == ["midnight", "other"]
    _run(server, full=True)
    assert store.rows(live) == incremental


def test_until_its_swap_a_rebuild_changes_nothing_and_deposed_it_never_does(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rebuild writes into shadows and swaps them in at the end: readers see the old
    outcomes meanwhile, and a rebuild deposed before its swap leaves them as they were."""
    store = server.runtime.store
    now = datetime.now(timezone.utc)
    store_events(store, _events(now), now)
    _run(server)
    spec = ReportSpec(since=now - timedelta(days=8), until=now + timedelta(minutes=1))
    before = _snapshot(store, spec)
    assert before["report"][0]["accepted"] == 1  # e-old, by its copy
    # A rebuild with another accept set (what a change of KEPT_ACCEPT_ACTIONS runs) would
    # say 0; its term ends while it computes the rollup.
    name = f"test-{uuid.uuid4().hex[:8]}"
    holder, successor = Lease(store, 1, name), Lease(store, 20, name)
    assert holder.acquire() == 1
    fence = holder.fence()
    assert fence is not None
    fill_rollup = rebuild._fill_rollup
    seen: list[dict[str, Any]] = []

    def deposed_meanwhile(*args: Any) -> None:
        fill_rollup(*args)
        seen.append(_snapshot(store, spec))
        time.sleep(1.2)
        assert successor.acquire() == 2

    monkeypatch.setattr(rebuild, "_fill_rollup", deposed_meanwhile)
    job = OutcomesJob(store, accept_actions=("accept",), lag_s=0)
    with pytest.raises(Deposed):
        job.run(fence, full=True)
    assert seen == [before]
    assert _snapshot(store, spec) == before
    assert not store.rows(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND name LIKE '%\\_rebuild'"
    )

    monkeypatch.setattr(rebuild, "_fill_rollup", fill_rollup)
    fence = successor.fence()
    assert fence is not None
    assert job.run(fence, full=True).generations == 5
    after = _snapshot(store, spec)
    assert after["report"][0]["accepted"] == after["exact"][0]["accepted"] == 0
