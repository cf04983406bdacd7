"""deploy/prometheus/kept-alerts.yml: valid and unit-tested by a real promtool (its cases
in deploy/prometheus/tests/), reading only metrics kept exports, and wired into compose
and Kubernetes."""

from __future__ import annotations

import posixpath
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from kept.spool import DEFAULT_MAX_BYTES
from kept_analytics.runner import AnalyticsMetrics
from kept_ingest.metrics import ConsumerMetrics, IngestMetrics
from kept_service.runtime.settings import ServerSettings
from tests.deploy import roles
from tests.deploy.test_prometheus import promtool  # noqa: F401  (the fixture)

RULES_DIR = roles.ROOT / "deploy/prometheus"
RULES = RULES_DIR / "kept-alerts.yml"
UNIT_TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))
COMPOSE_DIR = roles.ROOT / "deploy/compose"
CONFIGMAP = roles.ROOT / "deploy/kubernetes/alerts.yaml"
SEVERITIES = {"warning", "critical"}
ANNOTATIONS = {"summary", "description", "runbook"}
STATES = {
    "KeptTargetDown",
    "KeptJobDown",
    "KeptConsumerPaused",
    "KeptAnalyticsNoHolder",
    "KeptAnalyticsStalled",
}
"""Alerts on a state (down, paused, nobody holds...): no quantity to quote."""
PROMETHEUS_METRICS = {"up"}
"""Series Prometheus makes itself, which the rules may read too."""
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
KEPT_NAME = re.compile(r"(?<![\w:])kept[_:][A-Za-z0-9_:]*")


def rules() -> list[dict[str, Any]]:
    return [rule for group in roles.load_yaml(RULES)["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def recorded() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def names_in(expr: str) -> set[str]:
    """The kept series an expression reads (kept's own metrics and recorded series)."""
    return set(KEPT_NAME.findall(STRING.sub('""', expr)))


def exported_names() -> set[str]:
    """Every series name kept's registries export: the intake's, the consumer's and the
    analytics runner's metrics, as prometheus_client names their samples."""
    registry = CollectorRegistry()
    IngestMetrics(registry)
    ConsumerMetrics(registry)
    AnalyticsMetrics(registry)
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def unknown_names(exprs: list[str]) -> set[str]:
    known = exported_names() | recorded()
    return {name for expr in exprs for name in names_in(expr)} - known


def promtool_run(tool: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool), *map(str, args)], capture_output=True, text=True, cwd=roles.ROOT
    )


def unit_cases() -> Iterator[dict[str, Any]]:
    for path in UNIT_TESTS:
        yield from roles.load_yaml(path)["tests"]


