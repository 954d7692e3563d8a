-- Hourly counts kept beside the event tables, so that a dashboard reads a
-- few rows per hour rather than every event in its range.
--
-- For each counted table a view adds up, per tenant and hour, the rows each
-- insert stores, replays included. ClickHouse stores a block in the table
-- before it runs the table's view on it, so that count never runs ahead of
-- the rows. The gateway counts an hour's events, exactly as a query over the
-- raw rows would, and stamps the counts with the row count it read first
-- (hourly_marks); an hour whose row count has moved since is counted again
-- before it is read. Hours are UTC Unix seconds, computed without the
-- server's time zone. One view per table: nothing depends on the order in
-- which a table's views run.
--
-- Removing rows from an event table by hand (DROP, TRUNCATE, ALTER ...
-- DELETE) must remove them from its tables below too, or dashboards keep
-- counting them.

-- The row count each hour of each counted table was last counted at.
CREATE TABLE IF NOT EXISTS hourly_marks (
    rollup String,
    tenant_id String,
    hour UInt32,
    rows_seen UInt64
)
ENGINE = ReplacingMergeTree(rows_seen)
PARTITION BY intDiv(hour, 2592000)
ORDER BY (rollup, tenant_id, hour);

-- Names the counts already taken of rows stored before a view existed, so
-- each is taken once. Taking one twice, should two gateways start together,
-- only makes those hours count once more.
CREATE TABLE IF NOT EXISTS rollup_backfills (
    name String,
    done_at DateTime DEFAULT now()
)
ENGINE = MergeTree()
ORDER BY name;

