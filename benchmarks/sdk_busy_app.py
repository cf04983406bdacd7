"""What each SDK costs a busy async app: throughput, tail latency and CPU per generation.

The app is FastAPI under uvicorn, one process, started afresh for each variant: ``none``
(no SDK), ``kept``, ``posthog`` and ``langfuse``. ``GET /chat`` awaits a simulated 20 ms
model call (``asyncio.sleep(0.02)``) and then logs one realistic generation with the
variant's SDK, the same call and data as benchmarks/sdk_peers.py. All SDKs send to one
loopback sink (benchmarks/peer_sink.py, its own process). The load comes from
benchmarks/http_load.py, another process holding 200 keep-alive connections with one
request in flight each, so the app always has 200 requests in hand.

Per variant and round: requests/s and p50/p99 latency over the measured window (after a
warm-up), and the app process's CPU time (user + system, from psutil, so it includes the
SDK's background sender threads, which share the app's process and GIL) per request.
The SDK's CPU per generation is that less the ``none`` variant's CPU per request in the
same round; "CPU-bound" is the throughput an app that is CPU-bound would lose for it
(1 - none's CPU per request / the variant's), steadier than the measured req/s when
other processes take part of the CPU (then the app's CPU share is well under 100 %).
"threads" is the CPU per request of the app's threads other than the event loop's
(the SDK's sender threads; none for ``none``): it does not move with the loop's own
cost, which other processes on a shared machine inflate by tens of µs per request, so it
is the steadier part of the SDK's cost. "call" is the event loop thread's CPU inside the
SDK's call, per generation (``time.thread_time_ns`` around it; ``none``'s column is that
timing's own cost): the call as it runs in the app, its code and data no longer in the
caches, also steady. The rest of "SDK µs/gen" is what the loop pays besides (the caches
after the sender ran, GIL hand-offs) and the noise of the difference.
"arrived" is the events the sink counted over the generations the app logged. The
variants' order rotates from round to round; the table gives medians over rounds, and
the ratios are computed within each round (its variants ran a minute or two apart) and
their median given. The load generator's CPU share shows it is not the bottleneck.

Every SDK is given a queue well above what one run enqueues (PostHog's
``max_queue_size``, OpenTelemetry's ``OTEL_BSP_MAX_QUEUE_SIZE`` for Langfuse; kept's
default of 10,000 is kept, since its sender keeps up), so none is measured taking a
drop path.

    .venv/bin/pip install -e '.[bench-peers]'
    .venv/bin/python benchmarks/sdk_busy_app.py [--rounds 3] [--seconds 10] [--warmup 3]
        [--variants none,kept,posthog,langfuse] [--kept-before DIR]

``--kept-before DIR`` adds the variant ``kept-before``: the same app with kept imported
from DIR (e.g. ``git archive <commit> sdk | tar -x -C DIR`` then DIR/sdk), measured in
the same rounds, so that a change to the SDK is compared with the code before it on the
same machine under the same load.

Targets (issue 16): kept costs at most 5 % of the no-SDK throughput and at most 25 % of
its p99; kept's CPU per generation at most half of what it was before the work (the
issue measured 25 µs; ``--kept-before`` measures it here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import _paths  # noqa: F401 - first: puts the repository on the path, this folder off it
import psutil

HERE = Path(__file__).resolve().parent


def _load_sdk_peers() -> ModuleType:
    """benchmarks/sdk_peers.py, whose generation data and sink this benchmark shares
    (this folder is off sys.path, see _paths)."""
    spec = importlib.util.spec_from_file_location("sdk_peers", HERE / "sdk_peers.py")
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules["sdk_peers"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peers = _load_sdk_peers()
MODEL, PROMPT_VERSION, MESSAGES, OUTPUT = (
    peers.MODEL,
    peers.PROMPT_VERSION,
    peers.MESSAGES,
    peers.OUTPUT,
)
INPUT_TOKENS, OUTPUT_TOKENS, COST_USD = peers.INPUT_TOKENS, peers.OUTPUT_TOKENS, peers.COST_USD
LATENCY_MS, METADATA, USERS = peers.LATENCY_MS, peers.METADATA, peers.USERS
sink_counts, sink_process = peers.sink_counts, peers.sink_process

VARIANTS = ("none", "kept", "posthog", "langfuse")
SINK_PATHS = {
    "kept": "POST /v1/events",
    "kept-before": "POST /v1/events",
    "posthog": "POST /batch/",
    "langfuse": "POST /api/public/otel/v1/traces",
}
BIG_QUEUE = 1_000_000  # above any run's events: no peer takes a drop path
KEPT_CPU_BEFORE_US = 25.0  # issue 16's figure for kept before this work (its machine)
# The env of the app process: uvicorn's logs off; OpenTelemetry's queue big enough.
APP_ENV = {"OTEL_BSP_MAX_QUEUE_SIZE": str(BIG_QUEUE), "PYTHONUNBUFFERED": "1"}


# --- the app (a subprocess) -------------------------------------------------------------


def make_logger(variant: str, sink: str) -> tuple[Callable[[int], None], Callable[[], object]]:
    """The variant's "log one generation" call and its shutdown."""
    if variant == "none":
        return (lambda i: None), (lambda: None)
    if variant == "kept":
        from kept import Client

        client = Client(endpoint=sink, api_key="kept_bench_x")
        log = client.log_generation

        def kept_call(i: int) -> None:
            log(
                model=MODEL, prompt_version=PROMPT_VERSION, input=MESSAGES, output=OUTPUT,
                latency_ms=LATENCY_MS, input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS,
                cost_usd=COST_USD, metadata=METADATA, user_id=USERS[i % 50],
            )  # fmt: skip

        return kept_call, lambda: client.close(30)
    if variant == "posthog":
        from posthog import Posthog

        posthog = Posthog(project_api_key="phc_bench_x", host=sink, max_queue_size=BIG_QUEUE)
        capture = posthog.capture

        def posthog_call(i: int) -> None:
            capture(
                "$ai_generation",
                distinct_id=USERS[i % 50],
                properties={**peers.POSTHOG_PROPERTIES},
            )

        return posthog_call, posthog.shutdown
    if variant == "langfuse":
        from langfuse import Langfuse, propagate_attributes

        secret = "sk-lf-bench"  # noqa: S105 - a dummy: the sink accepts any key
        langfuse = Langfuse(public_key="pk-lf-bench", secret_key=secret, host=sink)
        start = langfuse.start_observation

        def langfuse_call(i: int) -> None:
            with propagate_attributes(user_id=USERS[i % 50]):
                start(**peers.LANGFUSE_GENERATION).end()

        return langfuse_call, langfuse.shutdown
    raise SystemExit(f"unknown variant {variant!r}")


