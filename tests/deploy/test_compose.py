"""deploy/compose: valid against the Compose Specification's schema, and consistent with
kept (commands, settings, ports), with its own parts (Kafka quorum, ClickHouse users,
Prometheus targets, Grafana provisioning) and with the files it mounts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest

from tests.deploy import roles

COMPOSE_DIR = roles.ROOT / "deploy/compose"
COMPOSE = roles.load_yaml(COMPOSE_DIR / "compose.yaml")
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ENV_EXAMPLE = COMPOSE_DIR / "kept.env.example"
SCHEMA = json.loads((roles.ROOT / "tests/data/compose-spec.schema.json").read_text())
"""The Compose Specification's (tests/data/compose-spec.NOTICE.md)."""
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")
SAMPLE_SECRET = "0123456789abcdef" * 4
"""What the tests put in for every ${VAR} (hex, as kept.env.example asks)."""

KEPT_SERVICES = sorted(n for n, s in SERVICES.items() if s["image"].startswith("kept:"))
KAFKA_SERVICES = sorted(n for n, s in SERVICES.items() if s["image"].startswith("apache/kafka:"))


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def interpolated(value: Any) -> str:
    """A value as compose passes it, every ${VAR} filled with the sample secret."""
    return INTERPOLATION.sub(SAMPLE_SECRET, str(value)).replace("$$", "$")


def env_of(service: str) -> dict[str, str]:
    return {k: interpolated(v) for k, v in SERVICES[service].get("environment", {}).items()}


def kept_process(service: str) -> tuple[roles.Role, Any, dict[str, str]]:
    args = roles.parse(list(SERVICES[service]["command"]))
    return roles.role_of(args), args, env_of(service)


