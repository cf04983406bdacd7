"""`kept analytics run --every`: the analytics jobs as a role of their own.

Any number of these may run against one store; the analytics lease lets one run the
jobs at a time and hands over to another within about 1.25 × KEPT_ANALYTICS_LEASE_S
when it dies. Each serves its metrics (`kept_analytics_*`, with
`kept_analytics_lease_held`) on its own port, like `kept consume`.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, start_http_server

from kept_analytics.lease import this_process
from kept_ingest.metrics import MetricsSettings
from kept_service.runtime import analytics_runner
from kept_service.runtime.settings import ServerSettings
from kept_storage import migrate
from kept_storage.datadir import DataDir
from kept_storage.settings import with_overrides

log = logging.getLogger("kept.analytics")


class AnalyticsRoleSettings(ServerSettings, MetricsSettings):
    """The server's analytics and store settings, and where /metrics listen."""


def analytics_role_settings(**overrides: object) -> AnalyticsRoleSettings:
    """The environment's settings with command-line values (those not None) on top."""
    return with_overrides(AnalyticsRoleSettings(), **overrides)


def run_analytics_role(settings: AnalyticsRoleSettings, stop: threading.Event) -> None:
    """Take part in the analytics lease and run the jobs while holding it, until `stop`."""
    data_dir = DataDir(settings.data)
    if settings.dsn is None:  # the embedded store: own its directory, as kept serve does
        data_dir.acquire()
    try:
        store = settings.open_store(data_dir)
        try:
            for migration in migrate(store):
                log.info("applied migration %04d_%s", migration.version, migration.name)
            registry = CollectorRegistry()
            runner = analytics_runner(settings, store, registry)
            server = None
            if settings.metrics_port:
                server, _ = start_http_server(
                    settings.metrics_port, settings.metrics_host, registry=registry
                )
            runner.start()
            log.info(
                "analytics runner %s: every %gs, lease %gs%s",
                this_process(),
                settings.analytics_interval_s,
                settings.analytics_lease_s,
                f", metrics on :{settings.metrics_port}" if server is not None else "",
            )
            try:
                stop.wait()
            finally:
                runner.stop()
                if server is not None:
                    server.shutdown()
        finally:
            store.close()
    finally:
        if data_dir.owned:
            data_dir.release()
    log.info("stopped")
