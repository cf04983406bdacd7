"""The `kept` command line.

Server commands import the server lazily, so the CLI (and `kept demo`) works with the
SDK alone and says which extra to install when a command needs more. Commands that
touch data go through the running server when one owns the data directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8787"
SERVER_EXTRA_HINT = "this command needs the server: pip install 'kept[server]'"


class CliError(Exception):
    """A failure to report on stderr as one clear line, with exit status 1."""


def _data_dir_arg(value: str | None) -> Path:
    return Path(value or os.environ.get("KEPT_DATA") or "kept-data")


def _server_imports() -> None:
    try:
        import fastapi  # noqa: F401

        import kept.ingest.storage  # noqa: F401
    except ImportError as exc:
        raise CliError(f"{SERVER_EXTRA_HINT} ({exc})") from None


def _settings(**overrides: object) -> Any:
    """The server's settings, with a clear error for a bad KEPT_* value or flag."""
    from pydantic import ValidationError

    from kept.ingest.settings import settings_with

    try:
        return settings_with(**overrides)
    except ValidationError as exc:
        raise config_error(exc) from None


def config_error(exc: Any) -> CliError:
    """A settings ValidationError as one line naming each KEPT_ variable at fault."""
    problems = "; ".join(
        f"KEPT_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
    )
    return CliError(f"invalid configuration: {problems}")


# ---- talking to a running server -------------------------------------------------------


