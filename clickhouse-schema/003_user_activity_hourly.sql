-- Hourly user-activity counts, so that a dashboard reads a few rows per hour
-- rather than every event in its range.
--
-- The view counts the rows each insert writes into user_activity, per tenant
-- and hour, duplicates included. The gateway computes an hour's counts from
-- the raw rows and stamps them with the write count it read first; an hour
-- whose write count has moved since is computed again before it is read.
-- ClickHouse writes a block to user_activity before it runs the view on it,
-- so a stamp never covers rows the raw table lacks, and the counts stay as
-- exact as a query over the raw rows. Hours are UTC Unix seconds, computed
-- without the server's time zone.
--
-- Emptying user_activity by hand (DROP, TRUNCATE, ALTER ... DELETE) must
-- empty the three tables below with it, or dashboards keep counting the
-- rows removed.

CREATE TABLE IF NOT EXISTS user_activity_writes (
    tenant_id String,
    hour UInt32,
    rows UInt64
)
ENGINE = SummingMergeTree()
PARTITION BY intDiv(hour, 2592000)
ORDER BY (tenant_id, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS user_activity_writes_view TO user_activity_writes AS
SELECT
    toString(tenant_id) AS tenant_id,
    toUInt32(intDiv(toUInt32(timestamp), 3600) * 3600) AS hour,
    count() AS rows
FROM user_activity
GROUP BY tenant_id, hour;

-- Distinct events per tenant, hour and type. An hour is recomputed whole;
-- the row with the highest rows_seen is the current one.
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

-- The write count an hour's counts were computed at; written after them.
CREATE TABLE IF NOT EXISTS user_activity_hourly_marks (
    tenant_id String,
    hour UInt32,
    rows_seen UInt64
)
ENGINE = ReplacingMergeTree(rows_seen)
PARTITION BY intDiv(hour, 2592000)
ORDER BY (tenant_id, hour);

-- Rows written before the view existed are counted once, when it is first
-- created. Counting some twice, should two gateways start together, only
-- makes their hours compute once more.
CREATE TABLE IF NOT EXISTS rollup_backfills (
    name String,
    done_at DateTime DEFAULT now()
)
ENGINE = MergeTree()
ORDER BY name;

INSERT INTO user_activity_writes (tenant_id, hour, rows)
SELECT toString(tenant_id), toUInt32(intDiv(toUInt32(timestamp), 3600) * 3600) AS hour, count()
FROM user_activity
WHERE (SELECT count() FROM rollup_backfills WHERE name = 'user_activity_writes') = 0
GROUP BY tenant_id, hour;

INSERT INTO rollup_backfills (name)
SELECT 'user_activity_writes'
WHERE (SELECT count() FROM rollup_backfills WHERE name = 'user_activity_writes') = 0;
