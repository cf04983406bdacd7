"""deploy/kubernetes: every manifest valid against Kubernetes' own OpenAPI schemas (from
kubernetes-validate), and consistent with kept (commands, settings, ports) and with
itself (probes, Services, references to the ConfigMap and the Secret)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped,unused-ignore]
import pytest
from kubernetes_validate import utils as kv_utils

from tests.deploy import roles

DIR = roles.ROOT / "deploy/kubernetes"
KUSTOMIZATION = roles.load_yaml(DIR / "kustomization.yaml")
SECRET_TEMPLATE = DIR / "secret.example.yaml"
RESOURCES = [doc for name in KUSTOMIZATION["resources"] for doc in roles.load_documents(DIR / name)]
SECRET = roles.load_documents(SECRET_TEMPLATE)[0]
CONFIG = next(d for d in RESOURCES if d["kind"] == "ConfigMap")
WORKLOADS = [d for d in RESOURCES if d["kind"] in ("Deployment", "Job")]
# The three newest Kubernetes minors the package has schemas for: an API removed lately
# fails on the newest, one too new fails on the oldest.
VERSIONS = sorted(set(kv_utils.all_versions()), key=lambda v: tuple(map(int, v.split("."))))[-3:]
EXPECTED_REPLICAS = {"intake": 2, "consumer": 2, "analytics": 2}
PLACEHOLDER = "CHANGE-ME"
SAMPLE_SECRET = "0123456789abcdef" * 4


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return list(workload["spec"]["template"]["spec"]["containers"])


def env_of(container: dict[str, Any], filled: bool = True) -> dict[str, str]:
    """The container's variables, with ConfigMap and Secret references looked up (and the
    Secret template's placeholders filled in, unless not `filled`)."""
    secret = {
        key: value.replace(PLACEHOLDER, SAMPLE_SECRET) if filled else value
        for key, value in SECRET["stringData"].items()
    }
    sources = {("configMapKeyRef", CONFIG["metadata"]["name"]): CONFIG["data"]}
    sources[("secretKeyRef", SECRET["metadata"]["name"])] = secret
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ((kind, ref),) = var["valueFrom"].items()
        values = sources.get((kind, ref["name"]))
        assert values is not None, f"{var['name']}: no {kind} {ref['name']} in deploy/kubernetes"
        assert ref["key"] in values, f"{var['name']}: {ref['name']} has no key {ref['key']}"
        env[var["name"]] = values[ref["key"]]
    assert "envFrom" not in container, "name each variable: the settings check needs them"
    return env


def kept_process(container: dict[str, Any]) -> tuple[roles.Role, Any, dict[str, str]]:
    command = list(container["command"])
    assert command[0] == "kept", command
    args = roles.parse(command[1:])
    return roles.role_of(args), args, env_of(container)


def kept_containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(w, c) for w in WORKLOADS for c in containers(w)]


