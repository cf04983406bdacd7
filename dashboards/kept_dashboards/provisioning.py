"""Grafana provisioning from the spec: datasources, a dashboard provider, dashboard files.

YAML files are written as JSON (a subset of YAML), so no YAML library is needed and the
output is byte-stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kept_dashboards.catalog import DASHBOARDS
from kept_dashboards.grafana import CLICKHOUSE, PROMETHEUS, dashboard_json, dumps

FOLDER_UID = "kept"
FOLDER_TITLE = "kept"


@dataclass(frozen=True)
class Sources:
    """Where Grafana finds ClickHouse and Prometheus."""

    clickhouse_url: str = "http://clickhouse:8123"
    clickhouse_user: str = "grafana"
    clickhouse_database: str = "kept"
    prometheus_url: str = "http://prometheus:9090"


def datasources(sources: Sources) -> list[dict[str, Any]]:
    """The two datasources, in the shape of Grafana's datasource API and provisioning."""
    ch = urlparse(sources.clickhouse_url)
    secure = ch.scheme == "https"
    return [
        {
            "uid": CLICKHOUSE["uid"],
            "name": "kept ClickHouse",
            "type": CLICKHOUSE["type"],
            "access": "proxy",
            "isDefault": True,
            "jsonData": {
                "host": ch.hostname or "localhost",
                "port": ch.port or (8443 if secure else 8123),
                "protocol": "http",
                "secure": secure,
                "username": sources.clickhouse_user,
                "defaultDatabase": sources.clickhouse_database,
            },
        },
        {
            "uid": PROMETHEUS["uid"],
            "name": "kept Prometheus",
            "type": PROMETHEUS["type"],
            "access": "proxy",
            "isDefault": False,
            "url": sources.prometheus_url,
            "jsonData": {"httpMethod": "POST"},
        },
    ]


def datasources_file(sources: Sources) -> dict[str, Any]:
    """`provisioning/datasources/kept.yaml`; the password comes from the environment."""
    entries = []
    for ds in datasources(sources):
        entry = {k: v for k, v in ds.items() if k != "isDefault"} | {"editable": False}
        if ds["type"] == CLICKHOUSE["type"]:
            entry["secureJsonData"] = {"password": "$KEPT_GRAFANA_CLICKHOUSE_PASSWORD"}
        entries.append(entry)
    return {"apiVersion": 1, "datasources": entries}


def providers_file(dashboards_path: str) -> dict[str, Any]:
    """`provisioning/dashboards/kept.yaml`: load the dashboard files into the kept folder."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "kept",
                "folder": FOLDER_TITLE,
                "folderUid": FOLDER_UID,
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": dashboards_path},
            }
        ],
    }


def build(out: Path, sources: Sources | None = None, provisioning: bool = False) -> list[Path]:
    """Write the dashboards (`<uid>.json`), and with `provisioning` the Grafana
    provisioning tree under `out/provisioning/`. Returns the files written."""
    written: list[Path] = []

    def write(path: Path, document: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(document), encoding="utf-8")
        written.append(path)

    for dashboard in DASHBOARDS:
        write(out / "dashboards" / f"{dashboard.uid}.json", dashboard_json(dashboard))
    if provisioning:
        base = out / "provisioning"
        write(base / "datasources" / "kept.yaml", datasources_file(sources or Sources()))
        write(base / "dashboards" / "kept.yaml", providers_file("/var/lib/grafana/dashboards/kept"))
    return written
