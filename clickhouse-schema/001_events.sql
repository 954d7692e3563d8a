-- Event tables of the analytics store.
--
-- Each row carries the event's id. Replays of a batch can insert a row twice;
-- ReplacingMergeTree keeps one row per sorting key, and the sorting key holds
-- nothing but fields fixed at the event's creation (the event id among them),
-- so a duplicate always collapses into its original. Queries that must count
-- exactly read with FINAL or count distinct event ids, since merges run late.
-- Tables are partitioned by month and ordered for the dashboard queries:
-- tenant first, then the grouping key, then the day.

CREATE TABLE IF NOT EXISTS user_activity (
    event_id UUID,
    tenant_id String,
    user_id String,
    event_type String,
    timestamp DateTime,
    properties String,
    inserted_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant_id, event_type, toDate(timestamp), user_id, event_id);

CREATE TABLE IF NOT EXISTS challenge_completions (
    event_id UUID,
    tenant_id String,
    challenge_id String,
    user_id String,
    submission_id String,
    status String,
    runtime_ms UInt32,
    timestamp DateTime,
    inserted_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant_id, challenge_id, toDate(timestamp), event_id);

CREATE TABLE IF NOT EXISTS api_usage (
    event_id UUID,
    tenant_id String,
    route String,
    method String,
    status UInt16,
    duration_ms UInt32,
    api_key_id String,
    timestamp DateTime,
    inserted_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant_id, route, toDate(timestamp), event_id);

CREATE TABLE IF NOT EXISTS file_uploads (
    event_id UUID,
    tenant_id String,
    owner_id String,
    cid String,
    size_bytes UInt64,
    content_type String,
    timestamp DateTime,
    inserted_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant_id, toDate(timestamp), event_id);

CREATE TABLE IF NOT EXISTS file_downloads (
    event_id UUID,
    tenant_id String,
    cid String,
    bytes_sent UInt64,
    partial UInt8,
    timestamp DateTime,
    inserted_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant_id, toDate(timestamp), event_id);
