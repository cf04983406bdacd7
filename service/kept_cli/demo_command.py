"""`kept demo`: realistic traffic through the SDK into a running server."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kept_cli.common import DEFAULT_URL, CliError, data_dir_arg, http


def cmd_demo(args: argparse.Namespace) -> int:
    from kept.client import Client
    from kept_cli.demo import run_demo
    from kept_wire.timespec import parse_duration

    try:
        duration = parse_duration(args.duration).total_seconds()
        backfill = parse_duration(args.backfill)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.rate <= 0:
        raise CliError("--rate must be positive")
    url, key = _demo_target(args)
    http("GET", url + "/healthz", None)  # a clear error now beats silent drops later
    client = Client(endpoint=url, api_key=key)
    try:
        summary = run_demo(
            client, rate=args.rate, duration=duration, backfill=backfill, seed=args.seed
        )
    except KeyboardInterrupt:
        print("interrupted; sending what is queued", file=sys.stderr)
        client.flush(timeout=10)
        return 130
    finally:
        client.close(timeout=10)
    return 0 if summary.flushed else 1


def _demo_target(args: argparse.Namespace) -> tuple[str, str]:
    from kept_storage.datadir import DataDir

    data_dir = DataDir(data_dir_arg(args.data))
    info = data_dir.server_info()
    url = (
        args.url
        or os.environ.get("KEPT_ENDPOINT")
        or os.environ.get("KEPT_URL")
        or (info.url if info else DEFAULT_URL)
    )
    key = args.api_key or os.environ.get("KEPT_API_KEY") or data_dir.read_demo_key()
    if not key:
        raise CliError(
            f"no project key: pass --api-key or set KEPT_API_KEY (kept serve saves the demo "
            f"project's key in {data_dir.demo_key_path} on first start)"
        )
    return url.rstrip("/"), key


def add_commands(sub: Any) -> None:
    p = sub.add_parser("demo", help="send realistic demo traffic to a running server")
    p.add_argument("--data", help="data directory whose server and demo key to use")
    p.add_argument(
        "--url",
        help="server URL (default: $KEPT_ENDPOINT, the server owning --data, or 127.0.0.1:8787)",
    )
    p.add_argument("--api-key", help="project key (default: $KEPT_API_KEY or the demo key)")
    p.add_argument("--rate", type=float, default=20.0, help="generations per second (default 20)")
    p.add_argument("--duration", default="60s", help="how long to send live traffic (default 60s)")
    p.add_argument(
        "--backfill", default="2h", help="history to create first (default 2h; 0 for none)"
    )
    p.add_argument("--seed", type=int, help="random seed for repeatable traffic")
    p.set_defaults(func=cmd_demo)
