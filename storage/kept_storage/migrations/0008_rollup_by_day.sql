-- A daily projection of the hourly rollup: reports over days merge one state per day
-- instead of 24 (analytics' rollup_sql.py; measured at 10M generations, a 30-day report by
-- model, prompt version and day: 188 ms before, most of it merging hourly t-digests).
-- The aggregates are the report's own, word for word (ClickHouse reads a projection only
-- for the aggregates it stores); the latency stays a t-digest state, so whole days from
-- here and the hours at a window's edges merge into one estimate.
-- An aggregating table rebuilds its projections when parts merge (the default refuses).
ALTER TABLE outcomes_hourly MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';
ALTER TABLE outcomes_hourly ADD PROJECTION IF NOT EXISTS by_day (
    SELECT project, toDate(hour), model, prompt_version,
        sum(generations), sum(accepted), sum(votes_up), sum(votes_down), sum(corrected),
        sum(similarity_sum), sum(similarity_n), sumMap(survival_hist), sumMap(actions),
        sum(cost_usd_total), sum(output_tokens_total),
        quantilesTDigestMergeState(0.5, 0.95)(latency)
    GROUP BY project, toDate(hour), model, prompt_version
);
-- Existing parts gain the projection in the background; until then reads use their rows.
ALTER TABLE outcomes_hourly MATERIALIZE PROJECTION by_day;
