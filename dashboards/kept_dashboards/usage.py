"""Usage panels: volume, latency and cost by model."""

from __future__ import annotations

from kept_dashboards.filters import FILTERS, ROLLUP_WHERE
from kept_dashboards.spec import Panel, Threshold

# Volume reads the raw generations (its cost grows with the range, not with history) so
# that new traffic shows within seconds, before the hourly rollup has it. A supplement
# (an OTel span's messages, stored apart) is part of a generation counted already.
VOLUME = Panel(
    id="volume",
    title="Generations",
    description="Generations logged per interval, straight from the event table.",
    viz="timeseries",
    columns=("time", "generations"),
    sql=f"""SELECT $__timeInterval(ts) AS time, countIf(NOT supplement) AS generations
FROM generations
WHERE $__timeFilter(ts) AND {FILTERS}
GROUP BY time
ORDER BY time""",
    unit="short",
    min=0,
)

TOTAL = Panel(
    id="generations_total",
    title="Generations in range",
    description="Generations logged in the time range.",
    viz="stat",
    columns=("value",),
    sql=f"SELECT countIf(NOT supplement) AS value FROM generations "
    f"WHERE $__timeFilter(ts) AND {FILTERS}",
    unit="short",
    width=4,
    height=5,
)

LATENCY = Panel(
    id="latency_by_model",
    title="Latency by model",
    description="Median and 95th percentile generation latency per model (t-digest).",
    viz="barchart",
    columns=("model", "p50_ms", "p95_ms"),
    sql=f"""SELECT model, q[1] AS p50_ms, q[2] AS p95_ms
FROM (
    SELECT model, quantilesTDigestMerge(0.5, 0.95)(latency) AS q
    FROM outcomes_hourly WHERE {ROLLUP_WHERE}
    GROUP BY model
)
WHERE q[1] = q[1]
ORDER BY model""",
    unit="ms",
    decimals=0,
    thresholds=(Threshold(None, "green"), Threshold(2000, "orange"), Threshold(5000, "red")),
)

COST = Panel(
    id="cost_by_model",
    title="Cost by model",
    description="Spend per interval and model, from the costs the app reported.",
    viz="timeseries",
    columns=("time", "series", "cost_usd"),
    sql=f"""SELECT $__timeInterval(hour) AS time, model AS series,
    sum(cost_usd_total) AS cost_usd
FROM outcomes_hourly
WHERE {ROLLUP_WHERE}
GROUP BY time, series
ORDER BY time, series""",
    unit="currencyUSD",
    decimals=4,
    min=0,
)
