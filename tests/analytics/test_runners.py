"""`kept analytics run --every` as a role: several runners on one ClickHouse server, one
runs at a time, a killed holder is replaced, a paused one that wakes up after losing its
lease changes nothing, and the report stays exact throughout."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kept_analytics.report import ReportSpec, report
from kept_storage import Store
from tests.helpers import (
    RoleProcess,
    feedback,
    generation,
    kept_env,
    now_iso,
    role_process,
    run_kept,
    server_database,
    store_events,
)

pytestmark = [pytest.mark.clickhouse_server, pytest.mark.slow]
LEASE_S = 2.0
TAKEOVER_BOUND_S = 1.25 * LEASE_S + 1 + 3
"""Expiry, plus a runner's interval, plus slack for a loaded machine."""


@pytest.fixture
def database(clickhouse_url: str) -> Iterator[tuple[Store, dict[str, str]]]:
    with server_database(clickhouse_url) as store:
        yield store, {"KEPT_DSN": clickhouse_url, "KEPT_DATABASE": store.database}


def _workload(store: Store, generations: int, accepted: int) -> None:
    events = []
    for i in range(generations):
        gen = generation(ts=now_iso())
        events.append(gen)
        if i < accepted:
            events.append(feedback("action", gen["generation_id"], name="accept"))
    store_events(store, events, datetime.now(timezone.utc))


def _figures(store: Store) -> tuple[int, int]:
    """(generations, accepted) as the report shows them."""
    now = datetime.now(timezone.utc)
    groups = report(store, ReportSpec(since=now - timedelta(days=1), until=now))
    gens = sum(g["generations"] for g in groups)
    return gens, sum(g["accepted"] for g in groups)


def _status(env: dict[str, str], data: Path) -> dict[str, object]:
    done = run_kept("analytics", "status", "--format", "json", "--data", str(data), **env)
    assert done.returncode == 0, done.stderr
    status: dict[str, object] = json.loads(done.stdout)
    return status


def _holder_pid(status: dict[str, object]) -> int | None:
    holder = status["holder"]
    return int(str(holder).rsplit(":", 1)[1]) if holder else None


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def test_runners_share_one_lease_and_hand_over(
    database: tuple[Store, dict[str, str]], tmp_path: Path
) -> None:
    store, store_env = database
    env = {**store_env, "KEPT_ANALYTICS_LEASE_S": str(LEASE_S), "KEPT_ANALYTICS_LAG_S": "0"}
    runners: dict[int, RoleProcess] = {}

    def start(stack: ExitStack, n: int) -> RoleProcess:
        data = tmp_path / f"runner{n}"
        args = ["analytics", "run", "--every", "1s", "--data", str(data)]
        proc = stack.enter_context(role_process(RoleProcess, args, kept_env(data, **env)))
        runners[proc.process.pid] = proc
        return proc

    def holder() -> int | None:
        return _holder_pid(_status(env, tmp_path / "status"))

    with ExitStack() as stack:
        start(stack, 1)
        start(stack, 2)
        _workload(store, 40, 10)
        _wait(lambda: _figures(store) == (40, 10), "the first workload folded")
        first = holder()
        assert first in runners
        held = {pid: proc.metric("kept_analytics_lease_held") for pid, proc in runners.items()}
        assert held == {pid: float(pid == first) for pid in runners}, held

        # kill -9 the holder: the other takes over once the lease expires.
        runners[first].process.kill()
        runners[first].process.wait(10)
        takeover = _wait(lambda: holder() not in (None, first), "a new holder", timeout=30)
        print(f"lease takeover after kill -9: {takeover:.1f} s")
        assert takeover < TAKEOVER_BOUND_S
        second = holder()
        assert second is not None
        _workload(store, 30, 30)
        _wait(lambda: _figures(store) == (70, 40), "the second workload folded")

        # Pause the holder past its lease; a third runner takes over; the paused one wakes
        # up (mid-run, or about to run) with a stale term: nothing it writes counts.
        os.kill(second, signal.SIGSTOP)
        try:
            third = start(stack, 3).process.pid
            _wait(lambda: holder() == third, "the third runner to hold the lease", timeout=30)
            _workload(store, 20, 5)
            _wait(lambda: _figures(store) == (90, 45), "the third workload folded")
        finally:
            os.kill(second, signal.SIGCONT)
        runners[second].wait_for(
            lambda: "lost to a newer one" in runners[second].log, "the woken runner to step down"
        )
        _workload(store, 10, 10)
        converged = _wait(lambda: _figures(store) == (100, 55), "the last workload folded")
        print(f"report exact {converged:.1f} s after the last workload")
        time.sleep(2 * LEASE_S)  # whatever the woken runner might still do
        assert _figures(store) == (100, 55)
        assert store.scalar("SELECT sum(sign) FROM outcomes") == 100
        assert holder() == third
        for pid, proc in runners.items():
            if pid != first:
                assert proc.stop() == 0, proc.log
        assert _status(env, tmp_path / "status")["holder"] is None  # released at exit
