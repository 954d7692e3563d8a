-- Hourly user-activity counts, so that a dashboard reads a few rows per hour
-- rather than every event in its range.
--
-- The view keeps, per tenant, hour and event type, the set of event ids
-- stored and the number of rows that brought them (replays included), both
-- from the same insert in the same row: a row count never runs ahead of the
-- ids it counts. The gateway counts an hour's distinct ids and stamps the
-- counts with the row count it read first; an hour whose row count has moved
-- since is counted again before it is read. Hours are UTC Unix seconds,
-- computed without the server's time zone.
--
-- Removing rows from user_activity by hand (DROP, TRUNCATE, ALTER ... DELETE)
-- must remove them from the tables below too, or dashboards keep counting
-- them.

-- Each row holds a whole hour's id set, so granules are a few rows: reading
-- one hour reads its neighbours' sets too, and every granule's key is held
-- in memory. Eight rows keeps an hour's read to about three hours of sets
-- with a few event types, and a tenant inventing an event type per event
-- costs the server an eighth of a key each.
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

-- Distinct events per tenant, hour and type. An hour is counted whole; the
-- row with the highest rows_seen is the current one.
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

-- The row count an hour's counts were taken at; written after them.
CREATE TABLE IF NOT EXISTS user_activity_hourly_marks (
    tenant_id String,
    hour UInt32,
    rows_seen UInt64
)
ENGINE = ReplacingMergeTree(rows_seen)
PARTITION BY intDiv(hour, 2592000)
ORDER BY (tenant_id, hour);

-- Rows stored before the view existed are added once, when it is first
-- created. Adding some twice, should two gateways start together, or rows
-- the view also saw, leaves the id sets as they are and only makes those
-- hours count once more.
CREATE TABLE IF NOT EXISTS rollup_backfills (
    name String,
    done_at DateTime DEFAULT now()
)
ENGINE = MergeTree()
ORDER BY name;

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
