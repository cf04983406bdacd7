"""`kept report` and `kept compare`.

Through a running server (its HTTP API with the admin token) when one owns the data
directory; otherwise on the store directly, after folding in new events.
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

from kept_cli.common import (
    CliError,
    add_data_args,
    add_filter_args,
    add_metadata,
    remote_for,
    with_outcomes,
)


def add_commands(sub: Any) -> None:
    """Register the analytics subcommands on the `kept` parser."""

    def window_args(p: argparse.ArgumentParser) -> None:
        add_data_args(p)
        p.add_argument(
            "--since", default="7d", help="start: 7d (ago), an ISO date/time (default 7d)"
        )
        p.add_argument("--until", default="now", help="end: now, 1h (ago) or an ISO date/time")
        p.add_argument("--project", help="only this project")
        p.add_argument(
            "--threshold", type=float, help="kept threshold (default: server setting, 0.5)"
        )
        p.add_argument(
            "--exact",
            action="store_true",
            help="exact window bounds from outcome rows (default: whole UTC hours)",
        )
        p.add_argument("--format", choices=["table", "json"], default="table")

    p = sub.add_parser("report", help="acceptance, survival, votes, corrections per group")
    window_args(p)
    p.add_argument(
        "--by", default="", help="group keys: model,prompt_version,day|hour,project,metadata.KEY"
    )
    add_filter_args(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "compare",
        help="compare two prompt versions or models, with 95%% intervals or, with "
        "--sequential, always-valid confidence sequences",
    )
    window_args(p)
    p.add_argument("--by", choices=["prompt_version", "model"], default="prompt_version")
    p.add_argument(
        "--sequential",
        action="store_true",
        help="always-valid confidence sequences: right however often you run the comparison "
        "(alpha shared by all metrics)",
    )
    p.add_argument("--alpha", help="error rate (default 0.05)")
    p.add_argument("a", help="the baseline (e.g. summarize@2)")
    p.add_argument("b", help="the candidate (e.g. summarize@3)")
    p.set_defaults(func=cmd_compare)


def _query(args: argparse.Namespace) -> dict[str, list[str]]:
    """The command's options as report parameters (the same names as over HTTP)."""

    params: dict[str, list[str]] = {"since": [args.since], "until": [args.until]}
    for name in ("project", "threshold"):
        if getattr(args, name, None) is not None:
            params[name] = [str(getattr(args, name))]
    if args.exact:
        params["exact"] = ["true"]
    if getattr(args, "by", "") and args.command == "report":
        params["by"] = [args.by]
    for model in getattr(args, "model", []):
        params.setdefault("model", []).append(model)
    for version in getattr(args, "prompt_version", []):
        params.setdefault("prompt_version", []).append(version)
    add_metadata(params, getattr(args, "metadata", []))
    return params


def _spec(params: dict[str, list[str]], settings: Any) -> Any:
    from kept_analytics.params import InvalidQuery, spec_from_params

    try:
        return spec_from_params(
            params, threshold=settings.kept_threshold, checkpoints=settings.survival_checkpoints
        )
    except InvalidQuery as exc:
        raise CliError(str(exc)) from None


def _show(args: argparse.Namespace, result: Any, table: Callable[[Any], str]) -> None:
    print(json.dumps(result, indent=2) if args.format == "json" else table(result))


def cmd_report(args: argparse.Namespace) -> int:

    params = _query(args)
    remote = remote_for(args)
    if remote is not None:
        groups = remote.call("GET", "/v1/report?" + urllib.parse.urlencode(params, doseq=True))
    else:
        from kept_analytics.report import report

        groups = with_outcomes(args, lambda store, settings: report(store, _spec(params, settings)))
    _show(args, groups, report_table)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:

    params = _query(args)
    method = {"sequential": [str(args.sequential).lower()]}
    if args.alpha is not None:
        method["alpha"] = [args.alpha]
    remote = remote_for(args)
    if remote is not None:
        query = params | method | {"by": [args.by], "a": [args.a], "b": [args.b]}
        result = remote.call("GET", "/v1/compare?" + urllib.parse.urlencode(query, doseq=True))
    else:
        from kept_analytics.compare import compare_groups
        from kept_analytics.params import InvalidQuery, compare_options

        try:
            options, _ = compare_options(method)
        except InvalidQuery as exc:
            raise CliError(str(exc)) from None

        def work(store: Any, settings: Any) -> Any:
            try:
                spec = _spec(params, settings)
                return compare_groups(
                    store,
                    spec,
                    args.by,
                    args.a,
                    args.b,
                    sequential=options.sequential,
                    alpha=options.alpha,
                ).model_dump()
            except ValueError as exc:
                raise CliError(str(exc)) from None

        result = with_outcomes(args, work)
    _show(args, result, compare_table)
    return 0


# ---- tables ------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report_table(groups: list[dict[str, Any]]) -> str:
    """Groups as an aligned text table: the headline metrics, one line per group."""
    if not groups:
        return "no generations in this window"
    from kept_analytics.metrics import GroupCounts, finalize

    metrics = set(finalize(GroupCounts(), ()))
    keys = [k for k in groups[0] if k not in metrics]
    checkpoints = list(groups[0]["kept_rate"])
    header = [*keys, "gens", "accept", *(f"kept@{c}s" for c in checkpoints), "votes", "vote+",
              "corrected", "similar", "p50 ms", "p95 ms", "cost $"]  # fmt: skip
    lines = [header]
    for g in groups:
        lines.append([
            *(str(g[k]) for k in keys), _num(g["generations"]), _pct(g["acceptance_rate"]),
            *(_pct(g["kept_rate"][c]) for c in checkpoints),
            _num(g["votes_up"] + g["votes_down"]), _pct(g["vote_score"]),
            _pct(g["correction_rate"]), _num(g["correction_similarity"], 2),
            _num(g["latency_ms_p50"]), _num(g["latency_ms_p95"]), _num(g["cost_usd_total"], 4),
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(
            c.ljust(w) if i < len(keys) else c.rjust(w) for i, (c, w) in enumerate(cells)
        )

    return "\n".join(line(row) for row in lines)


def _method(result: dict[str, Any]) -> str:
    level = f"{100 * (1 - result['alpha']):g}%"
    if result["method"] == "sequential":
        return (
            f"always-valid {level} confidence sequences, right however often this is run; "
            f"alpha {result['alpha']:g} shared by {len(result['comparisons'])} metrics "
            f"(Bonferroni: {result['metric_alpha']:.3g} each)"
        )
    return f"fixed-horizon {level} intervals (Newcombe), each metric on its own, for one look"


def compare_table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['key']}: {result['b']} (B) against {result['a']} (A)",
        f"method: {_method(result)}",
    ]
    for c in result["comparisons"]:
        if c["difference"] is None or c["ci_low"] is None:
            detail = "not enough data"
        else:
            detail = (
                f"{_pct(c['a'])} (n={c['a_n']}) → {_pct(c['b'])} (n={c['b_n']}): "
                f"{100 * c['difference']:+.1f} points, interval [{100 * c['ci_low']:+.1f}, "
                f"{100 * c['ci_high']:+.1f}] → {c['verdict']}"
            )
        lines.append(f"  {c['metric']:<16} {c['better'] + ' is better':<17} {detail}")
    return "\n".join(lines)