-- user_activity. Counting an hour again from the raw rows would read the
-- tenant's whole day (the raw sort key puts the event type first), so the
-- view keeps each hour's id set with its row count, written by the same
-- insert in the same row. A row holds a whole hour's ids, so granules are
-- eight rows: reading one hour reads a few neighbours' sets too, and a
-- tenant inventing an event type per event costs the server an eighth of a
-- key each.
CREATE TABLE IF NOT EXISTS user_activity_hourly_ids (
    tenant_id String,
    hour UInt32,
    event_type String,
    ids AggregateFunction(uniqExact, UUID),
    rows AggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY intDiv(hour, 2592000)
ORDER BY (tenant_id, hour, event_type)
SETTINGS index_granularity = 8;

CREATE MATERIALIZED VIEW IF NOT EXISTS user_activity_hourly_ids_view TO user_activity_hourly_ids AS
SELECT
    toString(tenant_id) AS tenant_id,
    toUInt32(intDiv(toUInt32(timestamp), 3600) * 3600) AS hour,
    event_type,
    uniqExactState(event_id) AS ids,
    sumState(toUInt64(1)) AS rows
FROM user_activity
GROUP BY tenant_id, hour, event_type;

-- Distinct events per tenant, hour and type; the row with the highest
-- rows_seen is the current one.
CREATE TABLE IF NOT EXISTS user_activity_hourly (
    tenant_id String,
    hour UInt32,
    event_type String,
    events UInt64,
    rows_seen UInt64
)
ENGINE = ReplacingMergeTree(rows_seen)
PARTITION BY intDiv(hour, 2592000)
ORDER BY (tenant_id, hour, event_type);

INSERT INTO user_activity_hourly_ids (tenant_id, hour, event_type, ids, rows)
SELECT
    toString(tenant_id),
    toUInt32(intDiv(toUInt32(timestamp), 3600) * 3600) AS hour,
    event_type,
    uniqExactState(event_id),
    sumState(toUInt64(1))
FROM user_activity
WHERE (SELECT count() FROM rollup_backfills WHERE name = 'user_activity_hourly_ids') = 0
GROUP BY tenant_id, hour, event_type;

INSERT INTO rollup_backfills (name)
SELECT 'user_activity_hourly_ids'
WHERE (SELECT count() FROM rollup_backfills WHERE name = 'user_activity_hourly_ids') = 0;

-- file_uploads, file_downloads and api_usage: an hour is counted again from
-- the raw rows (their sort keys put the day, or the route, right after the
-- tenant), so their views only count rows, into one table.
CREATE TABLE IF NOT EXISTS hourly_writes (
    rollup String,
    tenant_id String,
    hour UInt32,
    rows UInt64
)
ENGINE = SummingMergeTree()
PARTITION BY intDiv(hour, 2592000)
ORDER BY (rollup, tenant_id, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS file_uploads_writes_view TO hourly_writes AS
SELECT 'file_uploads' AS rollup, toString(tenant_id) AS tenant_id,
    toUInt32(intDiv(toUInt32(timestamp), 3600) * 3600) AS hour, count() AS rows
FROM file_uploads
GROUP BY tenant_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS file_downloads_writes_view TO hourly_writes AS
SELECT 'file_downloads' AS rollup, toString(tenant_id) AS tenant_id,
    toUInt32(intDiv(toUInt32(timestamp), 3600) * 3600) AS hour, count() AS rows
FROM file_downloads
GROUP BY tenant_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS api_usage_writes_view TO hourly_writes AS
SELECT 'api_usage' AS rollup, toString(tenant_id) AS tenant_id,
    toUInt32(intDiv(toUInt32(timestamp), 3600) * 3600) AS hour, count() AS rows
FROM api_usage
GROUP BY tenant_id, hour;

-- Files and bytes per tenant and hour, of uploads and of downloads.
CREATE TABLE IF NOT EXISTS file_uploads_hourly (
    tenant_id String,
    hour UInt32,
    files UInt64,
    bytes UInt64,
    rows_seen UInt64
)
ENGINE = ReplacingMergeTree(rows_seen)
PARTITION BY intDiv(hour, 2592000)
ORDER BY (tenant_id, hour);

CREATE TABLE IF NOT EXISTS file_downloads_hourly (
    tenant_id String,
    hour UInt32,
    files UInt64,
    bytes UInt64,
    rows_seen UInt64
)
ENGINE = ReplacingMergeTree(rows_seen)
PARTITION BY intDiv(hour, 2592000)
ORDER BY (tenant_id, hour);

-- Requests per tenant, hour, route and method. The durations are the same
-- sampling quantile state the raw query builds (exact up to 8192 requests a
-- bucket); the current row of an hour is read with FINAL.
CREATE TABLE IF NOT EXISTS api_usage_hourly (
    tenant_id String,
    hour UInt32,
    route String,
    method String,
    requests UInt64,
    client_errors UInt64,
    errors UInt64,
    durations AggregateFunction(quantiles(0.5, 0.9, 0.99), UInt32),
    rows_seen UInt64
)
ENGINE = ReplacingMergeTree(rows_seen)
PARTITION BY intDiv(hour, 2592000)
ORDER BY (tenant_id, hour, route, method);

-- One backfill for the three: their views were created together. (`source`:
-- GROUP BY reads a bare `rollup` as the start of ROLLUP(...).)
INSERT INTO hourly_writes (rollup, tenant_id, hour, rows)
SELECT source, tenant_id, toUInt32(intDiv(toUInt32(timestamp), 3600) * 3600) AS hour, count() FROM (
    SELECT 'file_uploads' AS source, toString(tenant_id) AS tenant_id, timestamp FROM file_uploads
    UNION ALL
    SELECT 'file_downloads' AS source, toString(tenant_id) AS tenant_id, timestamp FROM file_downloads
    UNION ALL
    SELECT 'api_usage' AS source, toString(tenant_id) AS tenant_id, timestamp FROM api_usage
)
WHERE (SELECT count() FROM rollup_backfills WHERE name = 'hourly_writes') = 0
GROUP BY source, tenant_id, hour;

INSERT INTO rollup_backfills (name)
SELECT 'hourly_writes'
WHERE (SELECT count() FROM rollup_backfills WHERE name = 'hourly_writes') = 0;
