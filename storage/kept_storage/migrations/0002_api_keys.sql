-- Project keys. Only a SHA-256 of the secret part is stored. A key changes (revocation)
-- by inserting a row with a higher version; readers take argMax by version.
CREATE TABLE IF NOT EXISTS api_keys
(
    key_id        String,
    project       LowCardinality(String),
    secret_sha256 String,
    created_at    DateTime64(3, 'UTC'),
    revoked       Bool,
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY key_id;
