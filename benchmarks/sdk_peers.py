"""kept's `log_generation` side by side with `posthog.capture` and a Langfuse generation.

All three SDKs live in this one process and send the same realistic generation (chat
input of ~400 chars, output of ~280, model, prompt version, tokens, cost, latency,
metadata, user id) to one loopback sink run as a separate process
(benchmarks/peer_sink.py), which accepts everything and counts what arrives. Each call
is timed on its own with `time.perf_counter_ns`. In each round every SDK makes `--calls`
calls while its own background sender runs, as it would in an app, and is then flushed
(untimed) so that its sending does not run during another SDK's calls; the order of the
SDKs rotates from round to round, and each SDK makes `--warmup` calls first.

The Langfuse call is the documented v4+ way to log a generation with a user id:
`with propagate_attributes(user_id=...)` around `start_observation(as_type="generation",
...)` and `.end()`; the row "langfuse, no user id" times the same call without the
`propagate_attributes` context, so that no peer is measured doing more than it must.

Every queue is sized above what one round enqueues (kept's `max_queue_size` and
`max_queue_bytes`, PostHog's `max_queue_size`, OpenTelemetry's batch span processor queue
through `OTEL_BSP_MAX_QUEUE_SIZE`, whose default of 2,048 is close to one round), so no
timed call takes a drop path; the run checks that afterwards (kept's `stats()`, PostHog's
return values, OpenTelemetry's "Queue full" warnings, and the sink's event counts).

    .venv/bin/pip install -e '.[bench-peers]'
    .venv/bin/python benchmarks/sdk_peers.py [--calls 2000] [--rounds 10] [--warmup 500]

Target (issue 7): kept's p50 and p99 each at most a fifth of the fastest peer's.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import _paths  # noqa: F401 - first: puts the repository on the path, this folder off it

HERE = Path(__file__).resolve().parent

MODEL = "gpt-4o-mini"
PROMPT_VERSION = "summarize@3"
MESSAGES = [
    {"role": "system", "content": "You summarise support tickets."},
    {"role": "user", "content": "The export fails on large files since Tuesday. " * 8},
]
OUTPUT = "The customer reports that exports of large files fail since Tuesday. " * 4
INPUT_TOKENS, OUTPUT_TOKENS, COST_USD, LATENCY_MS = 412, 96, 0.00021, 812
METADATA = {"app": "support-bot"}
USERS = [f"u-{i}" for i in range(50)]
POSTHOG_PROPERTIES: dict[str, object] = {
    "$ai_model": MODEL, "$ai_provider": "openai", "$ai_input": MESSAGES,
    "$ai_output_choices": [{"role": "assistant", "content": OUTPUT}],
    "$ai_input_tokens": INPUT_TOKENS, "$ai_output_tokens": OUTPUT_TOKENS,
    "$ai_total_cost_usd": COST_USD, "$ai_latency": LATENCY_MS / 1000,
    "prompt_version": PROMPT_VERSION, **METADATA,
}  # fmt: skip
"""PostHog's generation event; each call passes a copy, as an app passes a new dict."""
LANGFUSE_GENERATION: dict[str, Any] = {
    "name": "summarize", "as_type": "generation", "model": MODEL, "input": MESSAGES,
    "output": OUTPUT, "metadata": METADATA, "version": PROMPT_VERSION,
    "usage_details": {"input": INPUT_TOKENS, "output": OUTPUT_TOKENS},
    "cost_details": {"total": COST_USD},
}  # fmt: skip
"""The arguments of Langfuse's `start_observation` for the same generation."""


@dataclass
class Peer:
    """One SDK under test: a loop that makes and times n calls, and its flush."""

    name: str
    run: Callable[[int, list[int]], None]
    flush: Callable[[], object]
    samples: list[int] = field(default_factory=list)
    calls: int = 0


class DropCounter(logging.Handler):
    """Counts OpenTelemetry's "Queue full, dropping Span." warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.drops = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Queue full" in record.getMessage():
            self.drops += 1


@contextlib.contextmanager
def sink_process() -> Iterator[str]:
    """Start benchmarks/peer_sink.py on a free loopback port; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "peer_sink.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"the sink did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(10)