def container_ports(container: dict[str, Any]) -> dict[str | int, int]:
    """Each port by name and by number, to its number."""
    ports: dict[str | int, int] = {}
    for port in container.get("ports", []):
        ports[port["containerPort"]] = port["containerPort"]
        if "name" in port:
            ports[port["name"]] = port["containerPort"]
    return ports


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("doc", [*RESOURCES, SECRET], ids=name_of)
def test_manifest_validates_against_kubernetes_schemas(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_schemas_catch_a_misspelt_field() -> None:
    deployment = next(d for d in RESOURCES if d["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(KUSTOMIZATION["resources"])
    on_disk = {p.name for p in DIR.glob("*.yaml")} - {"kustomization.yaml", SECRET_TEMPLATE.name}
    assert listed == on_disk
    # The Secret is applied by hand, from the template, never with placeholder values.
    assert all(d["kind"] != "Secret" for d in RESOURCES)
    assert all(PLACEHOLDER in value for value in SECRET["stringData"].values())


def test_the_unfilled_secret_template_is_refused() -> None:
    intake = next(c for _, c in kept_containers() if kept_process(c)[0].name == "intake")
    role = kept_process(intake)[0]
    with pytest.raises(ValueError, match="at least 16 characters"):
        roles.check_env(role, env_of(intake, filled=False))


def test_images_are_the_projects_version() -> None:
    for workload, container in kept_containers():
        assert roles.image_tag(container["image"]) == roles.project_version(), name_of(workload)


@pytest.mark.parametrize("workload", WORKLOADS, ids=name_of)
def test_kept_environment_is_the_roles_settings(workload: dict[str, Any]) -> None:
    for container in containers(workload):
        role, _, env = kept_process(container)
        roles.check_env(role, env)


def test_roles_and_replicas() -> None:
    found = {}
    for workload, container in kept_containers():
        role = kept_process(container)[0]
        if workload["kind"] == "Deployment":
            found[role.name] = workload["spec"]["replicas"]
        else:
            assert role.name == "topics", f"{name_of(workload)} is a Job but runs {role.name}"
    assert found == EXPECTED_REPLICAS
    intake = next(c for w, c in kept_containers() if kept_process(c)[0].name == "intake")
    role, _, env = kept_process(intake)
    assert {"KEPT_KAFKA", "KEPT_FEEDBACK_SECRET", "KEPT_ADMIN_TOKEN"} <= set(env)
    assert float(roles.setting(role, env, "analytics_interval_s")) == 0, "analytics has a role"


def test_consumer_group_fits_the_partitions() -> None:
    members, groups, partitions = 0, set(), None
    for workload, container in kept_containers():
        role, _, env = kept_process(container)
        if roles.kafka_members(role):
            members += workload["spec"]["replicas"]
            groups.add(roles.setting(role, env, "kafka_group"))
        if role.name == "topics":
            partitions = int(roles.setting(role, env, "kafka_partitions"))
    assert partitions is not None, "no Job creates the topics"
    assert len(groups) == 1, f"intake and consumers must share one group, not {groups}"
    assert 0 < members <= partitions, f"{members} group members for {partitions} partitions"


@pytest.mark.parametrize("workload", WORKLOADS, ids=name_of)
def test_probes_and_scrape_annotations_name_the_ports_kept_listens_on(
    workload: dict[str, Any],
) -> None:
    template = workload["spec"]["template"]
    if workload["kind"] == "Deployment":
        assert (
            workload["spec"]["selector"]["matchLabels"].items()
            <= template["metadata"]["labels"].items()
        )
    for container in containers(workload):
        role, args, env = kept_process(container)
        ports = container_ports(container)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in container:
                port = container[probe]["httpGet"]["port"]
                assert port in ports, f"{name_of(workload)} {probe}: no container port {port}"
        if role.name == "intake":
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        annotations = template["metadata"].get("annotations", {})
        if role.serves_metrics:
            host, port = roles.metrics_address(role, args, env)
            assert not roles.is_loopback(host), f"{name_of(workload)} listens on {host}"
            assert annotations.get("prometheus.io/scrape") == "true", name_of(workload)
            assert int(annotations["prometheus.io/port"]) == port, name_of(workload)
            assert port in ports.values(), f"{name_of(workload)}: declare port {port}"
        else:
            assert "prometheus.io/scrape" not in annotations


def test_services_select_pods_and_target_their_ports() -> None:
    services = [d for d in RESOURCES if d["kind"] == "Service"]
    assert services
    for service in services:
        selector = service["spec"]["selector"].items()
        matched = [
            w for w in WORKLOADS if selector <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matched) == 1, f"{name_of(service)} selects {[name_of(w) for w in matched]}"
        ports = {k: v for c in containers(matched[0]) for k, v in container_ports(c).items()}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{name_of(service)}: {port['targetPort']}"


def test_kubectl_kustomize_renders_the_same_objects_where_kubectl_exists() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here; the manifests were checked file by file")
    result = subprocess.run(
        [kubectl, "kustomize", str(DIR)], capture_output=True, text=True, check=True
    )
    rendered = roles.documents(result.stdout)
    assert sorted(map(name_of, rendered)) == sorted(map(name_of, RESOURCES))


def test_secret_template_holds_what_the_manifests_reference() -> None:
    referenced = {
        var["valueFrom"]["secretKeyRef"]["key"]
        for _, container in kept_containers()
        for var in container.get("env", [])
        if "secretKeyRef" in var.get("valueFrom", {})
    }
    assert referenced == set(SECRET["stringData"])
