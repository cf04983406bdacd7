"""What the deploy files ask of kept, checked against kept itself.

A container's command is parsed by kept's own argument parser, which names the role (the
command's handler); its environment must be fields of that role's settings classes and
validate as them; the address it serves metrics on follows from both, as kept computes it.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from contextlib import redirect_stderr
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]  # installed with kubernetes-validate
from pydantic_settings import BaseSettings

from kept_cli import jobs, kafka, store
from kept_cli.main import build_parser
from kept_ingest.consumer.settings import ConsumerSettings
from kept_ingest.kafka_settings import KafkaSettings
from kept_service.runtime.analytics_role import AnalyticsRoleSettings
from kept_service.runtime.settings import ServerSettings

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = ("127.", "localhost", "::1")


@dataclass(frozen=True)
class Role:
    name: str
    settings: type[BaseSettings]
    """The class whose fields the role reads from KEPT_* variables."""
    serves_metrics: bool

    @property
    def prefix(self) -> str:
        return str(self.settings.model_config.get("env_prefix", ""))

    def env_names(self) -> set[str]:
        return {f"{self.prefix}{field}".upper() for field in self.settings.model_fields}

    def default(self, field: str) -> Any:
        return self.settings.model_fields[field].default


ROLES: dict[Callable[[argparse.Namespace], int], Role] = {
    store.cmd_serve: Role("intake", ServerSettings, serves_metrics=True),
    store.cmd_consume: Role("consumer", ConsumerSettings, serves_metrics=True),
    # With --every: the analytics role (runtime/analytics_role.py).
    jobs.cmd_analytics_run: Role("analytics", AnalyticsRoleSettings, serves_metrics=True),
    kafka.cmd_create_topics: Role("topics", KafkaSettings, serves_metrics=False),
}


class BadCommand(AssertionError):
    """kept's parser refused a command line."""


def parse(argv: list[str]) -> argparse.Namespace:
    """`argv` (after the `kept` program name) as kept's parser reads it."""
    stderr = StringIO()
    try:
        with redirect_stderr(stderr):
            return build_parser().parse_args(argv)
    except SystemExit:
        raise BadCommand(f"kept {' '.join(argv)}: {stderr.getvalue().strip()}") from None


def role_of(args: argparse.Namespace) -> Role:
    role = ROLES.get(args.func)
    assert role is not None, f"{args.func.__name__} is no role the deploy files know"
    if role.name == "analytics":
        assert args.every is not None, "without --every, kept analytics run runs once and exits"
    return role


def check_env(role: Role, env: Mapping[str, str]) -> None:
    """Every variable is a setting of the role, and the values validate as its settings."""
    unknown = sorted(set(env) - role.env_names())
    assert not unknown, f"{role.name}: {unknown} are no settings of {role.settings.__name__}"
    # model_validate, unlike the constructor, reads nothing from this process's
    # environment: only the values given are checked.
    role.settings.model_validate({name[len(role.prefix) :].lower(): v for name, v in env.items()})


def setting(role: Role, env: Mapping[str, str], field: str) -> Any:
    """The value kept would use: the variable if given, else the field's default."""
    name = f"{role.prefix}{field}".upper()
    return env[name] if name in env else role.default(field)


def metrics_address(
    role: Role, args: argparse.Namespace, env: Mapping[str, str]
) -> tuple[str, int]:
    """Where the role serves /metrics: the intake on its HTTP port, the others on their own."""
    if role.name == "intake":
        return (
            args.host or setting(role, env, "host"),
            int(args.port or setting(role, env, "port")),
        )
    port = args.metrics_port or setting(role, env, "metrics_port")
    return (str(setting(role, env, "metrics_host")), int(port))


def is_loopback(host: str) -> bool:
    return host.startswith(LOOPBACK)


def kafka_members(role: Role) -> bool:
    """Roles that join the consumer group: `kept consume`, and `kept serve` with Kafka."""
    return role.name in ("intake", "consumer")


def project_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    assert match
    return match[1]


def kafka_version() -> str:
    """The Kafka release the tests run (deploy/kafka-local/kafka.sh)."""
    text = (ROOT / "deploy/kafka-local/kafka.sh").read_text()
    match = re.search(r'^KAFKA_VERSION="([^"]+)"', text, re.MULTILINE)
    assert match
    return match[1]


def image_tag(image: str) -> str | None:
    """The tag of `name[:tag]` (a registry port is no tag)."""
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def documents(text: str) -> list[dict[str, Any]]:
    """The documents of a multi-document YAML stream, empty ones left out."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def load_documents(path: Path) -> list[dict[str, Any]]:
    return documents(path.read_text())
