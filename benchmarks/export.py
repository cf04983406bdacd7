"""Fine-tuning export at scale: 1M generations (500k prompts, each asked twice) over 10
days, exported as jsonl (every generation: 1M examples), openai-chat (what users endorsed) and dpo.

Each export runs in a fresh process that opens the store, so its peak memory (RSS high-water
mark, including the embedded engine) is the export's own; an export capped at 10% of the rows
shows whether memory grows with the number of rows.

    .venv/bin/python benchmarks/export.py [--generations 1000000] [--days 10] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kept_analytics.export import ExportSpec, Summary, no_redact, run, write
from kept_analytics.lease import Lease
from kept_analytics.outcomes import OutcomesJob
from kept_analytics.runner import run_once
from kept_storage import Store, chdb_dsn, migrate
from tests.synthetic import load


def peak_rss_mib() -> float:
    """This process's peak RSS. ru_maxrss carries the parent's over fork and exec, so on
    Linux read the high-water mark of this process's own memory instead."""
    try:
        for row in Path("/proc/self/status").read_text().splitlines():
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(directory: Path, count: int, days: int) -> None:
    store = Store(chdb_dsn(directory / "clickhouse"))
    try:
        migrate(store)
        now = datetime.now(timezone.utc)
        started = time.perf_counter()
        chunk = 1_000_000
        for offset in range(0, count, chunk):
            load(store, min(chunk, count - offset), now - timedelta(days=days),
                 now - timedelta(minutes=1), offset=offset)  # fmt: skip
        # Synthetic prompts are all alike. Give each pair of generations (g0 and g1, g2
        # and g3, ...) a prompt of its own: outputs differ, so nothing deduplicates, and
        # every prompt is asked twice, the worst case for preference pairs by prompt.
        store.command(
            "ALTER TABLE generations UPDATE input = concat(input, ' #', "
            "toString(intDiv(toUInt64(substring(generation_id, 2)), 2))) "
            "WHERE 1 SETTINGS mutations_sync = 2"
        )
        run_once(OutcomesJob(store, lag_s=0), Lease(store, 20))
        print(f"prepared {count:,} generations in {time.perf_counter() - started:.1f} s",
              flush=True)  # fmt: skip
    finally:
        store.close()


def export_once(directory: Path, fmt: str, limit: int | None, redact: bool) -> None:
    """One export in this process; prints its figures as JSON."""
    store = Store(chdb_dsn(directory / "clickhouse"))
    rss_open = peak_rss_mib()
    spec = ExportSpec(format=fmt, limit=limit, redact=redact)  # type: ignore[arg-type]
    summary = Summary()
    started = time.perf_counter()
    from kept_analytics.export import default_redact

    redactor = default_redact if redact else no_redact
    write(run(store, spec, redactor, summary), directory / f"{fmt}.jsonl", split=False)
    seconds = time.perf_counter() - started
    store.close()
    print(json.dumps({"written": summary.written, "seconds": seconds,
                      "rss_after_open_mib": rss_open, "peak_rss_mib": peak_rss_mib()}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--data", help="keep the store here (default: a temporary directory)")
    parser.add_argument("--export-only", nargs=3, metavar=("FORMAT", "LIMIT", "REDACT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    directory = Path(args.data or tempfile.mkdtemp(prefix="kept-bench-export-"))
    if args.export_only:
        fmt, limit, redact = args.export_only
        export_once(directory, fmt, int(limit) or None, redact == "1")
        return
    try:
        if not (directory / "clickhouse").exists():
            prepare(directory, args.generations, args.days)
        runs = [("jsonl", args.generations // 10, "0"), ("jsonl", 0, "0"), ("jsonl", 0, "1"),
                ("openai-chat", 0, "1"), ("dpo", 0, "1")]  # fmt: skip
        for fmt, limit, redact in runs:
            done = subprocess.run(
                [sys.executable, __file__, "--data", str(directory), "--export-only", fmt,
                 str(limit), redact],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            label = f"{fmt}{' (limit ' + format(limit, ',') + ')' if limit else ''}"
            label += ", redacted" if redact == "1" else ", no redaction"
            rate = figures["written"] / figures["seconds"]
            print(f"{label}: {figures['written']:,} examples in {figures['seconds']:.1f} s = "
                  f"{rate:,.0f} examples/s; peak RSS {figures['peak_rss_mib']:,.0f} MiB "
                  f"(store opened: {figures['rss_after_open_mib']:,.0f} MiB)",
                  flush=True)  # fmt: skip
    finally:
        if not args.data:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
