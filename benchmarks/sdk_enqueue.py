"""SDK hot path: how long the app's `log_generation` / `accept` call takes.

The client sends to a real `kept serve` on loopback meanwhile, so its worker thread
competes with the caller for the GIL as it would in an app. The queue is sized so that
no call takes the drop path.

    .venv/bin/python benchmarks/sdk_enqueue.py [--calls 100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kept import Client
from tests.helpers import serve_process

MESSAGES = [
    {"role": "system", "content": "You summarise support tickets."},
    {"role": "user", "content": "The export fails on large files since Tuesday. " * 8},
]
OUTPUT = "The customer reports that exports of large files fail since Tuesday. " * 4


def percentile(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, serve_process(Path(tmp) / "data") as server:
        client = Client(
            endpoint=server.url,
            api_key=server.key,
            max_queue_size=args.calls * 3,
            max_queue_bytes=args.calls * 3 * 4096,
        )
        client.log_generation(model="warm-up")
        client.flush(10)
        gen_ns: list[int] = []
        accept_ns: list[int] = []
        clock = time.perf_counter_ns
        for i in range(args.calls):
            t0 = clock()
            gid = client.log_generation(
                model="gpt-4o-mini", prompt_version="summarize@3", input=MESSAGES, output=OUTPUT,
                latency_ms=812, input_tokens=412, output_tokens=96, cost_usd=0.00021,
                metadata={"app": "support-bot"}, user_id=f"u-{i % 50}",
            )  # fmt: skip
            t1 = clock()
            client.accept(gid)
            t2 = clock()
            gen_ns.append(t1 - t0)
            accept_ns.append(t2 - t1)
        started = time.monotonic()
        flushed = client.flush(120)
        drain = time.monotonic() - started
        stats = client.stats()
        client.close(10)
    for name, samples in (("log_generation", gen_ns), ("accept", accept_ns)):
        samples.sort()
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        print(
            f"{name}: p50 {p50:.1f} µs, p99 {p99:.1f} µs, "
            f"mean {statistics.fmean(samples) / 1000:.1f} µs over {len(samples):,} calls"
        )
    drops = {k: v for k, v in stats.items() if k.startswith("dropped") and v}
    print(f"flushed: {flushed} (drain after the loop {drain:.1f} s); drops: {drops or 'none'}")


if __name__ == "__main__":
    main()
