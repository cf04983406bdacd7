"""Analytics at scale: 10M generations with ~34M feedback events over 30 days.

Prints: load time, the outcomes job's full run, an incremental run after a trickle of
new events, `kept report --by model,prompt_version,day` latency over 30 days (rollup
path, and the exact path), and peak memory (RSS) of this process, which hosts the
embedded engine.

    .venv/bin/python benchmarks/analytics.py [--generations 10000000] [--data DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kept_analytics.lease import Lease
from kept_analytics.outcomes import OutcomesJob
from kept_analytics.report import ReportSpec, report
from kept_analytics.runner import run_once
from kept_storage import Store, chdb_dsn, migrate
from tests.synthetic import load


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.2f} s (peak RSS so far {peak_rss_mib():,.0f} MiB)", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--data", help="keep the store here (default: a temporary directory)")
    args = parser.parse_args()
    directory = Path(args.data or tempfile.mkdtemp(prefix="kept-bench-"))
    store = Store(chdb_dsn(directory / "clickhouse"))
    migrate(store)
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=args.days)
    chunk = 1_000_000
    count = args.generations

    def load_all() -> None:
        for offset in range(0, count, chunk):
            load(store, min(chunk, count - offset), start, now - timedelta(minutes=1),
                 offset=offset)  # fmt: skip

    # Every chunk spreads over the whole window (offset shifts the ids, not the time).
    load_seconds = timed(f"load {count:,} generations", load_all)
    gens = store.scalar("SELECT count() FROM generations")
    events = store.scalar("SELECT count() FROM feedback")
    print(f"  {gens:,} generations, {events:,} feedback events "
          f"({(gens + events) / load_seconds:,.0f} rows/s)")  # fmt: skip
    job, lease = OutcomesJob(store, lag_s=0), Lease(store, 20)
    timed("outcomes job, full run", lambda: run_once(job, lease))
    time.sleep(0.01)
    load(store, 1000, now - timedelta(minutes=10), now, prefix="late-", project="bench")
    store.command(
        "INSERT INTO feedback (project, ts, generation_id, type, event_id, received_at, name) "
        "SELECT 'bench', now64(3), concat('g', toString(number * 9973)), 'action', "
        "generateUUIDv4(), now64(3), 'accept' FROM numbers(100)"
    )
    time.sleep(0.01)
    timed(
        "outcomes job, incremental run (1,000 new generations + 100 late votes on old ones)",
        lambda: run_once(job, lease),
    )
    spec = ReportSpec(since=now - timedelta(days=args.days), until=now,
                      by=("model", "prompt_version", "day"))  # fmt: skip
    for label, exact in (("rollup", False), ("exact", True)):
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            groups = report(store, spec.model_copy(update={"exact": exact}))
            timings.append(time.perf_counter() - started)
        print(
            f"report --by model,prompt_version,day over {args.days} days ({label} path): "
            f"median {statistics.median(timings) * 1000:,.0f} ms, "
            f"best {min(timings) * 1000:,.0f} ms, {len(groups)} groups"
        )
    print(f"peak RSS {peak_rss_mib():,.0f} MiB")
    store.close()
    if not args.data:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