def sink_counts(url: str) -> dict[str, dict[str, int]]:
    stats_url = url + "/_sink/stats"  # http://127.0.0.1:<port>, the sink started above
    with urllib.request.urlopen(stats_url, timeout=10) as response:  # noqa: S310
        counts: dict[str, dict[str, int]] = json.load(response)
    return counts


def make_kept(url: str, queue: int) -> tuple[Peer, Any]:
    from kept import Client

    client = Client(
        endpoint=url,
        api_key="kept_bench_x",
        max_queue_size=queue,
        max_queue_bytes=max(64 * 2**20, queue * 4096),
    )
    clock = time.perf_counter_ns

    def run(n: int, out: list[int]) -> None:
        log = client.log_generation
        for i in range(n):
            t0 = clock()
            log(
                model=MODEL, prompt_version=PROMPT_VERSION, input=MESSAGES, output=OUTPUT,
                latency_ms=LATENCY_MS, input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS,
                cost_usd=COST_USD, metadata=METADATA, user_id=USERS[i % 50],
            )  # fmt: skip
            out.append(clock() - t0)

    return Peer("kept", run, lambda: client.flush(60)), client


def make_posthog(url: str, queue: int) -> tuple[Peer, Any, list[int]]:
    from posthog import Posthog

    client = Posthog(project_api_key="phc_bench_x", host=url, max_queue_size=queue)
    clock = time.perf_counter_ns
    refused = [0]  # capture() returns None for an event it did not queue

    def run(n: int, out: list[int]) -> None:
        capture = client.capture
        for i in range(n):
            t0 = clock()
            uuid = capture(
                "$ai_generation", distinct_id=USERS[i % 50], properties={**POSTHOG_PROPERTIES}
            )
            out.append(clock() - t0)
            if uuid is None:
                refused[0] += 1

    return Peer("posthog", run, lambda: client.flush(60)), client, refused


def make_langfuse(url: str) -> tuple[Peer, Peer, Any]:
    from langfuse import Langfuse, propagate_attributes

    secret = "sk-lf-bench"  # noqa: S105 - a dummy: the sink accepts any key
    client = Langfuse(public_key="pk-lf-bench", secret_key=secret, host=url)
    clock = time.perf_counter_ns
    start = client.start_observation

    def run(n: int, out: list[int]) -> None:
        for i in range(n):
            t0 = clock()
            with propagate_attributes(user_id=USERS[i % 50]):
                start(**LANGFUSE_GENERATION).end()
            out.append(clock() - t0)

    def run_bare(n: int, out: list[int]) -> None:
        for _ in range(n):
            t0 = clock()
            start(**LANGFUSE_GENERATION).end()
            out.append(clock() - t0)

    return (
        Peer("langfuse", run, client.flush),
        Peer("langfuse, no user id", run_bare, client.flush),
        client,
    )


def pct(sorted_ns: list[int], q: float) -> float:
    """The q-quantile in µs (nearest rank)."""
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000, help="calls per SDK per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=500, help="untimed calls per SDK first")
    args = parser.parse_args()
    # Well above one round's events, so that nothing is dropped (read when Langfuse starts).
    queue = max(10_000, 4 * max(args.calls, args.warmup))
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(queue)
    otel_drops = DropCounter()
    logging.getLogger("opentelemetry").addHandler(otel_drops)

    with sink_process() as url:
        kept_peer, kept_client = make_kept(url, queue)
        posthog_peer, posthog_client, posthog_refused = make_posthog(url, queue)
        langfuse_peer, langfuse_bare, langfuse_client = make_langfuse(url)
        auth_ok = langfuse_client.auth_check()  # the sink answers Langfuse's project check
        peers = [kept_peer, posthog_peer, langfuse_peer, langfuse_bare]

        for peer in peers:
            peer.run(args.warmup, [])
            peer.calls += args.warmup
            peer.flush()
        for r in range(args.rounds):
            for peer in peers[r % len(peers) :] + peers[: r % len(peers)]:
                gc.collect()  # start each SDK's round with the same (empty) garbage
                peer.run(args.calls, peer.samples)
                peer.calls += args.calls
                peer.flush()

        kept_stats = kept_client.stats()
        kept_client.close(10)
        posthog_client.shutdown()
        langfuse_client.shutdown()
        counts = sink_counts(url)

    report(args, peers, kept_stats, posthog_refused[0], otel_drops.drops, counts, auth_ok)


