"""The analytics lease: one holder at a time, handed over on release or expiry, and a
deposed holder's writes do not count (on both stores; the kill of in-flight statements
needs a server)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone

import pytest

from kept_analytics.lease import Fence, Lease
from kept_analytics.outcomes import EPOCH, Deposed, OutcomesJob
from kept_analytics.report import ReportSpec, report
from kept_analytics.runner import AnalyticsBusy, run_once
from kept_storage import StorageError, Store, migrate
from tests.helpers import (
    InProcessServer,
    feedback,
    generation,
    now_iso,
    server_database,
    store_events,
)


@pytest.fixture
def store(server: InProcessServer) -> Store:
    """The session server's store (one embedded store per process), outcomes emptied."""
    return server.runtime.store


@pytest.fixture
def name() -> str:
    """A lease of the test's own (the server's runner uses the analytics lease)."""
    return f"test-{uuid.uuid4().hex[:8]}"


def test_of_many_racing_for_a_free_lease_exactly_one_wins(store: Store, name: str) -> None:
    leases = [Lease(store, 20, name) for _ in range(8)]
    start = threading.Barrier(len(leases))
    terms: dict[int, int | None] = {}

    def race(i: int) -> None:
        start.wait()
        terms[i] = leases[i].acquire()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(leases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winners = [i for i, term in terms.items() if term is not None]
    assert len(terms) == 8 and len(winners) == 1, terms
    assert terms[winners[0]] == 1
    state = leases[0].state()
    assert state is not None and state.holder == leases[winners[0]].holder


def test_a_released_lease_passes_at_once_an_unrenewed_one_when_it_expires(
    store: Store, name: str
) -> None:
    a, b, c = Lease(store, 20, name), Lease(store, 2, name), Lease(store, 20, name)
    assert a.acquire() == 1
    assert b.acquire() is None and a.renew()
    a.release()
    assert b.acquire() == 2  # released: no wait
    assert not a.renew() and a.term is None
    # b stops renewing; its own lease time (2 s), not c's, says when it expires.
    assert c.acquire() is None
    time.sleep(2.5)
    assert c.acquire() == 3
    assert not b.renew()
    state = c.state()
    assert state is not None and (state.term, state.holder) == (3, c.holder)
    assert not state.expired and state.lease_s == 20


def _accepted(store: Store) -> list[tuple[int, int]]:
    spec = ReportSpec(
        since=datetime(2020, 1, 1, tzinfo=timezone.utc), until=datetime.now(timezone.utc)
    )
    return [(g["generations"], g["accepted"]) for g in report(store, spec)]


def test_a_deposed_holder_writes_nothing_that_counts(store: Store, name: str) -> None:
    gen = generation(ts=now_iso())
    store_events(
        store,
        [gen, feedback("action", gen["generation_id"], name="accept")],
        datetime.now(timezone.utc),
    )
    job = OutcomesJob(store, lag_s=0)
    paused, successor = Lease(store, 2, name), Lease(store, 20, name)
    assert paused.acquire() == 1
    stale = paused.fence()
    assert stale is not None
    time.sleep(2.5)  # the holder "sleeps" past its lease; another takes over
    assert successor.acquire() == 2
    # The old holder wakes up and runs: every write is fenced off, and it learns why.
    with pytest.raises(Deposed):
        job.run(stale)
    assert store.scalar("SELECT count() FROM outcomes") == 0
    assert job.watermark() == EPOCH
    fence = successor.fence()
    assert fence is not None
    assert job.run(fence).generations == 1
    assert _accepted(store) == [(1, 1)]
    # Once more with folded data: the old holder's cancels and versions would double it.
    with pytest.raises(Deposed):
        job.run(stale, full=True)
    with pytest.raises(Deposed):
        job.run(stale)
    assert _accepted(store) == [(1, 1)]
    assert store.scalar("SELECT sum(sign) FROM outcomes") == 1


def test_run_once_refuses_while_another_holds_the_lease(store: Store, name: str) -> None:
    holder = Lease(store, 20, name)
    assert holder.acquire() == 1
    with pytest.raises(AnalyticsBusy):
        run_once(OutcomesJob(store, lag_s=0), Lease(store, 20, name))
    holder.release()
    assert run_once(OutcomesJob(store, lag_s=0), Lease(store, 20, name)).generations == 0


@pytest.mark.clickhouse_server
def test_a_new_holder_stops_the_statements_of_older_terms(clickhouse_url: str) -> None:
    with server_database(clickhouse_url) as store:
        migrate(store)
        old = Lease(store, 1)
        assert old.acquire() is not None
        fence = old.fence()
        assert fence is not None
        outcome: list[BaseException | None] = []

        def slow_statement(fence: Fence) -> None:
            try:  # ~20 s unless killed
                store.rows(
                    "SELECT sum(sleepEachRow(0.5)) FROM numbers(40) SETTINGS max_block_size = 1",
                    settings=fence.settings(),
                )
                outcome.append(None)
            except BaseException as exc:  # what ended it is the point
                outcome.append(exc)

        thread = threading.Thread(target=slow_statement, args=(fence,))
        thread.start()
        time.sleep(1.5)
        started = time.monotonic()
        assert Lease(store, 20).acquire() is not None
        thread.join(20)
        assert time.monotonic() - started < 10
        assert len(outcome) == 1 and isinstance(outcome[0], StorageError), outcome
