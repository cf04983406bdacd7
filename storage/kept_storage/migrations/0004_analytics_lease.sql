-- Who runs the analytics jobs: one holder at a time per lease (kept_analytics/lease.py).
-- A claim of term N is inserted with the deduplication token '<lease>:<N>': the server
-- keeps the first insert of a token and drops the others, so each term has exactly one
-- claim, whoever raced for it ("first insert wins": atomic on a server, and through
-- Keeper on a replicated table). Terms only grow, so tokens never repeat.
CREATE TABLE IF NOT EXISTS analytics_lease
(
    lease      LowCardinality(String),
    term       UInt64,
    holder     String,
    -- The holder's lease time: candidates judge expiry by it, whatever their own setting.
    lease_ms   UInt32,
    claimed_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (lease, term)
SETTINGS non_replicated_deduplication_window = 1000;

-- The holder's renewals: a term's lease lasts until the lease time after its last one
-- (or its claim), both in the server's clock. `released` hands the lease over at once.
CREATE TABLE IF NOT EXISTS analytics_lease_renewals
(
    lease    LowCardinality(String),
    term     UInt64,
    released UInt8,
    at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (lease, term, at)
TTL toDateTime(at) + INTERVAL 1 DAY;

-- The generations one run touches, staged per run (a partition each), so that a runner
-- that lost its lease cannot disturb the staging of the one that took over.
CREATE TABLE IF NOT EXISTS analytics_run_generations
(
    run           UInt64,
    project       LowCardinality(String),
    generation_id String,
    gen_ts        DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY run
ORDER BY (project, generation_id)
-- Each run drops its partition; on a cluster (no partitions dropped through Distributed
-- tables) and after a crash, old runs expire a day later.
TTL toDateTime(intDiv(run, 1000000000)) + INTERVAL 1 DAY
SETTINGS ttl_only_drop_parts = 1;

-- Generations that only feedback touched in a run (their own row is older).
CREATE TABLE IF NOT EXISTS analytics_run_feedback_only
(
    run           UInt64,
    project       LowCardinality(String),
    generation_id String
)
ENGINE = MergeTree
PARTITION BY run
ORDER BY (project, generation_id)
TTL toDateTime(intDiv(run, 1000000000)) + INTERVAL 1 DAY
SETTINGS ttl_only_drop_parts = 1;

-- The staging tables shared by every run, replaced by the two above.
DROP TABLE IF EXISTS analytics_affected;
DROP TABLE IF EXISTS analytics_feedback_only;
