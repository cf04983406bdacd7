"""Service-health panels from Prometheus: the metric names of `ingest/metrics.py` and
`analytics/runner.py`. The built-in page reads the same metrics from the server's own
registry (`local`: the sample name it sums)."""

from __future__ import annotations

from kept_dashboards.spec import Panel, Threshold

_RATE = "$__rate_interval"

INGEST_RATE = Panel(
    id="ingest_rate",
    title="Ingest rate",
    description="Events stored per second, by type (HTTP intake and Kafka consumer).",
    viz="timeseries",
    columns=("value",),
    promql=f"sum by (type) (rate(kept_events_accepted_total[{_RATE}]))",
    legend="{{type}}",
    local="kept_events_accepted_total",
    unit="reqps",
    width=6,
)

REJECTS = Panel(
    id="rejects",
    title="Rejected events",
    description="Events refused per second, by reason (validation, auth, size, overload).",
    viz="timeseries",
    columns=("value",),
    promql=f"sum by (reason) (rate(kept_events_rejected_total[{_RATE}]))",
    legend="{{reason}}",
    local="kept_events_rejected_total",
    unit="reqps",
    thresholds=(Threshold(None, "green"), Threshold(1, "red")),
    width=6,
)

CONSUMER_LAG = Panel(
    id="consumer_lag",
    title="Consumer lag",
    description="Kafka messages not consumed yet, all partitions (0 without Kafka).",
    viz="timeseries",
    columns=("value",),
    promql="sum(kept_consumer_lag)",
    legend="lag",
    local="kept_consumer_lag",
    unit="short",
    thresholds=(Threshold(None, "green"), Threshold(10000, "orange"), Threshold(100000, "red")),
    width=6,
)

INSERT_LATENCY = Panel(
    id="insert_latency",
    title="Insert latency p95",
    description="95th percentile time to make one batch durable in ClickHouse.",
    viz="timeseries",
    columns=("value",),
    promql=(
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(kept_insert_duration_seconds_bucket[{_RATE}])))"
    ),
    legend="p95",
    local="kept_insert_duration_seconds",
    unit="s",
    thresholds=(Threshold(None, "green"), Threshold(0.5, "orange"), Threshold(2, "red")),
    width=6,
)

PANELS = (INGEST_RATE, REJECTS, CONSUMER_LAG, INSERT_LATENCY)
