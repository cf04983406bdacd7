"""The `kept` command line.

Server commands import the server lazily, so the CLI (and `kept demo`) works with the
SDK alone and says which extra to install when a command needs more. Commands that
touch data go through the running server when one owns the data directory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kept_cli import alerts, analytics, dashboards, demo_command, export, jobs, kafka, store
from kept_cli.common import CliError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kept", description="Feedback capture and acceptance monitoring for LLM apps."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # The order of the help text.
    for module in (store, kafka, demo_command, analytics, jobs, alerts, dashboards, export):
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except CliError as exc:
        print(f"kept: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `kept status | head` is fine
        sys.stderr.close()
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
