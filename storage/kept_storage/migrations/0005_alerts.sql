-- Alert transitions: a row each time an alert of a rule and group changes state
-- (pending, firing, resolved, or inactive: a pending one whose condition went away) or,
-- while firing, severity. Append-only history; the current state of an alert is its
-- latest row. Written by the analytics lease holder only, fenced by its term.
CREATE TABLE IF NOT EXISTS alert_events
(
    fingerprint String,
    rule        LowCardinality(String),
    kind        LowCardinality(String),
    labels      Map(String, String),
    state       LowCardinality(String),
    severity    LowCardinality(String),
    summary     String,
    evidence    String CODEC(ZSTD(3)),
    since       DateTime64(3, 'UTC'),
    started_at  Nullable(DateTime64(3, 'UTC')),
    at          DateTime64(3, 'UTC'),
    term        UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (rule, fingerprint, at);
