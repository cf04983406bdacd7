"""Built-in dashboard at scale: panel endpoint latency with 10M generations in the store.

Loads synthetic generations and feedback over 30 days into the store of an in-process
`kept` server (the same app as `kept serve`), folds them into outcomes, then times
`GET /v1/panels/{id}` for every panel (p50 and max over repeats, 24 h and 7 d ranges,
all filters and one model) and the full page's data (all panels and filter lists
fetched concurrently, as the page does on each refresh).

    .venv/bin/python benchmarks/dashboard.py [--generations 10000000] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kept_dashboards.live import page_spec
from tests.helpers import http, in_process_server
from tests.synthetic import load


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def _get(url: str) -> float:
    started = time.perf_counter()
    response = http("GET", url, timeout=120)
    if response.status != 200:
        raise RuntimeError(f"{url}: {response.status} {response.body}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    panels = [p["id"] for row in page_spec()["rows"] for p in row["panels"]]
    variables = [v["name"] for v in page_spec()["variables"]]
    data = Path(tempfile.mkdtemp(prefix="kept-bench-dash-"))
    with in_process_server(data, analytics_interval_s=0, analytics_lag_s=0) as server:
        store = server.runtime.store
        now = datetime.now(timezone.utc)
        started = time.perf_counter()
        chunk = 1_000_000
        for offset in range(0, args.generations, chunk):
            count = min(chunk, args.generations - offset)
            load(store, count, now - timedelta(days=args.days), now, offset=offset)
        print(f"loaded {args.generations:,} generations in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        server.runtime.analytics.run_now(full=True)
        print(f"outcomes job (full) in {time.perf_counter() - started:.1f} s", flush=True)

        for label, query in (
            ("24 h, all", "from=now-24h"),
            ("7 d, all", "from=now-7d"),
            ("7 d, one model", "from=now-7d&project=bench&model=gpt-4o-mini"),
        ):
            print(f"\n{label}: panel p50 / max ms over {args.repeats} requests")
            for panel in panels:
                url = f"{server.url}/v1/panels/{panel}?{query}"
                times = [_get(url) for _ in range(args.repeats)]
                print(f"  {panel:30} {_ms(statistics.median(times))} {_ms(max(times))}")
            urls = [f"{server.url}/v1/panels/{p}?{query}" for p in panels]
            urls += [f"{server.url}/v1/variables/{v}?{query}" for v in variables]
            page: list[float] = []
            with ThreadPoolExecutor(6) as pool:
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    list(pool.map(_get, urls))
                    page.append(time.perf_counter() - started)
            print(
                f"  full page data ({len(urls)} requests, 6 at a time): "
                f"p50 {_ms(statistics.median(page))} ms, max {_ms(max(page))} ms"
            )


if __name__ == "__main__":
    main()
