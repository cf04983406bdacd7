"""Times are UTC whatever the zone the engine runs in: here the embedded store in a process
whose zone is half an hour off UTC's hours (the ClickHouse server of the tests runs in
one too, see tests/clickhouse.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kept_analytics.lease import Lease
from kept_analytics.outcomes import OutcomesJob
from kept_analytics.report import ReportSpec, report
from kept_analytics.runner import run_once
from kept_storage import Store, chdb_dsn, migrate
from tests.clickhouse import SERVER_TIME_ZONE
from tests.helpers import generation, store_events

ROOT = Path(__file__).resolve().parents[2]
TS = datetime(2026, 1, 1, 10, 20, tzinfo=timezone.utc)


def report_hours(directory: str) -> None:
    """In the subprocess: store one generation at TS, fold it, print the job's watermark
    and the report's hours."""
    store = Store(chdb_dsn(Path(directory)))
    migrate(store)
    event = generation(ts=TS.isoformat())
    store_events(store, [event], TS)
    run = run_once(OutcomesJob(store, lag_s=0), Lease(store, 20))
    window = {"since": TS - timedelta(hours=2), "until": TS + timedelta(hours=2), "by": ("hour",)}
    hours = {
        str(exact): [g["hour"] for g in report(store, ReportSpec(**window, exact=exact))]
        for exact in (False, True)
    }
    print(json.dumps({"until": run.until.isoformat(), "hours": hours}))


def test_an_embedded_store_off_utc_keeps_utc_times(tmp_path: Path) -> None:
    code = (
        f"from tests.analytics.test_time_zones import report_hours; report_hours({str(tmp_path)!r})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "TZ": SERVER_TIME_ZONE},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    until = datetime.fromisoformat(result["until"])
    assert abs(until - datetime.now(timezone.utc)) < timedelta(seconds=60), until
    hour = TS.replace(minute=0).isoformat()
    assert result["hours"] == {"False": [hour], "True": [hour]}
