-- When a row became visible: the analytics job's watermark. Set by the server at insert
-- time (not by the client), so late or replayed events are always picked up. A minmax
-- index lets the job skip parts written before its watermark.
ALTER TABLE generations ADD COLUMN IF NOT EXISTS inserted_at DateTime64(3, 'UTC') DEFAULT now64(3);
ALTER TABLE generations ADD INDEX IF NOT EXISTS idx_inserted_at inserted_at TYPE minmax GRANULARITY 1;
ALTER TABLE generations MATERIALIZE COLUMN inserted_at;
ALTER TABLE feedback ADD COLUMN IF NOT EXISTS inserted_at DateTime64(3, 'UTC') DEFAULT now64(3);
ALTER TABLE feedback ADD INDEX IF NOT EXISTS idx_inserted_at inserted_at TYPE minmax GRANULARITY 1;
ALTER TABLE feedback MATERIALIZE COLUMN inserted_at;

-- One row per generation and version: what users did with it. The job inserts a
-- cancel row (sign -1, the previous version) with every new version (sign +1), so sums
-- weighted by sign are exact at any time, and merges collapse the pairs.
CREATE TABLE IF NOT EXISTS outcomes
(
    project               LowCardinality(String),
    gen_ts                DateTime64(3, 'UTC'),
    generation_id         String,
    version               UInt64,
    sign                  Int8,
    -- 1 only on a generation's first row: what never changes (latency, cost) counts once.
    is_first              UInt8,
    model                 LowCardinality(String),
    prompt_version        LowCardinality(String),
    metadata              Map(LowCardinality(String), String),
    latency_ms            Nullable(UInt32),
    output_tokens         Nullable(UInt32),
    cost_usd              Nullable(Float64),
    accepted              UInt8,
    vote                  Int8,
    corrected             UInt8,
    correction_similarity Nullable(Float64),
    survival              Map(UInt32, Float64),
    actions               Array(LowCardinality(String)),
    scores                Map(LowCardinality(String), Float64)
)
ENGINE = VersionedCollapsingMergeTree(sign, version)
PARTITION BY toYYYYMM(gen_ts)
ORDER BY (project, toDate(gen_ts), generation_id);

-- Hourly rollup by project x model x prompt version: what dashboards and reports read.
-- Survival scores of accepted generations are kept as a histogram (key = checkpoint *
-- 100 + score bucket of 0.05, with 1e-9 of slack against float rounding at the edges),
-- so any threshold on that grid is answered from here.
CREATE TABLE IF NOT EXISTS outcomes_hourly
(
    project             LowCardinality(String),
    hour                DateTime('UTC'),
    model               LowCardinality(String),
    prompt_version      LowCardinality(String),
    generations         SimpleAggregateFunction(sum, Int64),
    accepted            SimpleAggregateFunction(sum, Int64),
    votes_up            SimpleAggregateFunction(sum, Int64),
    votes_down          SimpleAggregateFunction(sum, Int64),
    corrected           SimpleAggregateFunction(sum, Int64),
    similarity_sum      SimpleAggregateFunction(sum, Float64),
    similarity_n        SimpleAggregateFunction(sum, Int64),
    survival_hist       SimpleAggregateFunction(sumMap, Map(UInt32, Int64)),
    actions             SimpleAggregateFunction(sumMap, Map(String, Int64)),
    cost_usd_total      SimpleAggregateFunction(sum, Float64),
    output_tokens_total SimpleAggregateFunction(sum, Int64),
    latency             AggregateFunction(quantilesTDigest(0.5, 0.95), UInt32)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (project, hour, model, prompt_version);

-- Source columns are qualified where an output alias has the same name.
CREATE MATERIALIZED VIEW IF NOT EXISTS outcomes_hourly_mv TO outcomes_hourly AS
SELECT
    project,
    toStartOfHour(gen_ts) AS hour,
    model,
    prompt_version,
    toInt64(sum(sign)) AS generations,
    toInt64(sum(sign * accepted)) AS accepted,
    toInt64(sum(sign * (vote = 1))) AS votes_up,
    toInt64(sum(sign * (vote = -1))) AS votes_down,
    toInt64(sum(sign * corrected)) AS corrected,
    sum(sign * ifNull(correction_similarity, 0)) AS similarity_sum,
    toInt64(sum(sign * isNotNull(correction_similarity))) AS similarity_n,
    sumMap(CAST(mapFromArrays(
        arrayMap((c, s) -> toUInt32(c * 100 + least(toUInt32(floor(s * 20 + 1e-9)), 20)),
                 mapKeys(survival), mapValues(survival)),
        arrayMap(x -> toInt64(sign * outcomes.accepted), mapKeys(survival))
    ), 'Map(UInt32, Int64)')) AS survival_hist,
    sumMap(CAST(mapFromArrays(
        arrayMap(a -> toString(a), outcomes.actions), arrayMap(a -> toInt64(sign), outcomes.actions)
    ), 'Map(String, Int64)')) AS actions,
    sum(sign * ifNull(cost_usd, 0)) AS cost_usd_total,
    toInt64(sum(sign * ifNull(output_tokens, 0))) AS output_tokens_total,
    quantilesTDigestStateIf(0.5, 0.95)(assumeNotNull(latency_ms), is_first = 1 AND isNotNull(latency_ms)) AS latency
FROM outcomes
GROUP BY project, hour, model, prompt_version;

-- How far the job has read: rows with inserted_at up to `until` are folded in.
CREATE TABLE IF NOT EXISTS analytics_state
(
    job         LowCardinality(String),
    until       DateTime64(3, 'UTC'),
    updated_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY job;

-- The generations a run touches (staging; only one job runs at a time).
CREATE TABLE IF NOT EXISTS analytics_affected
(
    project       LowCardinality(String),
    generation_id String,
    gen_ts        DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (project, generation_id);

-- Generations that only feedback touched in a run (their own row is older): staging.
CREATE TABLE IF NOT EXISTS analytics_feedback_only
(
    project       LowCardinality(String),
    generation_id String
)
ENGINE = MergeTree
ORDER BY (project, generation_id);