def test_promtool_checks_the_rules(promtool: Path) -> None:  # noqa: F811
    result = promtool_run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool: Path, unit_test: Path) -> None:  # noqa: F811
    result = promtool_run(promtool, "test", "rules", unit_test)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    evaluated: set[str] = set()
    for case in unit_cases():
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
        evaluated |= {check["expr"] for check in case.get("promql_expr_test", [])}
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts no case makes fire"
    assert names - quiet == set(), "alerts no case keeps quiet"
    assert recorded() - evaluated == set(), "recording rules no case evaluates"
    assert UNIT_TESTS


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_every_alert_waits_has_a_severity_and_says_what_to_do(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Kept")
    assert re.fullmatch(r"\d+m", rule.get("for", "")), "alert only on what lasts minutes"
    assert rule["labels"]["severity"] in SEVERITIES
    assert set(rule["annotations"]) == ANNOTATIONS
    # A threshold crossed: say by how much.
    assert ("$value" in rule["annotations"]["description"]) == (rule["alert"] not in STATES)


def test_promtool_refuses_a_broken_rule_file(promtool: Path, tmp_path: Path) -> None:  # noqa: F811
    text = RULES.read_text()
    broken = {
        "unclosed.yml": text.replace("deriv(kept:consumer_lag:sum[10m])", "deriv((x[10m])", 1),
        "template.yml": text.replace("humanizePercentage", "humanisePercentage", 1),
        "field.yml": text.replace("        for: 5m", "        fore: 5m", 1),
    }
    expected = {
        "unclosed.yml": "parse error",
        "template.yml": 'function "humanisePercentage" not defined',
        "field.yml": "field fore not found",
    }
    for name, content in broken.items():
        assert content != text
        path = tmp_path / name
        path.write_text(content)
        result = promtool_run(promtool, "check", "rules", path)
        assert result.returncode != 0, name
        assert expected[name] in result.stdout + result.stderr, name


def test_the_unit_tests_catch_a_changed_threshold(promtool: Path, tmp_path: Path) -> None:  # noqa: F811
    """The cases pin the thresholds: a rule made laxer fails them."""
    (tmp_path / "tests").mkdir()
    lax = RULES.read_text().replace("kept:consumer_lag:sum > 1000", "kept:consumer_lag:sum > 5000")
    assert lax != RULES.read_text()
    (tmp_path / RULES.name).write_text(lax)
    unit_test = RULES_DIR / "tests/consumer.yml"
    shutil.copy(unit_test, tmp_path / "tests" / unit_test.name)
    result = promtool_run(promtool, "test", "rules", tmp_path / "tests" / unit_test.name)
    assert result.returncode != 0
    assert "KeptConsumerLagGrowing" in result.stdout + result.stderr


def test_every_metric_the_rules_read_is_one_kept_exports() -> None:
    exprs = [rule["expr"] for rule in rules()]
    read = {name for expr in exprs for name in names_in(expr)}
    assert {"kept_consumer_lag", "kept_client_spool_bytes", "kept_events_rejected_total"} <= read
    assert unknown_names(exprs) == set()
    # The check catches a name kept does not export.
    assert unknown_names(["rate(kept_events_rejectd_total[5m]) > 0"]) == {
        "kept_events_rejectd_total"
    }


def test_the_unit_tests_feed_series_kept_exports() -> None:
    known = exported_names() | PROMETHEUS_METRICS
    fed = {
        series["series"].strip("'").split("{", 1)[0]
        for case in unit_cases()
        for series in case["input_series"]
    }
    assert fed and fed - known == set()


def threshold(alert: str, pattern: str) -> float:
    expr = next(rule["expr"] for rule in alerts() if rule["alert"] == alert)
    match = re.search(pattern, expr)
    assert match, f"{alert}: {expr}"
    return float(match[1])


def test_thresholds_follow_kepts_own_limits() -> None:
    limit = ServerSettings.model_fields["pending_max_rows"].default
    assert threshold("KeptWriterBacklog", r"kept_writer_pending_rows\) > (\d+)") == 0.8 * limit
    spool = threshold("KeptClientSpoolNearlyFull", r"> (\d+)")
    assert spool == DEFAULT_MAX_BYTES / 2


def test_up_rules_match_the_kept_scrape_jobs_of_compose() -> None:
    config = roles.load_yaml(COMPOSE_DIR / "prometheus.yml")
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    pattern = re.search(r'up\{job=~"([^"]+)"\}', alerts()[0]["expr"])
    assert pattern
    kept_jobs = {job for job in jobs if re.fullmatch(pattern[1], job)}
    assert kept_jobs == {"kept-intake", "kept-consumer", "kept-analytics"}
    assert jobs - kept_jobs == {"prometheus"}


def test_compose_prometheus_loads_the_rules_here_and_in_its_container() -> None:
    config = roles.load_yaml(COMPOSE_DIR / "prometheus.yml")
    assert len(config["rule_files"]) == 1
    (rule_file,) = config["rule_files"]
    assert (COMPOSE_DIR / rule_file).resolve() == RULES
    mounts = {}
    for volume in roles.load_yaml(COMPOSE_DIR / "compose.yaml")["services"]["prometheus"][
        "volumes"
    ]:
        source, _, target = volume.partition(":")
        if source.startswith("."):
            mounts[target.split(":", 1)[0]] = (COMPOSE_DIR / source).resolve()
    config_in_container = next(t for t, s in mounts.items() if s.name == "prometheus.yml")
    rules_in_container = posixpath.normpath(
        posixpath.join(posixpath.dirname(config_in_container), rule_file)
    )
    assert mounts.get(rules_in_container) == RULES


def test_the_kubernetes_configmap_carries_the_rules_verbatim() -> None:
    (configmap,) = roles.load_documents(CONFIGMAP)
    assert configmap["kind"] == "ConfigMap"
    assert configmap["data"] == {RULES.name: RULES.read_text()}, (
        f"copy {RULES.relative_to(roles.ROOT)} into {CONFIGMAP.relative_to(roles.ROOT)}"
    )
    kustomization = roles.load_yaml(CONFIGMAP.parent / "kustomization.yaml")
    assert CONFIGMAP.name in kustomization["resources"]
