"""`kept export`: fine-tuning data to files.

Through a running server (`GET /v1/export` with the admin token) when one owns the data
directory; otherwise on the store directly, after folding in new events. Either way the
store's side redacts, deduplicates and samples; this side splits into files.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kept_cli.common import (
    CliError,
    add_data_args,
    add_filter_args,
    add_metadata,
    remote_for,
    with_outcomes,
)
from kept_wire.export import FORMATS, redact_record


def add_commands(sub: Any) -> None:
    """Register `kept export` on the `kept` parser."""

    p = sub.add_parser(
        "export",
        help="fine-tuning data: openai-chat, dpo or jsonl",
        description="Write corrected and well-rated generations as a training set. Without "
        "feedback filters, openai-chat exports what users endorsed (corrected, or accepted or "
        "up-voted and not down-voted); dpo exports corrections over outputs and liked over "
        "disliked outputs of the same prompt; jsonl exports every selected generation.",
    )
    add_data_args(p)
    p.add_argument("--format", choices=FORMATS, default="openai-chat")
    p.add_argument("--out", required=True, type=Path, help="the file to write (train part)")
    p.add_argument("--since", help="start: 7d (ago) or an ISO date/time (default: all time)")
    p.add_argument("--until", help="end: now, 1h (ago) or an ISO date/time (default: now)")
    p.add_argument("--project", help="only this project")
    add_filter_args(p)
    p.add_argument("--accepted", action=argparse.BooleanOptionalAction,
                   help="only accepted (or, --no-accepted, not accepted) generations")  # fmt: skip
    p.add_argument("--vote", choices=["up", "down"], help="only generations with this latest vote")
    p.add_argument("--corrected", action=argparse.BooleanOptionalAction,
                   help="only corrected (or, --no-corrected, uncorrected) generations")  # fmt: skip
    p.add_argument("--kept-at", type=int, metavar="T",
                   help="only output kept at checkpoint T s (survival ≥ threshold)")  # fmt: skip
    p.add_argument("--threshold", type=float, help="kept threshold (default: server setting)")
    p.add_argument("--min-score", action="append", default=[], metavar="NAME=VALUE",
                   help="only generations with score NAME ≥ VALUE (repeatable)")  # fmt: skip
    p.add_argument("--dpo-form", choices=["conversational", "standard"], default="conversational",
                   help="dpo: message lists (default) or plain strings")  # fmt: skip
    p.add_argument("--no-dedup", action="store_true", help="keep repeated (prompt, target) pairs")
    p.add_argument("--sample", type=float, help="deterministic fraction to keep, e.g. 0.1")
    p.add_argument("--limit", type=int, help="at most this many examples")
    p.add_argument("--split", type=float, metavar="SHARE",
                   help="train share, e.g. 0.9: FILE gets train, FILE's .validation sibling "
                   "the rest (by prompt: a prompt is never in both)")  # fmt: skip
    redaction = p.add_mutually_exclusive_group()
    redaction.add_argument("--redact", metavar="MODULE:FUNCTION",
                           help="a str -> str PII hook instead of the default (e-mails, phones, "
                           "API keys)")  # fmt: skip
    redaction.add_argument("--no-redact", action="store_true", help="export text as stored")
    p.set_defaults(func=cmd_export)


def _params(args: argparse.Namespace) -> dict[str, list[str]]:
    """The command's options as export parameters (the same names as over HTTP)."""

    params: dict[str, list[str]] = {"format": [args.format]}
    for name in ("since", "until", "project", "vote", "kept_at", "threshold", "sample", "limit",
                 "split"):  # fmt: skip
        if getattr(args, name) is not None:
            params[name] = [str(getattr(args, name))]
    for name in ("accepted", "corrected"):
        if getattr(args, name) is not None:
            params[name] = [str(getattr(args, name)).lower()]
    if args.format == "dpo":
        params["dpo_form"] = [args.dpo_form]
    if args.no_dedup:
        params["dedup"] = ["false"]
    if args.no_redact or args.redact:
        # A custom hook runs here; the store's side then sends text as stored.
        params["redact"] = ["none"]
    params["model"], params["prompt_version"] = list(args.model), list(args.prompt_version)
    params["min_score"] = list(args.min_score)
    add_metadata(params, args.metadata)
    return {k: v for k, v in params.items() if v}


def _remote_records(remote: Any, params: dict[str, list[str]], summary: dict[str, Any]
                    ) -> Iterator[tuple[str, dict[str, Any]]]:  # fmt: skip

    query = urllib.parse.urlencode(params | {"envelope": ["true"]}, doseq=True)
    url = f"{remote.url}/v1/export?{query}"
    if not remote.token:
        remote.call("GET", "/v1/export")  # raises the CLI's "needs its admin token" error
    auth = {"Authorization": f"Bearer {remote.token}"}
    request = urllib.request.Request(url, headers=auth)  # noqa: S310 - http(s), checked
    try:
        with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 - http(s)
            for raw in response:
                item = json.loads(raw)
                if "summary" in item:
                    summary.update(item["summary"])
                    return
                yield item["part"], item["record"]
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise CliError(f"GET {remote.url}/v1/export failed: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CliError(f"the export from {remote.url} broke off: {exc}") from None
    raise CliError(f"the export from {remote.url} ended without its summary (server error?)")


def cmd_export(args: argparse.Namespace) -> int:

    hook: Callable[[str], str] | None = None
    if args.redact:
        from kept_analytics.export import load_redactor

        try:
            hook = load_redactor(args.redact)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    params = _params(args)
    split = args.split is not None
    remote = remote_for(args)
    summary: dict[str, Any] = {}
    if remote is not None:
        _spec(params, threshold=0.5)  # refuse bad options before asking the server
        records = _remote_records(remote, params, summary)
        if hook is not None:
            records = ((part, redact_record(r, hook)) for part, r in records)
        files = _write(records, args.out, split)
    else:
        files = _local(args, params, hook, summary)
    parts = summary.get("parts", {})
    skipped = ", ".join(f"{k} {v}" for k, v in summary.get("skipped", {}).items()) or "none"
    written = ", ".join(
        f"{f} ({parts.get(p, 0)})" for f, p in zip(files, ("train", "validation"), strict=False)
    )
    print(f"exported {summary.get('written', 0)} example(s) to {written}; skipped: {skipped}",
          file=sys.stderr)  # fmt: skip
    return 0


def _spec(params: dict[str, list[str]], threshold: float) -> Any:
    """The export's spec, by the parser the server uses too."""
    from kept_analytics.export import spec_from_params
    from kept_analytics.params import InvalidQuery

    try:
        return spec_from_params(params, threshold=threshold)
    except InvalidQuery as exc:
        raise CliError(str(exc)) from None


def _write(records: Any, out: Path, split: bool) -> list[Path]:
    from kept_analytics.export import write
    from kept_analytics.export.writer import Progress

    try:
        return write(records, out, split, Progress())
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc}") from None


def _local(args: argparse.Namespace, params: dict[str, list[str]],
           hook: Callable[[str], str] | None, summary: dict[str, Any]) -> list[Path]:  # fmt: skip

    def work(store: Any, settings: Any) -> list[Path]:
        from kept_analytics.export import Summary, default_redact, no_redact, run

        spec = _spec(params, threshold=settings.kept_threshold)
        done = Summary()
        redact = hook or (default_redact if spec.redact else no_redact)
        files = _write(run(store, spec, redact, done), args.out, args.split is not None)
        summary.update(done.as_dict())
        return files

    result: list[Path] = with_outcomes(args, work)
    return result
