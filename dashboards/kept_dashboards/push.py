"""Provision folder, datasources and dashboards into a running Grafana (grafana-client).

Idempotent: each object is read first and written only when it differs, so a second push
with the same spec sends no writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

from kept_dashboards.catalog import DASHBOARDS
from kept_dashboards.grafana import dashboard_json
from kept_dashboards.provisioning import FOLDER_TITLE, FOLDER_UID, Sources, datasources

# Fields Grafana adds or owns: ignored when comparing what is there with the spec.
_SERVER_FIELDS = (
    "id",
    "version",
    "orgId",
    "typeLogoUrl",
    "readOnly",
    "basicAuth",
    "url",
    "user",
    "database",
    "withCredentials",
    "secureJsonFields",
)


@dataclass
class PushResult:
    """What the push created or updated, as `kind:uid` strings."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _missing(exc: GrafanaClientError) -> bool:
    return bool(exc.status_code == 404)


def _same(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    keep = [k for k in wanted if k not in _SERVER_FIELDS or k == "url"]
    return all(current.get(k) == wanted[k] for k in keep)


def push(
    url: str,
    token: str | None,
    sources: Sources | None = None,
    clickhouse_password: str | None = None,
    timeout: float = 30.0,
) -> PushResult:
    """Create or update the kept folder, datasources and dashboards in Grafana at `url`."""
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    result = PushResult()

    try:
        folder = api.folder.get_folder(FOLDER_UID)
        (result.unchanged if folder.get("title") == FOLDER_TITLE else result.updated).append(
            f"folder:{FOLDER_UID}"
        )
        if folder.get("title") != FOLDER_TITLE:
            api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        result.created.append(f"folder:{FOLDER_UID}")

    for ds in datasources(sources or Sources()):
        wanted = dict(ds)
        if clickhouse_password and ds["uid"] == "kept-clickhouse":
            wanted["secureJsonData"] = {"password": clickhouse_password}
        name = f"datasource:{ds['uid']}"
        try:
            current = api.datasource.get_datasource_by_uid(ds["uid"])
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            api.datasource.create_datasource(wanted)
            result.created.append(name)
            continue
        if _same(current, ds) and "secureJsonData" not in wanted:
            result.unchanged.append(name)
        else:
            api.datasource.update_datasource_by_uid(ds["uid"], wanted)
            result.updated.append(name)

    for dashboard in DASHBOARDS:
        document = dashboard_json(dashboard)
        name = f"dashboard:{dashboard.uid}"
        try:
            current = api.dashboard.get_dashboard(dashboard.uid)
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            current = None
        if current is not None:
            stored = current.get("dashboard", {})
            there = {k: v for k, v in stored.items() if k not in ("id", "version")}
            mine = {k: v for k, v in document.items() if k != "version"}
            if there == mine and current.get("meta", {}).get("folderUid") == FOLDER_UID:
                result.unchanged.append(name)
                continue
        api.dashboard.update_dashboard(
            {
                "dashboard": document,
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "kept dashboards push",
            }
        )
        (result.updated if current is not None else result.created).append(name)
    return result
