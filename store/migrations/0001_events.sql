-- The audit log: every Kafka record as it arrived, append-only.
-- A retried batch carries the same insert_deduplication_token and is dropped, which needs
-- non_replicated_deduplication_window on a plain MergeTree (0 = off by default).
CREATE TABLE IF NOT EXISTS events
(
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    event_id UUID,
    event_type LowCardinality(String),
    correlation_id UUID,
    causation_id Nullable(UUID),
    occurred_at DateTime64(6, 'UTC'),
    recorded_at DateTime64(6, 'UTC'),
    ingested_at DateTime64(6, 'UTC') DEFAULT now64(6, 'UTC'),
    kafka_timestamp Nullable(DateTime64(3, 'UTC')),
    schema_version UInt16,
    key Nullable(String),
    payload String CODEC(ZSTD(3))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (correlation_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
