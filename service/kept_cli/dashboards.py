"""`kept dashboards build` and `kept dashboards push`: Grafana as code from the panel spec."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from kept_cli.common import CliError


def add_commands(sub: Any) -> None:
    """Register `kept dashboards ...` on the `kept` parser."""
    dashboards = sub.add_parser("dashboards", help="Grafana dashboards as code").add_subparsers(
        dest="dashboards_command", required=True
    )

    def source_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--clickhouse-url",
            default="http://clickhouse:8123",
            help="ClickHouse HTTP URL as Grafana reaches it",
        )
        p.add_argument("--clickhouse-user", default="grafana", help="read-only ClickHouse user")
        p.add_argument("--database", default="kept", help="ClickHouse database (default kept)")
        p.add_argument("--prometheus-url", default="http://prometheus:9090")

    p = dashboards.add_parser("build", help="write dashboard JSON (and provisioning files)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--provisioning",
        action="store_true",
        help="also write Grafana provisioning files (datasources, providers)",
    )
    source_args(p)
    p.set_defaults(func=cmd_build)

    p = dashboards.add_parser("push", help="provision folder, datasources, dashboards in Grafana")
    p.add_argument("--grafana-url", required=True, help="e.g. http://localhost:3000")
    p.add_argument("--token", help="service account token (default: $GRAFANA_TOKEN)")
    source_args(p)
    p.set_defaults(func=cmd_push)


def _sources(args: argparse.Namespace) -> Any:
    from kept_dashboards.provisioning import Sources

    return Sources(args.clickhouse_url, args.clickhouse_user, args.database, args.prometheus_url)


def cmd_build(args: argparse.Namespace) -> int:
    from kept_dashboards.provisioning import build

    out = Path(args.out)
    for path in build(out, _sources(args), provisioning=args.provisioning):
        print(path)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from grafana_client.client import GrafanaException

    from kept_dashboards.push import push

    token = args.token or os.environ.get("GRAFANA_TOKEN")
    password = os.environ.get("KEPT_GRAFANA_CLICKHOUSE_PASSWORD")
    try:
        result = push(args.grafana_url, token, _sources(args), clickhouse_password=password)
    except GrafanaException as exc:
        raise CliError(f"Grafana at {args.grafana_url} refused: {exc}") from exc
    except OSError as exc:
        raise CliError(f"cannot reach Grafana at {args.grafana_url}: {exc}") from exc
    for kind, names in (
        ("created", result.created),
        ("updated", result.updated),
        ("unchanged", result.unchanged),
    ):
        for name in names:
            print(f"{kind:9} {name}")
    return 0
