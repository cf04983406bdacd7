"""Alert evaluation at scale: 100 rules over 10M generations (30 days), per round.

The rules mix what teams write: thresholds on acceptance, votes, corrections and kept
rate by model, by prompt version and overall, over windows from an hour to a week (a
fifth of them filtered by metadata, which reads the outcome rows instead of the hourly
rollup), and regressions of every prompt version or model against a named baseline
with the always-valid test. Prints the time of `evaluate` per round (the queries) and of
a whole `AlertJob` round (states read, transitions recorded under the lease's fence).

    .venv/bin/python benchmarks/alerts.py [--generations 10000000] [--data DIR] [--rounds 5]

With --data, a store already loaded (e.g. by benchmarks/analytics.py --data DIR) is
reused as it is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kept_analytics.alerts.evaluate import evaluate
from kept_analytics.alerts.job import AlertJob
from kept_analytics.alerts.rules import RuleFile
from kept_analytics.lease import Lease
from kept_analytics.outcomes import OutcomesJob
from kept_analytics.runner import run_once
from kept_storage import Store, chdb_dsn, migrate
from tests.synthetic import load

METRICS = ("acceptance_rate", "vote_score", "correction_rate", "kept_rate[300]")
WINDOWS = ("1h", "6h", "1d", "7d")
BASELINES = {"prompt_version": "summarize@1", "model": "gpt-4o-mini"}


def rules(count: int = 100) -> RuleFile:
    """`count` rules: 60 % thresholds (a third of those filtered by metadata), 40 %
    regressions."""
    specs: list[dict[str, object]] = []
    for i in range(count):
        metric = METRICS[i % len(METRICS)]
        if i % 5 < 3:
            spec: dict[str, object] = {
                "name": f"threshold-{i}", "kind": "threshold", "metric": metric,
                "window": WINDOWS[i % len(WINDOWS)], "warning_below": 0.5,
                "critical_below": 0.3, "min_generations": 100, "for": "0s",
            }  # fmt: skip
            by = (None, "model", "prompt_version")[i % 3]
            if by:
                spec["by"] = by
            if i % 5 == 2:
                spec["metadata"] = {"app": "bot"}
        else:
            by = ("prompt_version", "model")[i % 2]
            spec = {
                "name": f"regression-{i}", "kind": "regression", "metric": metric, "by": by,
                "baseline": BASELINES[by], "alpha": 0.05, "lookback": "31d", "for": "0s",
            }  # fmt: skip
        specs.append(spec)
    return RuleFile.model_validate({"rules": specs})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", help="the store's directory (default: a temporary one)")
    args = parser.parse_args()
    directory = Path(args.data or tempfile.mkdtemp(prefix="kept-bench-"))
    store = Store(chdb_dsn(directory / "clickhouse"))
    migrate(store)
    now = datetime.now(timezone.utc)
    if not store.scalar("SELECT count() FROM outcomes_hourly"):
        started = time.perf_counter()
        chunk = 1_000_000
        for offset in range(0, args.generations, chunk):
            count = min(chunk, args.generations - offset)
            start = now - timedelta(days=args.days)
            load(store, count, start, now - timedelta(minutes=1), offset=offset)
        run_once(OutcomesJob(store, lag_s=0), Lease(store, 60))
        print(f"loaded and folded {args.generations:,} generations in "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    generations = store.scalar("SELECT sum(generations) FROM outcomes_hourly")
    file = rules()
    print(f"{len(file.rules)} rules over {generations:,} generations, {args.rounds} rounds")
    findings = 0
    query_s = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        findings = len(evaluate(store, file.rules, datetime.now(timezone.utc)))
        query_s.append(time.perf_counter() - started)
    print(f"  evaluate: median {statistics.median(query_s):.2f} s, max {max(query_s):.2f} s "
          f"per round ({findings} findings)")  # fmt: skip
    lease = Lease(store, 60, "bench-alerts")
    assert lease.acquire() is not None
    fence = lease.fence()
    assert fence is not None
    job = AlertJob(store, file, None)
    round_s = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        done = job.run(fence)
        round_s.append(time.perf_counter() - started)
    lease.release()
    print(f"  whole round (evaluate, states, record): median {statistics.median(round_s):.2f} s, "
          f"max {max(round_s):.2f} s ({done.firing} firing)")  # fmt: skip
    store.close()


if __name__ == "__main__":
    main()