def serve(variant: str, sink: str, port: int) -> None:
    """Run the app until SIGTERM; the SDK is shut down (flushed) when the app's lifespan
    ends."""
    import uvicorn
    from fastapi import FastAPI

    log, shutdown = make_logger(variant, sink)
    served = [0]
    call_ns = [0]  # the event loop thread's CPU inside the SDK's call, summed
    clock = time.thread_time_ns

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # Here, not after uvicorn.run: on SIGTERM uvicorn shuts down and then raises
        # the signal again, which ends the process before a `finally` would run.
        shutdown()

    app = FastAPI(lifespan=lifespan)

    @app.get("/chat")
    async def chat() -> dict[str, str]:
        await asyncio.sleep(0.02)  # the model call
        n = served[0] = served[0] + 1
        started = clock()
        log(n)
        call_ns[0] += clock() - started
        return {"answer": "ok"}

    @app.get("/_bench/count")
    async def count() -> dict[str, int]:
        return {"logged": served[0], "call_ns": call_ns[0]}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the driver -------------------------------------------------------------------------


@dataclass
class Run:
    """One variant in one round."""

    variant: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_per_request_us: float
    threads_us: float  # CPU per request of the app's threads besides the event loop's
    call_us: float  # the loop thread's CPU inside the SDK's call, per generation
    app_cpu_share: float  # app CPU seconds / wall seconds in the window
    load_cpu_share: float  # the load generator's
    errors: int
    logged: int
    arrived: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return json.load(response)


