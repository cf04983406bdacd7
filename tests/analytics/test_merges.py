"""Merges collapse a generation's first outcome version with its cancel row: what counts
once per generation (its latency, in the rollup and in the exact report) must not depend
on when the engine merges."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from kept_analytics.outcomes import RunResult
from kept_analytics.report import ReportSpec, report
from kept_storage import Store
from tests.helpers import InProcessServer, feedback, generation, store_events

# Two fast generations and a slow one: counted once, the median is the fast latency;
# counted twice or more, the slow one would be the median.
FAST_MS, SLOW_MS = 100, 1_000


def _run(server: InProcessServer) -> RunResult:
    result = server.runtime.analytics.run_now()
    assert result is not None, "the server's own runner holds the lease"
    return result


def _latencies(store: Store, spec: ReportSpec) -> list[tuple[Any, Any]]:
    """(p50, p95) from the rollup, then from the outcome rows."""
    return [
        (group["latency_ms_p50"], group["latency_ms_p95"])
        for exact in (False, True)
        for group in report(store, spec.model_copy(update={"exact": exact}))
    ]


def test_a_latency_counts_once_however_often_the_generation_is_refolded_and_merged(
    server: InProcessServer,
) -> None:
    store = server.runtime.store
    now = datetime.now(timezone.utc)
    at = now - timedelta(hours=2)
    store_events(
        store,
        [
            generation(generation_id="fast-1", ts=at.isoformat(), latency_ms=FAST_MS),
            generation(generation_id="fast-2", ts=at.isoformat(), latency_ms=FAST_MS),
            generation(generation_id="slow", ts=at.isoformat(), latency_ms=SLOW_MS),
        ],
        now,
    )
    assert _run(server).generations == 3
    spec = ReportSpec(since=at - timedelta(hours=1), until=now, by=("model",))
    first = _latencies(store, spec)
    assert [p50 for p50, _ in first] == [FAST_MS, FAST_MS], first
    assert all(p95 > FAST_MS for _, p95 in first), first

    # Changed minds on the slow one: each vote refolds it, and a merge after each run
    # collapses the version it cancelled (the first one, after the first vote). Judging
    # "first" by the rows marked so, the second and fourth refolds were firsts again.
    for minute, value in enumerate((1, -1, 1, -1)):
        time.sleep(0.01)  # the job reads rows inserted after its last watermark (ms)
        vote = feedback("vote", "slow", ts=(at + timedelta(minutes=minute + 1)).isoformat(),
                        value=value)  # fmt: skip
        store_events(store, [vote], now)
        assert _run(server).generations == 1
        store.command("OPTIMIZE TABLE outcomes FINAL")
        assert _latencies(store, spec) == first, minute

    # Merged: one live row per generation, and the slow one's is not its first.
    assert store.rows(
        "SELECT generation_id, is_first, sign FROM outcomes ORDER BY generation_id"
    ) == [("fast-1", 1, 1), ("fast-2", 1, 1), ("slow", 0, 1)]
    assert report(store, spec)[0]["votes_down"] == 1