def report(
    args: argparse.Namespace,
    peers: list[Peer],
    kept_stats: dict[str, int],
    posthog_refused: int,
    otel_drops: int,
    counts: dict[str, dict[str, int]],
    auth_ok: bool,
) -> None:
    print(
        f"Python {platform.python_version()}, kept {version('kept')}, "
        f"posthog {version('posthog')}, langfuse {version('langfuse')}, "
        f"opentelemetry-sdk {version('opentelemetry-sdk')}; {os.cpu_count()} CPUs"
    )
    print(
        f"{args.rounds} rounds × {args.calls:,} timed calls per SDK "
        f"(+{args.warmup} warm-up), order rotated each round\n"
    )
    rows = {}
    for peer in peers:
        s = sorted(peer.samples)
        rows[peer.name] = (pct(s, 0.5), pct(s, 0.9), pct(s, 0.99), s[-1] / 1000, len(s))
    k50, k99 = rows["kept"][0], rows["kept"][2]
    header = (
        f"{'SDK':<22}{'p50 µs':>9}{'p90 µs':>9}{'p99 µs':>9}{'max µs':>10}"
        f"{'calls':>9}{'p50/kept':>10}{'p99/kept':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, (p50, p90, p99, top, n) in rows.items():
        ratios = "" if name == "kept" else f"{p50 / k50:>9.1f}×{p99 / k99:>9.1f}×"
        print(f"{name:<22}{p50:>9.1f}{p90:>9.1f}{p99:>9.1f}{top:>10.0f}{n:>9,}{ratios}")
    others = {name: row for name, row in rows.items() if name != "kept"}
    best50 = min(others.items(), key=lambda item: item[1][0])
    best99 = min(others.items(), key=lambda item: item[1][2])
    met50, met99 = k50 <= best50[1][0] / 5, k99 <= best99[1][2] / 5
    print(
        f"\ntarget: kept p50 ≤ 1/5 of the fastest peer's ({best50[0]}: "
        f"{best50[1][0]:.1f} → ≤ {best50[1][0] / 5:.1f} µs): {'met' if met50 else 'MISSED'} "
        f"({k50:.1f} µs)"
    )
    print(
        f"        kept p99 ≤ 1/5 of the fastest peer's ({best99[0]}: "
        f"{best99[1][2]:.1f} → ≤ {best99[1][2] / 5:.1f} µs): {'met' if met99 else 'MISSED'} "
        f"({k99:.1f} µs)"
    )

    # Nothing dropped, everything arrived.
    expected = {peer.name: peer.calls for peer in peers}
    langfuse_calls = expected["langfuse"] + expected["langfuse, no user id"]
    kept_dropped = {k: v for k, v in kept_stats.items() if k.startswith("dropped") and v}
    arrived = {
        "kept": counts.get("POST /v1/events", {}).get("events", 0),
        "posthog": counts.get("POST /batch/", {}).get("events", 0),
        "langfuse": counts.get("POST /api/public/otel/v1/traces", {}).get("events", 0),
    }
    print("\nsink (separate process), per path:")
    for path, c in counts.items():
        print(
            f"  {path:<36}{c['requests']:>7,} requests {c['bytes'] / 1e6:>9.1f} MB"
            f" {c['events']:>9,} events"
        )
    print(
        f"kept: enqueued {kept_stats['enqueued']:,}, sent {kept_stats['sent']:,}, "
        f"dropped {kept_dropped or 'none'}; sink got {arrived['kept']:,} of {expected['kept']:,}"
    )
    print(
        f"posthog: not queued {posthog_refused}; sink got {arrived['posthog']:,} "
        f"of {expected['posthog']:,}"
    )
    print(
        f"langfuse: OpenTelemetry queue-full drops {otel_drops}; sink got "
        f"{arrived['langfuse']:,} spans of {langfuse_calls:,}; auth check answered: {auth_ok}"
    )
    complete = (
        not kept_dropped
        and kept_stats["sent"] == expected["kept"]
        and arrived["kept"] == expected["kept"]
        and posthog_refused == 0
        and arrived["posthog"] == expected["posthog"]
        and otel_drops == 0
        and arrived["langfuse"] == langfuse_calls
    )
    print("every call was queued and every event arrived" if complete else "EVENTS MISSING")


if __name__ == "__main__":
    main()
