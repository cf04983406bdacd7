"""`kept alerts check` and `kept alerts backtest`: the rules of a file evaluated once as of
a time, or replayed over history, on the store of --data (after folding in new events).
Nothing is recorded and nobody is notified: this is how a team tunes rules first."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kept_cli.common import CliError, add_data_args, with_outcomes


def add_commands(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="alert rules: check once, or backtest on history")
    commands = alerts.add_subparsers(dest="alerts_command", required=True)

    p = commands.add_parser("check", help="evaluate the rules once, as of now or --at")
    add_data_args(p)
    p.add_argument("--rules", required=True, type=Path, help="the rules file (YAML)")
    p.add_argument("--at", default="now", help="as of: now, 2h (ago), an ISO date/time")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_check)

    p = commands.add_parser("backtest", help="replay history: when each rule would have fired")
    add_data_args(p)
    p.add_argument("--rules", required=True, type=Path, help="the rules file (YAML)")
    p.add_argument("--since", default="30d", help="start: 30d (ago), an ISO date/time")
    p.add_argument("--until", default="now", help="end: now, 1h (ago), an ISO date/time")
    p.add_argument("--step", default="1h", help="evaluate every STEP (e.g. 1h, 15m)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_backtest)

    p = commands.add_parser(
        "grafana", help="the threshold rules as Grafana alert-rule provisioning (YAML)"
    )
    p.add_argument("--rules", required=True, type=Path, help="the rules file (YAML)")
    p.add_argument("--out", required=True, type=Path, help="the provisioning file to write")
    p.add_argument("--database", default="kept", help="the ClickHouse database (default kept)")
    p.set_defaults(func=cmd_grafana)


def _rules(path: Path) -> Any:
    from kept_analytics.alerts.rules import RuleError, load_rules

    try:
        return load_rules(path)
    except RuleError as exc:
        raise CliError(str(exc)) from None


def _instant(text: str, now: datetime) -> datetime:
    from kept_wire.timespec import parse_instant

    try:
        return parse_instant(text, now)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def cmd_check(args: argparse.Namespace) -> int:
    rules = _rules(args.rules)
    at = _instant(args.at, datetime.now(timezone.utc))

    def work(store: Any, settings: Any) -> list[dict[str, Any]]:
        from kept_analytics.alerts.evaluate import evaluate

        return [finding.as_dict() for finding in evaluate(store, rules.rules, at)]

    findings = with_outcomes(args, work)
    if args.format == "json":
        print(json.dumps({"at": at.isoformat(), "findings": findings}, indent=2, default=str))
    else:
        print(f"as of {at.isoformat()}: {len(findings)} finding(s)")
        for f in findings:
            mark = f["severity"] or ("no data" if f["no_data"] else "ok")
            print(f"  {f['rule']:<24} {mark:<9} {_labels(f['labels'])}  {f['summary']}")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from kept_wire.timespec import parse_duration

    rules = _rules(args.rules)
    now = datetime.now(timezone.utc)
    since, until = _instant(args.since, now), _instant(args.until, now)
    try:
        step = parse_duration(args.step)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if step <= timedelta(0):
        raise CliError("--step must be more than 0")
    if (until - since) / step > 100_000:
        raise CliError("more than 100,000 steps: use a longer --step or a shorter window")

    def work(store: Any, settings: Any) -> list[dict[str, Any]]:
        from kept_analytics.alerts.job import backtest

        return [
            alert.as_dict()
            for _, transitions in backtest(store, rules, since, until, step)
            for alert in transitions
        ]

    events = with_outcomes(args, work)
    if args.format == "json":
        window = {"since": since.isoformat(), "until": until.isoformat(), "step": args.step}
        print(json.dumps({**window, "transitions": events}, indent=2, default=str))
    else:
        fired = sum(1 for e in events if e["state"] == "firing")
        print(f"{since.isoformat()} → {until.isoformat()} every {args.step}: {fired} firing(s)")
        for e in events:
            if e["state"] in ("firing", "resolved"):
                print(f"  {e['at']}  {e['rule']:<24} {e['state']:<9} {e['severity']:<8} "
                      f"{_labels(e['labels'])}  {e['summary']}")  # fmt: skip
    return 0


def cmd_grafana(args: argparse.Namespace) -> int:
    from kept_analytics.alerts.grafana import render
    from kept_dashboards.grafana import CLICKHOUSE, dumps

    rules = _rules(args.rules)
    document, skipped = render(rules.rules, CLICKHOUSE["uid"], args.database)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(document))  # JSON is YAML: byte-stable, no YAML writer
    for reason in skipped:
        print(f"left out {reason}", file=sys.stderr)
    print(f"wrote {len(document['groups'][0]['rules']) if document['groups'] else 0} Grafana "
          f"alert rule(s) to {args.out}", file=sys.stderr)  # fmt: skip
    return 0


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"
