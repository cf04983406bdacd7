"""Commands that run or look after the service: serve, keys, migrate, status, schema, consume."""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any

from kept_cli.common import (
    CliError,
    add_data_args,
    config_error,
    kafka_imports,
    remote_for,
    server_imports,
    server_settings,
    setup_logging,
    with_local_store,
)


def cmd_serve(args: argparse.Namespace) -> int:
    server_imports()
    from kept_service.server import serve
    from kept_storage.datadir import DataDirBusy

    settings = server_settings(data=args.data, host=args.host, port=args.port)
    setup_logging(settings.log_level)
    try:
        serve(settings)
    except DataDirBusy as exc:
        raise CliError(f"{exc}. Stop it, or use another --data.") from None
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    remote = remote_for(args)
    if remote is not None:
        key = remote.call("POST", "/v1/admin/keys", {"project": args.project})["key"]
    else:
        from kept_ingest.keys import create_key, validate_project

        try:
            validate_project(args.project)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        key = with_local_store(args, lambda store: create_key(store, args.project))
    print(f"created a key for project {args.project!r}; it is shown only once:", file=sys.stderr)
    print(key)
    return 0


def _key_info(record: Any) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "project": record.project,
        "created_at": record.created_at.isoformat(),
        "revoked": record.revoked,
    }


def cmd_keys_list(args: argparse.Namespace) -> int:
    remote = remote_for(args)
    if remote is not None:
        query = f"?project={urllib.parse.quote(args.project)}" if args.project else ""
        keys = remote.call("GET", f"/v1/admin/keys{query}")["keys"]
    else:
        from kept_ingest.keys import list_keys

        records = with_local_store(args, lambda store: list_keys(store, args.project))
        keys = [_key_info(r) for r in records]
    if args.format == "json":
        print(json.dumps(keys, indent=2))
        return 0
    print(f"{'key id':<14}{'project':<24}{'created':<34}status")
    for k in keys:
        status = "revoked" if k["revoked"] else "active"
        print(f"{k['key_id']:<14}{k['project']:<24}{k['created_at']:<34}{status}")
    return 0


def _key_id(text: str) -> str:
    """A key id, or the id of a whole key (`kept_<id>_<secret>`)."""
    from kept_ingest.keys import KEY_ID_PATTERN, key_id_of

    key_id = key_id_of(text) or text
    if not re.match(KEY_ID_PATTERN, key_id):
        raise CliError(f"{text!r} is not a key id (12 lowercase letters or digits)")
    return key_id


def _on_key(args: argparse.Namespace, action: str, work: Callable[[Any, str], Any]) -> Any:
    """`action` (revoke, rotate) on the key of --key-id, remotely or on the local store."""
    key_id = _key_id(args.key_id)
    remote = remote_for(args)
    if remote is not None:
        return remote.call("POST", f"/v1/admin/keys/{key_id}/{action}")
    from kept_ingest.keys import UnknownKey

    try:
        return with_local_store(args, lambda store: work(store, key_id))
    except UnknownKey as exc:
        raise CliError(str(exc)) from None


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from kept_ingest.keys import revoke_key

    info = _on_key(args, "revoke", lambda store, key_id: _key_info(revoke_key(store, key_id)))
    print(f"revoked key {info['key_id']} of project {info['project']!r}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from kept_ingest.keys import rotate_key

    def local(store: Any, key_id: str) -> dict[str, Any]:
        key, old = rotate_key(store, key_id)
        return {"project": old.project, "key": key, "revoked": _key_info(old)}

    result = _on_key(args, "rotate", local)
    print(
        f"revoked key {result['revoked']['key_id']}; a new key for project "
        f"{result['project']!r}, shown only once:",
        file=sys.stderr,
    )
    print(result["key"])
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    remote = remote_for(args)
    if remote is not None:
        result = remote.call("POST", "/v1/admin/migrate")
        applied, version = result["applied"], result["version"]
    else:
        from kept_storage.migrate import current_version, migrate

        def run(store: Any) -> tuple[list[str], int]:
            names = [f"{m.version:04d}_{m.name}" for m in migrate(store)]
            return names, current_version(store)

        applied, version = with_local_store(args, run, migrate_first=False)
    print(f"schema version {version}; applied now: {', '.join(applied) or 'nothing'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    remote = remote_for(args)
    if remote is not None:
        status = remote.call("GET", "/v1/admin/status")
    else:
        from kept_service.runtime.status import store_status

        status = with_local_store(args, lambda store: store_status(store).model_dump())
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
    server_imports()
    from kept_ingest.contract import json_schema_text

    print(json_schema_text())
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    kafka_imports("kept consume")
    from pydantic import ValidationError

    from kept_ingest.consumer.service import ConsumerStopped, run_consume
    from kept_ingest.consumer.settings import consumer_settings
    from kept_storage.datadir import DataDirBusy

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
    setup_logging(settings.log_level)
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


def add_commands(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the whole service on this machine")
    add_data_args(p, url=False)
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8787)")
    p.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="project keys").add_subparsers(
        dest="keys_command", required=True
    )
    p = keys.add_parser("create", help="create a project key (printed as the last line)")
    p.add_argument("--project", required=True)
    add_data_args(p)
    p.set_defaults(func=cmd_keys_create)
    p = keys.add_parser("list", help="list keys (ids, projects, status; never secrets)")
    p.add_argument("--project", help="only this project's keys")
    p.add_argument("--format", choices=["table", "json"], default="table")
    add_data_args(p)
    p.set_defaults(func=cmd_keys_list)
    p = keys.add_parser("revoke", help="revoke a key (servers refuse it within seconds)")
    p.add_argument("key_id", help="the key id (the 12 characters after kept_) or the key")
    add_data_args(p)
    p.set_defaults(func=cmd_keys_revoke)
    p = keys.add_parser("rotate", help="a new key for the key's project; the old one revoked")
    p.add_argument("key_id", help="the key id (the 12 characters after kept_) or the key")
    add_data_args(p)
    p.set_defaults(func=cmd_keys_rotate)

    p = sub.add_parser("migrate", help="apply database migrations")
    add_data_args(p)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("status", help="what the store holds")
    add_data_args(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("schema", help="print the event JSON Schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("consume", help="consume events from Kafka into ClickHouse")
    p.add_argument("--data", help="data directory of the embedded store (default: $KEPT_DATA)")
    p.add_argument("--kafka", help="bootstrap servers host:9092,... (default: $KEPT_KAFKA)")
    p.add_argument("--topic", help="event topic (default: $KEPT_KAFKA_TOPIC or kept.events)")
    p.add_argument("--group", help="consumer group (default: $KEPT_KAFKA_GROUP or kept-ingest)")
    p.add_argument(
        "--metrics-port", type=int, help="port of /metrics (default: $KEPT_METRICS_PORT or 9464)"
    )
    p.set_defaults(func=cmd_consume)