def _http(method: str, url: str, token: str | None, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise CliError(f"{method} {url} failed: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(
            f"no kept server answers at {url.split('/v1')[0]} ({exc}). Start one with `kept serve`."
        ) from None


class _Remote:
    """The admin API of a server, found via its data directory or --url."""

    def __init__(self, url: str, token: str | None) -> None:
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--url must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if not self.token:
            raise CliError(
                "the server needs its admin token: run this on the server's machine with "
                "--data pointing at its data directory, or set KEPT_ADMIN_TOKEN"
            )
        return _http(method, self.url + path, self.token, body)


def _remote_for(args: argparse.Namespace) -> _Remote | None:
    """The server to go through, or None to open the store directly."""
    from kept.ingest.datadir import DataDir

    data_dir = DataDir(_data_dir_arg(args.data))
    token = os.environ.get("KEPT_ADMIN_TOKEN") or data_dir.read_admin_token()
    explicit = args.url or os.environ.get("KEPT_URL")
    if explicit:
        return _Remote(explicit, token)
    info = data_dir.server_info()
    if info is not None:
        return _Remote(info.url, token)
    if data_dir.is_held():
        raise CliError(f"{data_dir.path} is held by another kept process that serves no HTTP")
    return None


def _with_local_store(args: argparse.Namespace, work: Callable[[Any], Any]) -> Any:
    """Run `work(store)` on the data directory's store, owning the directory meanwhile."""
    _server_imports()
    from kept.ingest.datadir import DataDir, DataDirBusy
    from kept.ingest.storage import StorageError, Store, migrate

    settings = _settings(data=args.data)
    data_dir = DataDir(settings.data)
    try:
        data_dir.acquire()
    except DataDirBusy as exc:
        raise CliError(str(exc)) from None
    try:
        store = Store(settings.store_dir_dsn(data_dir), settings.database)
        try:
            migrate(store)
            return work(store)
        finally:
            store.close()
    except StorageError as exc:
        raise CliError(str(exc)) from None
    finally:
        data_dir.release()


# ---- commands ------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    _server_imports()
    from kept.ingest.datadir import DataDirBusy
    from kept.ingest.server import serve

    settings = _settings(data=args.data, host=args.host, port=args.port)
    try:
        serve(settings)
    except DataDirBusy as exc:
        raise CliError(f"{exc}. Stop it, or use another --data.") from None
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    remote = _remote_for(args)
    if remote is not None:
        key = remote.call("POST", "/v1/admin/keys", {"project": args.project})["key"]
    else:
        from kept.ingest.keys import create_key, validate_project

        try:
            validate_project(args.project)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        key = _with_local_store(args, lambda store: create_key(store, args.project))
    print(f"created a key for project {args.project!r}; it is shown only once:", file=sys.stderr)
    print(key)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    remote = _remote_for(args)
    if remote is not None:
        result = remote.call("POST", "/v1/admin/migrate")
        applied, version = result["applied"], result["version"]
    else:
        from kept.ingest.storage.migrate import current_version, migrate

        def run(store: Any) -> tuple[list[str], int]:
            names = [f"{m.version:04d}_{m.name}" for m in migrate(store)]
            return names, current_version(store)

        applied, version = _with_local_store(args, run)
    print(f"schema version {version}; applied now: {', '.join(applied) or 'nothing'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    remote = _remote_for(args)
    if remote is not None:
        status = remote.call("GET", "/v1/admin/status")
    else:
        from kept.ingest.status import store_status

        status = _with_local_store(args, lambda store: store_status(store).model_dump())
    if args.format == "json":
        print(json.dumps(status, indent=2))
        return 0
    print(f"schema version {status['schema_version']}, {status['keys']} key(s)")
    print(f"{'project':<24}{'generations':>14}{'feedback':>14}")
    for p in status["projects"]:
        print(f"{p['project']:<24}{p['generations']:>14}{p['feedback']:>14}")
    print(f"{'total':<24}{status['generations']:>14}{status['feedback']:>14}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    _server_imports()
    from kept.ingest.contract import json_schema_text

    print(json_schema_text())
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    _server_imports()
    try:
        import kafka  # noqa: F401
    except ImportError:
        raise CliError("kept consume needs kafka-python: pip install 'kept[server]'") from None
    from pydantic import ValidationError

    from kept.ingest.consumer.service import ConsumerStopped, run_consume
    from kept.ingest.consumer.settings import consumer_settings
    from kept.ingest.datadir import DataDirBusy

    try:
        settings = consumer_settings(
            data=args.data,
            kafka=args.kafka,
            kafka_topic=args.topic,
            kafka_group=args.group,
            metrics_port=args.metrics_port,
        )
    except ValidationError as exc:
        raise config_error(exc) from None
    try:
        run_consume(settings)
    except DataDirBusy as exc:
        raise CliError(
            f"{exc}. A kept serve with KEPT_KAFKA set consumes by itself; or use another "
            "--data, or KEPT_DSN for a ClickHouse server."
        ) from None
    except ConsumerStopped as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from kept.client import Client
    from kept.demo import run_demo
    from kept.timeparse import parse_duration

    try:
        duration = parse_duration(args.duration).total_seconds()
        backfill = parse_duration(args.backfill)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.rate <= 0:
        raise CliError("--rate must be positive")
    url, key = _demo_target(args)
    _http("GET", url + "/healthz", None)  # a clear error now beats silent drops later
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
    from kept.ingest.datadir import DataDir

    data_dir = DataDir(_data_dir_arg(args.data))
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


# ---- parser --------------------------------------------------------------------------------


def add_data_args(p: argparse.ArgumentParser, url: bool = True) -> None:
    """--data (and --url): where the data is, or which server holds it."""
    p.add_argument("--data", help="data directory (default: $KEPT_DATA or ./kept-data)")
    if url:
        p.add_argument(
            "--url", help="a running kept server (default: $KEPT_URL, or the one owning --data)"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kept", description="Feedback capture and acceptance monitoring for LLM apps."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data_args = add_data_args

    p = sub.add_parser("serve", help="run the whole service on this machine")
    data_args(p, url=False)
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8787)")
    p.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="project keys").add_subparsers(
        dest="keys_command", required=True
    )
    p = keys.add_parser("create", help="create a project key (printed as the last line)")
    p.add_argument("--project", required=True)
    data_args(p)
    p.set_defaults(func=cmd_keys_create)

    p = sub.add_parser("migrate", help="apply database migrations")
    data_args(p)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("status", help="what the store holds")
    data_args(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("schema", help="print the event JSON Schema")
    p.set_defaults(func=cmd_schema)

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

    p = sub.add_parser("consume", help="consume events from Kafka into ClickHouse")
    p.add_argument("--data", help="data directory of the embedded store (default: $KEPT_DATA)")
    p.add_argument("--kafka", help="bootstrap servers host:9092,... (default: $KEPT_KAFKA)")
    p.add_argument("--topic", help="event topic (default: $KEPT_KAFKA_TOPIC or kept.events)")
    p.add_argument("--group", help="consumer group (default: $KEPT_KAFKA_GROUP or kept-ingest)")
    p.add_argument(
        "--metrics-port", type=int, help="port of /metrics (default: $KEPT_METRICS_PORT or 9464)"
    )
    p.set_defaults(func=cmd_consume)

    from kept.cli_analytics import add_commands

    add_commands(sub)
    from kept import cli_dashboards

    cli_dashboards.add_commands(sub)
    from kept import cli_export

    cli_export.add_commands(sub)
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
