-- min_server_version: 19.6
-- Per-request usage rows are operational data: keep about thirteen months.
-- TTL clauses arrived in ClickHouse 19.6, so older servers keep everything.

ALTER TABLE api_usage MODIFY TTL timestamp + INTERVAL 400 DAY;
