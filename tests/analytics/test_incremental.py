"""A run after new events reads only what they touch, and equals a full recomputation."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

from kept_analytics.outcomes import RunResult, spans
from kept_analytics.report import ReportSpec, report
from kept_storage import Store
from tests.analytics.test_rebuild import rounded
from tests.helpers import InProcessServer
from tests.synthetic import load


def _rows_read(store: Store) -> int:
    # The engine's own counter of rows read by queries (chDB has no query_log).
    return int(store.scalar("SELECT value FROM system.events WHERE event = 'SelectedRows'") or 0)


def _run(server: InProcessServer, full: bool = False) -> RunResult:
    result = server.runtime.analytics.run_now(full=full)
    assert result is not None, "the server's own runner holds the lease"
    return result


def test_incremental_run_reads_only_affected_generations(server: InProcessServer) -> None:
    store = server.runtime.store
    now = datetime.now(timezone.utc)
    load(store, 100_000, now - timedelta(days=10), now - timedelta(hours=1), project="demo")
    before = _rows_read(store)
    full = _run(server)
    full_read = _rows_read(store) - before
    assert full.generations == 100_000

    time.sleep(0.1)
    # A late vote on an 8-day-old generation, and one new generation.
    store.command(
        "INSERT INTO feedback (project, ts, generation_id, type, event_id, received_at, value) "
        "VALUES ('demo', now64(3), 'g5000', 'vote', generateUUIDv4(), now64(3), 1)"
    )
    load(store, 1, now - timedelta(minutes=5), now, project="demo", prefix="new-")
    before = _rows_read(store)
    incremental = _run(server)
    incremental_read = _rows_read(store) - before
    assert incremental.generations == 2
    assert incremental.days == 2
    assert incremental_read < full_read / 20, (incremental_read, full_read)

    spec = ReportSpec(
        since=now - timedelta(days=11), until=now, by=("model", "prompt_version", "day")
    )
    after_increments = rounded(report(store, spec))
    _run(server, full=True)
    assert rounded(report(store, spec)) == after_increments
    assert sum(g["generations"] for g in after_increments) == 100_001


def test_idle_run_touches_nothing(server: InProcessServer) -> None:
    _run(server)
    assert _run(server).generations == 0


def test_consecutive_days_are_folded_together_up_to_the_limit() -> None:
    d = [date(2026, 11, day) for day in range(1, 7)]
    counts = [(d[0], 3), (d[1], 1), (d[2], 9), (d[3], 12), (d[4], 2), (d[5], 1)]
    assert spans(counts, 10) == [(d[0], d[1]), (d[2], d[2]), (d[3], d[3]), (d[4], d[5])]
    assert spans(counts, 1000) == [(d[0], d[5])]
    assert spans([], 10) == []
