-- A generation may be reported in parts: an OpenTelemetry span (model, tokens, latency)
-- and its details event (the messages) arrive separately and share the generation id.
-- The second is a supplement: its fields fill what the other row lacks, and it does not
-- count as a generation of its own (README, "OpenTelemetry").
ALTER TABLE generations ADD COLUMN IF NOT EXISTS supplement Bool DEFAULT false;
