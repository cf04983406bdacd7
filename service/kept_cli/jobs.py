"""`kept analytics run` (once, or `--every` as the analytics role) and `kept analytics status`.

Once: through a running server when one owns the data directory, otherwise on the store
directly under the analytics lease (or waiting for the runner that holds it).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from kept_cli.common import (
    CliError,
    add_data_args,
    config_error,
    one_shot_runner,
    remote_for,
    server_imports,
    setup_logging,
    with_local_store,
)


def add_commands(sub: Any) -> None:
    """Register `kept analytics ...` on the `kept` parser."""
    analytics = sub.add_parser("analytics", help="analytics jobs").add_subparsers(
        dest="analytics_command", required=True
    )
    p = analytics.add_parser(
        "run", help="fold new events into outcomes now, or --every N as a long-running role"
    )
    add_data_args(p)
    p.add_argument("--full", action="store_true", help="rebuild all outcomes from scratch")
    p.add_argument(
        "--every",
        type=_interval,
        metavar="DURATION",
        help="run until stopped, every DURATION (e.g. 10s) while this process holds the "
        "analytics lease; any number of runners may share a store",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="with --every: port of /metrics (default: $KEPT_METRICS_PORT or 9464; 0: none)",
    )
    p.add_argument(
        "--rules",
        type=Path,
        help="with --every: alert rules (YAML) to evaluate after each run "
        "(default: $KEPT_ALERT_RULES)",
    )
    p.set_defaults(func=cmd_analytics_run)

    p = analytics.add_parser("status", help="who runs the analytics jobs, and their lag")
    add_data_args(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_analytics_status)


def _interval(text: str) -> float:
    from kept_wire.timespec import parse_duration

    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 (e.g. 10s)")
    return seconds


def cmd_analytics_run(args: argparse.Namespace) -> int:
    if args.every is not None:
        return _analytics_role(args)
    remote = remote_for(args)
    if remote is not None:
        result = remote.call("POST", f"/v1/admin/analytics/run?full={str(args.full).lower()}")
    else:
        result = with_local_store(args, lambda store: _run_once(store, args.full))
    if result.get("generations") is None:
        print(
            f"outcomes are folded by the analytics runner {result['holder']} "
            f"(up to {result['watermark']})",
            file=sys.stderr,
        )
        return 0
    print(
        f"outcomes updated for {result['generations']} generation(s) "
        f"over {result['days']} day(s) in {float(result['seconds']):.2f}s",
        file=sys.stderr,
    )
    return 0


def _run_once(store: Any, full: bool) -> dict[str, Any]:
    """Run the job here under the lease, or wait for the runner that holds it."""
    from kept_analytics.runner import AnalyticsBusy, analytics_status

    runner = one_shot_runner(store)
    try:
        done = runner.run_now(full=full)
    except AnalyticsBusy as exc:
        raise CliError(str(exc)) from None
    if done is None:
        return analytics_status(runner.lease, runner.job) | {"generations": None}
    return {"generations": done.generations, "days": done.days, "seconds": done.seconds}


def _analytics_role(args: argparse.Namespace) -> int:
    server_imports()
    from pydantic import ValidationError

    from kept_analytics.alerts.rules import RuleError
    from kept_service.runtime.analytics_role import analytics_role_settings, run_analytics_role
    from kept_storage import StorageError
    from kept_storage.datadir import DataDirBusy

    if args.full:
        raise CliError("--full runs once: run it without --every")
    try:
        settings = analytics_role_settings(
            data=args.data,
            analytics_interval_s=args.every,
            metrics_port=args.metrics_port,
            alert_rules=args.rules,
        )
    except ValidationError as exc:
        raise config_error(exc) from None
    setup_logging(settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        run_analytics_role(settings, stop)
    except RuleError as exc:
        raise CliError(str(exc)) from None
    except DataDirBusy as exc:
        raise CliError(f"{exc}: a kept serve there runs the analytics jobs itself") from None
    except StorageError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_analytics_status(args: argparse.Namespace) -> int:
    remote = remote_for(args)
    if remote is not None:
        status = remote.call("GET", "/v1/admin/analytics/status")
    else:

        def read(store: Any) -> dict[str, Any]:
            from kept_analytics.runner import analytics_status

            runner = one_shot_runner(store)
            return analytics_status(runner.lease, runner.job)

        status = with_local_store(args, read)
    if args.format == "json":
        print(json.dumps(status, indent=2))
    else:
        holder = status["holder"] or "nobody (the lease is free)"
        print(f"holder     {holder}  (term {status['term']}, lease {status['lease_s']:g}s)")
        print(f"watermark  {status['watermark'] or 'nothing folded yet'}")
        lag = status["lag_s"]
        print(f"lag        {'-' if lag is None else f'{lag:.1f}s'}")
    return 0
