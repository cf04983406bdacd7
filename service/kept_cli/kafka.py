"""`kept kafka create-topics`: the event and dead-letter topics, as the settings say."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kept_cli.common import CliError, config_error, kafka_imports


def add_commands(sub: Any) -> None:
    """Register `kept kafka ...` on the `kept` parser."""
    kafka = sub.add_parser("kafka", help="Kafka topics").add_subparsers(
        dest="kafka_command", required=True
    )
    p = kafka.add_parser(
        "create-topics",
        help="create the event and dead-letter topics (existing ones are compared, not changed)",
    )
    p.add_argument("--kafka", help="bootstrap servers host:9092,... (default: $KEPT_KAFKA)")
    p.add_argument("--topic", help="event topic (default: $KEPT_KAFKA_TOPIC or kept.events)")
    p.add_argument(
        "--dlq-topic", help="dead-letter topic (default: $KEPT_KAFKA_DLQ_TOPIC or kept.events.dlq)"
    )
    p.add_argument(
        "--partitions",
        type=int,
        help="event topic partitions (default: $KEPT_KAFKA_PARTITIONS or 12)",
    )
    p.add_argument(
        "--replication-factor",
        type=int,
        help="copies of each partition (default: $KEPT_KAFKA_REPLICATION_FACTOR or 3)",
    )
    p.add_argument(
        "--min-insync-replicas",
        type=int,
        help="copies before a message is acknowledged (default: $KEPT_KAFKA_MIN_INSYNC_REPLICAS "
        "or 2)",
    )
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_create_topics)


def cmd_create_topics(args: argparse.Namespace) -> int:
    kafka_imports("kept kafka")
    from pydantic import ValidationError

    from kept_ingest.kafka_settings import KafkaSettings
    from kept_ingest.topics import TopicsError, ensure_topics
    from kept_storage.settings import with_overrides

    try:
        settings = with_overrides(
            KafkaSettings(),
            kafka=args.kafka,
            kafka_topic=args.topic,
            kafka_dlq_topic=args.dlq_topic,
            kafka_partitions=args.partitions,
            kafka_replication_factor=args.replication_factor,
            kafka_min_insync_replicas=args.min_insync_replicas,
        )
    except ValidationError as exc:
        raise config_error(exc) from None
    try:
        outcomes = ensure_topics(settings)
    except TopicsError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:  # kafka-python's: unreachable, refused, too old
        raise CliError(f"Kafka at {settings.kafka}: {type(exc).__name__}: {exc}") from None
    if args.format == "json":
        print(json.dumps([_as_dict(o) for o in outcomes], indent=2))
    else:
        for outcome in outcomes:
            spec = outcome.spec
            detail = "; ".join(outcome.differences) or (
                f"{spec.partitions} partitions, replication factor {spec.replication_factor}, "
                + ", ".join(f"{k}={v}" for k, v in sorted(spec.configs.items()))
            )
            print(f"{spec.name}\t{outcome.status}\t{detail}")
    differing = [o.spec.name for o in outcomes if o.status == "differs"]
    if differing:
        verb = "differs" if len(differing) == 1 else "differ"
        raise CliError(
            f"{' and '.join(differing)} {verb} from the settings; kept does not change "
            "existing topics: change them with Kafka's tools, or the settings to match"
        )
    return 0


def _as_dict(outcome: Any) -> dict[str, Any]:
    spec = outcome.spec
    return {
        "topic": spec.name,
        "status": outcome.status,
        "partitions": spec.partitions,
        "replication_factor": spec.replication_factor,
        "configs": spec.configs,
        "differences": list(outcome.differences),
    }