def env_example() -> dict[str, str]:
    """kept.env.example's variables and their values (comments left out)."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name: value for name, value in pairs}


def replicas(service: str) -> int:
    return int(SERVICES[service].get("deploy", {}).get("replicas", 1))


def test_compose_file_validates_against_the_compose_specification() -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(COMPOSE)
    assert {"intake", "consumer", "analytics", "topics", "clickhouse", "grafana"} <= set(SERVICES)


def test_the_schema_catches_a_misspelt_key() -> None:
    broken = {"services": {"intake": {"image": "kept:0.1.0", "enviroment": {}}}}
    with pytest.raises(jsonschema.ValidationError, match="enviroment"):
        jsonschema.Draft7Validator(SCHEMA).validate(broken)


def test_every_image_is_pinned() -> None:
    for name, service in SERVICES.items():
        tag = roles.image_tag(service["image"])
        assert tag and tag != "latest", f"{name}: pin {service['image']} to a version"
    kept_tags = {roles.image_tag(SERVICES[n]["image"]) for n in KEPT_SERVICES}
    assert kept_tags == {roles.project_version()}
    kafka_tags = {roles.image_tag(SERVICES[n]["image"]) for n in KAFKA_SERVICES}
    assert kafka_tags == {roles.kafka_version()}, "run the Kafka release the tests run"


@pytest.mark.parametrize("service", KEPT_SERVICES)
def test_kept_environment_is_the_roles_settings(service: str) -> None:
    role, _, env = kept_process(service)
    roles.check_env(role, env)


def test_an_unknown_setting_is_caught() -> None:
    role, _, env = kept_process("intake")
    with pytest.raises(AssertionError, match="KEPT_FEEDBACK_SECERT"):
        roles.check_env(role, env | {"KEPT_FEEDBACK_SECERT": SAMPLE_SECRET})


def test_a_misspelt_flag_is_caught() -> None:
    with pytest.raises(roles.BadCommand, match="--prot"):
        roles.parse(["serve", "--host", "0.0.0.0", "--prot", "8787"])


def test_roles_and_replicas() -> None:
    by_role: dict[str, list[str]] = {}
    for service in KEPT_SERVICES:
        by_role.setdefault(kept_process(service)[0].name, []).append(service)
    assert {role: [replicas(s) for s in services] for role, services in by_role.items()} == {
        "intake": [2],
        "consumer": [2],
        "analytics": [2],
        "topics": [1],
    }
    role, _, env = kept_process("intake")
    # Shared secrets: a replica in Kafka mode must not make its own.
    assert {"KEPT_KAFKA", "KEPT_FEEDBACK_SECRET", "KEPT_ADMIN_TOKEN"} <= set(env)
    assert float(roles.setting(role, env, "analytics_interval_s")) == 0, "analytics has a role"


def test_consumer_group_fits_the_partitions() -> None:
    members, groups = 0, set()
    for service in KEPT_SERVICES:
        role, _, env = kept_process(service)
        if roles.kafka_members(role):
            members += replicas(service)
            groups.add(roles.setting(role, env, "kafka_group"))
    topics_role, _, topics_env = kept_process("topics")
    partitions = int(roles.setting(topics_role, topics_env, "kafka_partitions"))
    assert len(groups) == 1, f"intake and consumers must share one group, not {groups}"
    assert 0 < members <= partitions, f"{members} group members for {partitions} partitions"


def test_kafka_cluster_is_one_quorum_that_kept_reaches() -> None:
    nodes = {}
    for name in KAFKA_SERVICES:
        env = env_of(name)
        nodes[int(env["KAFKA_NODE_ID"])] = name
        assert f"PLAINTEXT://{name}:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        assert "PLAINTEXT://:9092" in env["KAFKA_LISTENERS"].split(",")
    voters = env_of(KAFKA_SERVICES[0])["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters == ",".join(f"{i}@{nodes[i]}:9093" for i in sorted(nodes))
    assert len({env_of(n)["CLUSTER_ID"] for n in KAFKA_SERVICES}) == 1
    bootstrap = ",".join(f"{nodes[i]}:9092" for i in sorted(nodes))
    brokers = env_of(KAFKA_SERVICES[0])
    for service in KEPT_SERVICES:
        role, _, env = kept_process(service)
        if "KEPT_KAFKA" in env or role.name in ("intake", "consumer", "topics"):
            assert env.get("KEPT_KAFKA") == bootstrap, service
    role, _, env = kept_process("topics")
    factor = int(roles.setting(role, env, "kafka_replication_factor"))
    min_insync = int(roles.setting(role, env, "kafka_min_insync_replicas"))
    assert factor <= len(nodes), f"replication factor {factor} on {len(nodes)} brokers"
    assert min_insync < factor, "acks=all must survive the loss of a broker"
    assert int(brokers["KAFKA_MIN_INSYNC_REPLICAS"]) == min_insync
    assert int(brokers["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == factor
    assert brokers["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_kept_reaches_clickhouse_as_the_user_the_image_creates() -> None:
    clickhouse = SERVICES["clickhouse"]["environment"]
    for service in KEPT_SERVICES:
        if "KEPT_DSN" not in kept_process(service)[0].env_names():
            continue
        raw = SERVICES[service]["environment"]["KEPT_DSN"]
        dsn = urlparse(interpolated(raw))
        assert (dsn.scheme, dsn.hostname, dsn.port) == ("http", "clickhouse", 8123), service
        assert dsn.username == clickhouse["CLICKHOUSE_USER"], service
        assert INTERPOLATION.findall(raw) == INTERPOLATION.findall(
            clickhouse["CLICKHOUSE_PASSWORD"]
        ), f"{service}: the DSN's password is not the one ClickHouse is given"


def test_grafana_provisioning_matches_the_stack() -> None:
    provisioning = roles.load_yaml(
        roles.ROOT / "deploy/grafana/provisioning/datasources/kept.yaml"
    )["datasources"]
    clickhouse = next(d for d in provisioning if d["type"] == "grafana-clickhouse-datasource")
    prometheus = next(d for d in provisioning if d["type"] == "prometheus")
    assert clickhouse["jsonData"]["host"] in SERVICES
    assert clickhouse["jsonData"]["port"] == 8123
    assert urlparse(prometheus["url"]).hostname in SERVICES
    assert urlparse(prometheus["url"]).port == 9090
    # Grafana's read-only user: the one the datasource logs in as, with the password both
    # containers are given, allowed to read the database kept writes.
    password_var = clickhouse["secureJsonData"]["password"].lstrip("$")
    user_file = COMPOSE_DIR / "clickhouse/grafana-user.xml"
    users = ET.parse(user_file).getroot().find("users")  # noqa: S314 - a file of ours
    assert users is not None
    user = users.find(clickhouse["jsonData"]["username"])
    assert user is not None, f"{user_file} defines no user {clickhouse['jsonData']['username']}"
    password = user.find("password")
    assert password is not None and password.get("from_env") == password_var
    assert password_var in SERVICES["clickhouse"]["environment"]
    assert password_var in SERVICES["grafana"]["environment"]
    grants = [q.text or "" for q in user.iter("query")]
    database = clickhouse["jsonData"]["defaultDatabase"]
    assert grants == [f"GRANT SELECT ON {database}.*"]
    for service in KEPT_SERVICES:
        role, _, env = kept_process(service)
        if "KEPT_DATABASE" in role.env_names():
            assert roles.setting(role, env, "database") == database, service


def test_prometheus_scrapes_every_kept_process_where_it_listens() -> None:
    config = roles.load_yaml(COMPOSE_DIR / "prometheus.yml")
    scraped: dict[str, int] = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A"
            for name in sd["names"]:
                assert name in SERVICES, f"job {job['job_name']}: no service {name}"
                scraped[name] = sd["port"]
    serving = []
    for service in KEPT_SERVICES:
        role, args, env = kept_process(service)
        if not role.serves_metrics:
            continue
        serving.append(service)
        host, port = roles.metrics_address(role, args, env)
        assert scraped.get(service) == port, f"{service} serves /metrics on {port}"
        assert not roles.is_loopback(host), f"{service} listens on {host}: not scrapable"
    assert sorted(scraped) == sorted(serving)


def test_intake_replicas_have_one_address() -> None:
    conf = (COMPOSE_DIR / "nginx/intake.conf").read_text()
    role, args, env = kept_process("intake")
    _, port = roles.metrics_address(role, args, env)
    assert re.search(rf"^\s*server intake:{port} resolve;", conf, re.MULTILINE)
    lb = next(s for s in SERVICES.values() if s["image"].startswith("nginx:"))
    assert "intake" in lb["depends_on"]


def test_variables_are_required_and_listed_in_the_env_example() -> None:
    used = {}
    for text in strings(COMPOSE):
        for name, rest in INTERPOLATION.findall(text):
            used[name] = rest
    assert set(used) == set(env_example())
    lax = sorted(name for name, rest in used.items() if not rest.startswith(":?"))
    assert not lax, f"{lax} would silently be empty: use ${{NAME:?message}}"
    filled = sorted(name for name, value in env_example().items() if value)
    assert not filled, f"kept.env.example holds placeholders, never values: {filled}"


def test_mounted_and_built_paths_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")) and ":" in volume:
                assert (COMPOSE_DIR / source).exists(), f"{name} mounts {source}"
        build = service.get("build")
        if build:
            context = COMPOSE_DIR / build["context"]
            assert (context / build["dockerfile"]).is_file(), name
    dockerfile = COMPOSE_DIR / "Dockerfile"
    ignore = (COMPOSE_DIR / "Dockerfile.dockerignore").read_text().splitlines()
    sources = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile.read_text(), re.MULTILINE)
    for source in (s for line in sources for s in line.split()):
        assert (roles.ROOT / source).exists(), f"the Dockerfile copies {source}"
        assert f"!{source}" in ignore, f"Dockerfile.dockerignore leaves out {source}"


def test_docker_compose_config_where_the_client_exists(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True).returncode
    ):
        pytest.skip("no Docker client with the compose plugin here; the schema check stands")
    env_file = tmp_path / "kept.env"
    env_file.write_text("".join(f"{name}={SAMPLE_SECRET}\n" for name in env_example()))
    result = subprocess.run(
        [docker, "compose", "--env-file", str(env_file), "-f", "compose.yaml", "config", "-q"],
        cwd=COMPOSE_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
