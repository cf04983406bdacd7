"""The Prometheus configuration of deploy/compose, checked by a real promtool (Debian's,
unpacked into .tools/prometheus by deploy/tools/install-prometheus.sh; `make test` runs
it first)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy import roles

PROMTOOL = roles.ROOT / ".tools/prometheus/promtool"
CONFIG = roles.ROOT / "deploy/compose/prometheus.yml"


@pytest.fixture(scope="module")
def promtool() -> Path:
    if not PROMTOOL.is_file():
        pytest.fail(f"no {PROMTOOL}: run `make {PROMTOOL.relative_to(roles.ROOT)}`")
    return PROMTOOL


def check_config(promtool: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), "check", "config", str(config)], capture_output=True, text=True
    )


def test_compose_prometheus_config_passes_promtool(promtool: Path) -> None:
    result = check_config(promtool, CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_refuses_a_broken_config(promtool: Path, tmp_path: Path) -> None:
    broken = tmp_path / "prometheus.yml"
    broken.write_text(CONFIG.read_text().replace("dns_sd_configs:", "dns_sd_config:", 1))
    result = check_config(promtool, broken)
    assert result.returncode != 0
    assert "dns_sd_config" in result.stdout + result.stderr