@contextlib.contextmanager
def app_process(
    variant: str, sink: str, kept_before: str | None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {**os.environ, **APP_ENV}
    if variant == "kept-before":  # the same app, with kept from another checkout
        assert kept_before is not None
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [kept_before, env.get("PYTHONPATH")]))
        variant = "kept"
    argv = [sys.executable, __file__, "--serve", variant, "--sink", sink, "--port", str(port)]
    proc = subprocess.Popen(argv, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get_json(f"http://127.0.0.1:{port}/_bench/count")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {variant} app did not start") from None
                time.sleep(0.1)
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def thread_cpu(process: psutil.Process) -> dict[int, float]:
    """CPU seconds of each of the process's threads (the main thread's id is the pid)."""
    return {t.id: t.user_time + t.system_time for t in process.threads()}


def measure(variant: str, sink: str, args: argparse.Namespace) -> Run:
    before = sink_counts(sink)
    with app_process(variant, sink, args.kept_before) as (proc, port):
        app = psutil.Process(proc.pid)
        load = subprocess.Popen(
            [
                *(sys.executable, str(HERE / "http_load.py"), "--port", str(port)),
                *("--connections", str(args.connections), "--warmup", str(args.warmup)),
                *("--seconds", str(args.seconds)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert load.stdout is not None
        if load.stdout.readline().strip() != "start":
            raise RuntimeError("the load generator did not start")
        cpu0, t0, threads0 = app.cpu_times(), time.perf_counter(), thread_cpu(app)
        calls0 = get_json(f"http://127.0.0.1:{port}/_bench/count")
        if load.stdout.readline().strip() != "end":
            raise RuntimeError("the load generator stopped early")
        cpu1, t1, threads1 = app.cpu_times(), time.perf_counter(), thread_cpu(app)
        calls1 = get_json(f"http://127.0.0.1:{port}/_bench/count")
        result = json.loads(load.stdout.readline())
        load.wait(30)
        logged = int(get_json(f"http://127.0.0.1:{port}/_bench/count")["logged"])
    after = sink_counts(sink)  # the app has shut its SDK down (flushed) by now
    path = SINK_PATHS.get(variant)
    arrived = 0
    if path is not None:
        arrived = after.get(path, {}).get("events", 0) - before.get(path, {}).get("events", 0)
    app_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    requests = max(1, int(result["requests"]))
    return Run(
        variant=variant,
        rps=float(result["rps"]),
        p50_ms=float(result["p50_ms"]),
        p99_ms=float(result["p99_ms"]),
        cpu_per_request_us=app_cpu / requests * 1e6,
        threads_us=sum(
            cpu - threads0.get(tid, 0.0) for tid, cpu in threads1.items() if tid != proc.pid
        )
        / requests
        * 1e6,
        call_us=(calls1["call_ns"] - calls0["call_ns"])
        / max(1, calls1["logged"] - calls0["logged"])
        / 1000,
        app_cpu_share=app_cpu / (t1 - t0),
        load_cpu_share=float(result["load_cpu"]) / float(result["elapsed"]),
        errors=int(result["errors"]),
        logged=logged,
        arrived=arrived,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured s per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="s of load before measuring")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--kept-before",
        metavar="DIR",
        help="also measure kept imported from DIR (e.g. an exported older sdk/ folder) as "
        "the variant 'kept-before', in the same rounds; its CPU per generation is then "
        "the baseline of the CPU target",
    )
    parser.add_argument(
        "--kept-cpu-before",
        type=float,
        default=KEPT_CPU_BEFORE_US,
        help="kept's SDK µs per generation before the work, measured on this machine "
        "(default: the issue's figure)",
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # run as the app
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.sink, args.port)
        return
    variants = [v for v in args.variants.split(",") if v]
    if args.kept_before and "kept-before" not in variants:
        variants.insert(variants.index("kept") + 1 if "kept" in variants else 1, "kept-before")
    if "none" not in variants:
        raise SystemExit("the 'none' variant is the baseline: keep it in --variants")
    rounds: list[dict[str, Run]] = []
    with sink_process() as sink:
        for r in range(args.rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            runs = {}
            for variant in order:
                runs[variant] = run = measure(variant, sink, args)
                print(
                    f"  round {r + 1} {variant:<9} {run.rps:>7.0f} req/s  p50 {run.p50_ms:>6.1f}"
                    f"  p99 {run.p99_ms:>6.1f} ms  CPU {run.cpu_per_request_us:>6.1f} µs/req"
                    f" ({run.threads_us:.1f} on other threads)",
                    file=sys.stderr,
                    flush=True,
                )
            rounds.append(runs)
    report(args, variants, rounds)


def report(args: argparse.Namespace, variants: list[str], rounds: list[dict[str, Run]]) -> None:
    peers = ", ".join(f"{p} {version(p)}" for p in ("kept", "posthog", "langfuse"))
    import kept

    source = Path(kept.__file__).parent.parent  # PYTHONPATH may point at another checkout
    print(f"Python {platform.python_version()}, {peers}; {os.cpu_count()} CPUs; kept from {source}")
    print(
        f"FastAPI + uvicorn, 1 process; {args.connections} connections; {args.rounds} rounds"
        f" × {args.seconds:g} s measured (+{args.warmup:g} s warm-up) per variant, rotated\n"
    )

    def sdk_cpu(runs: dict[str, Run], v: str) -> float:
        return runs[v].cpu_per_request_us - runs["none"].cpu_per_request_us

    med = statistics.median

    def cpu_bound_cost(runs: dict[str, Run], v: str) -> float:
        """The throughput an app that is CPU-bound loses: 1 - none's CPU/req ÷ v's."""
        return 1 - runs["none"].cpu_per_request_us / runs[v].cpu_per_request_us

    header = (
        f"{'variant':<12}{'req/s':>8}{'vs none':>9}{'p50 ms':>8}{'p99 ms':>8}{'vs none':>9}"
        f"{'CPU µs/req':>11}{'SDK µs/gen':>11}{'threads':>8}{'call':>6}{'CPU-bound':>10}"
        f"{'app CPU':>8}"
        f"{'load CPU':>9}"
        f"{'arrived':>9}"
    )
    print(header)
    print("-" * len(header))
    for v in variants:
        runs = [r[v] for r in rounds]
        rps_ratio = med(r[v].rps / r["none"].rps - 1 for r in rounds)
        p99_ratio = med(r[v].p99_ms / r["none"].p99_ms - 1 for r in rounds)
        sdk = "" if v == "none" else f"{med(sdk_cpu(r, v) for r in rounds):>11.1f}"
        bound = med(-cpu_bound_cost(r, v) for r in rounds)
        logged = sum(r.logged for r in runs)
        arrived = "" if v == "none" else f"{sum(r.arrived for r in runs) / max(1, logged):>8.1%}"
        errors = sum(r.errors for r in runs)
        print(
            f"{v:<12}{med(r.rps for r in runs):>8.0f}{rps_ratio:>+9.1%}"
            f"{med(r.p50_ms for r in runs):>8.1f}{med(r.p99_ms for r in runs):>8.1f}"
            f"{p99_ratio:>+9.1%}{med(r.cpu_per_request_us for r in runs):>11.1f}"
            f"{sdk or '':>11}{med(r.threads_us for r in runs):>8.1f}"
            f"{med(r.call_us for r in runs):>6.1f}{bound:>+10.1%}"
            f"{med(r.app_cpu_share for r in runs):>8.0%}"
            f"{med(r.load_cpu_share for r in runs):>9.0%} {arrived}"
            + (f"  ({errors} errors)" if errors else "")
        )
    print("\nper round (req/s, p99 ms, SDK µs/gen):")
    for i, by_variant in enumerate(rounds):
        cells = "  ".join(
            f"{v} {by_variant[v].rps:.0f} {by_variant[v].p99_ms:.0f}"
            + ("" if v == "none" else f" {sdk_cpu(by_variant, v):.1f}")
            for v in variants
        )
        print(f"  {i + 1}: {cells}")
    if "kept" not in variants:
        return
    rps_cost = med(1 - r["kept"].rps / r["none"].rps for r in rounds)
    bound_cost = med(cpu_bound_cost(r, "kept") for r in rounds)
    p99_cost = med(r["kept"].p99_ms / r["none"].p99_ms - 1 for r in rounds)
    kept_cpu = med(sdk_cpu(r, "kept") for r in rounds)
    before_cpu = args.kept_cpu_before
    if "kept-before" in variants:
        before_cpu = med(sdk_cpu(r, "kept-before") for r in rounds)
        before_rps = med(1 - r["kept-before"].rps / r["none"].rps for r in rounds)
        before_p99 = med(r["kept-before"].p99_ms / r["none"].p99_ms - 1 for r in rounds)
        cpu_ratio = med(sdk_cpu(r, "kept") / max(sdk_cpu(r, "kept-before"), 0.1) for r in rounds)
        before_bound = med(cpu_bound_cost(r, "kept-before") for r in rounds)
        print(
            f"\nkept vs kept-before: throughput cost {rps_cost:.1%} vs {before_rps:.1%} "
            f"(CPU-bound {bound_cost:.1%} vs {before_bound:.1%}), p99 cost {p99_cost:+.1%} vs "
            f"{before_p99:+.1%}, SDK CPU per generation {cpu_ratio:.2f}× kept-before's "
            "(per-round medians)"
        )
    print()
    for peer in ("posthog", "langfuse"):
        if peer in variants:
            ratio = med(sdk_cpu(r, peer) / max(sdk_cpu(r, "kept"), 0.1) for r in rounds)
            cost = med(1 - r[peer].rps / r["none"].rps for r in rounds)
            print(
                f"{peer}: SDK CPU per generation {ratio:.1f}× kept's; "
                f"throughput cost {cost:.0%} (kept {rps_cost:.0%})"
            )
    print(
        f"target: kept throughput cost ≤ 5 %: {'met' if rps_cost <= 0.05 else 'MISSED'}"
        f" ({rps_cost:.1%})"
    )
    print(
        f"        (by CPU per request, for an app that is CPU-bound: "
        f"{'met' if bound_cost <= 0.05 else 'MISSED'}, {bound_cost:.1%})"
    )
    print(
        f"        kept p99 cost ≤ 25 %: {'met' if p99_cost <= 0.25 else 'MISSED'} ({p99_cost:+.1%})"
    )
    half = before_cpu / 2
    print(
        f"        kept CPU per generation ≤ {half:.1f} µs (half of {before_cpu:.1f}):"
        f" {'met' if kept_cpu <= half else 'MISSED'} ({kept_cpu:.1f} µs)"
    )
    print(
        "check: the load generator is not the bottleneck when its CPU share stays well"
        " under 100 % while the none app's is near 100 %; an app CPU share well under"
        " 100 % means other processes took the CPU, and req/s ratios are then noisy:"
        " the CPU-bound column is the steadier guide"
    )


if __name__ == "__main__":
    main()
