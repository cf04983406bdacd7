-- Append-only event tables. fsync on insert: the intake answers 202 only once rows are
-- durable, and at the batch sizes group commit makes the cost was within noise.
-- Dedup by event_id: rows with the same key collapse at
-- merge time (ReplacingMergeTree) and the writer skips ids it has already stored, so
-- readers never need FINAL.
CREATE TABLE IF NOT EXISTS generations
(
    project         LowCardinality(String),
    ts              DateTime64(3, 'UTC'),
    generation_id   String,
    event_id        UUID,
    received_at     DateTime64(3, 'UTC'),
    user_id         String,
    session_id      String,
    model           LowCardinality(String),
    prompt_version  LowCardinality(String),
    input_format    Enum8('none' = 0, 'text' = 1, 'chat' = 2),
    input           String CODEC(ZSTD(3)),
    output_captured Bool,
    output          String CODEC(ZSTD(3)),
    -- Nullable where "not reported" must not count as zero in percentiles and sums.
    latency_ms      Nullable(UInt32),
    input_tokens    Nullable(UInt32),
    output_tokens   Nullable(UInt32),
    cost_usd        Nullable(Float64),
    metadata        Map(LowCardinality(String), String),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_generation_id generation_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (project, toDate(ts), generation_id, event_id)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS feedback
(
    project       LowCardinality(String),
    ts            DateTime64(3, 'UTC'),
    generation_id String,
    type          Enum8('vote' = 1, 'action' = 2, 'correction' = 3, 'survival' = 4, 'score' = 5),
    event_id      UUID,
    received_at   DateTime64(3, 'UTC'),
    user_id       String,
    session_id    String,
    -- action name or score name
    name          LowCardinality(String),
    -- vote value, survival score, score value, numeric action value
    value         Nullable(Float64),
    -- correction text, or a string action value
    text          String CODEC(ZSTD(3)),
    comment       String CODEC(ZSTD(3)),
    -- score source: human, llm, code
    source        LowCardinality(String),
    checkpoint_s  UInt32,
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_generation_id generation_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (project, toDate(ts), generation_id, type, event_id)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;
