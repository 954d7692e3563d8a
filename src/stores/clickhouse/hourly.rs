//! Hourly counts kept beside the event tables
//! (clickhouse-schema/003_hourly_counts.sql): brought up to date for a
//! range, then read in place of the raw events.
//!
//! An hour is current when the row count its counts were stamped with
//! equals the row count the table's view has added up since. Hours that are
//! not are counted again, stamped with the row count read before; rows that
//! land meanwhile make the count move again, so they are never lost, only
//! counted once more.

use std::collections::HashMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{clickhouse_error, ClickHouse};
use crate::stores::StoreError;

const HOUR: u32 = 3_600;

/// Stored rows one count covers, about: a tenant's first dashboard over a
/// busy month is counted in several steps, each kept once done, so a query
/// cut short by its timeout leaves less for the next one.
const ROWS_PER_PASS: u64 = 2_000_000;

/// One event table's hourly counts.
pub(super) struct Rollup {
    /// Its name in `hourly_marks`.
    name: &'static str,
    /// Rows stored per hour, as `hour, rows` (binds: tenant, from, to).
    rows_sql: &'static str,
    /// Counts hours again into the hourly table, each stamped by
    /// `transform(hour, ?, ?, toUInt64(0))` (binds: the hours, their row
    /// counts, tenant, from, to, the hours again).
    count_sql: &'static str,
}

pub(super) const USER_ACTIVITY: Rollup = Rollup {
    name: "user_activity",
    rows_sql: "SELECT hour, sumMerge(rows) AS rows FROM user_activity_hourly_ids \
        WHERE tenant_id = ? AND hour >= ? AND hour < ? GROUP BY hour",
    count_sql: "INSERT INTO user_activity_hourly (tenant_id, hour, event_type, events, rows_seen) \
        SELECT tenant_id, hour, event_type, uniqExactMerge(ids), \
        transform(hour, ?, ?, toUInt64(0)) \
        FROM user_activity_hourly_ids \
        WHERE tenant_id = ? AND hour >= ? AND hour < ? AND has(?, hour) \
        GROUP BY tenant_id, hour, event_type",
};

pub(super) const FILE_UPLOADS: Rollup = Rollup {
    name: "file_uploads",
    rows_sql: "SELECT hour, sum(rows) AS rows FROM hourly_writes \
        WHERE rollup = 'file_uploads' AND tenant_id = ? AND hour >= ? AND hour < ? GROUP BY hour",
    count_sql: "INSERT INTO file_uploads_hourly (tenant_id, hour, files, bytes, rows_seen) \
        SELECT tenant_id, toUInt32(intDiv(toUInt32(timestamp), 3600) * 3600) AS hour, \
        count(), sum(size_bytes), transform(hour, ?, ?, toUInt64(0)) \
        FROM file_uploads FINAL \
        WHERE tenant_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?) \
        AND has(?, hour) GROUP BY tenant_id, hour",
};

pub(super) const FILE_DOWNLOADS: Rollup = Rollup {
    name: "file_downloads",
    rows_sql: "SELECT hour, sum(rows) AS rows FROM hourly_writes \
        WHERE rollup = 'file_downloads' AND tenant_id = ? AND hour >= ? AND hour < ? GROUP BY hour",
    count_sql: "INSERT INTO file_downloads_hourly (tenant_id, hour, files, bytes, rows_seen) \
        SELECT tenant_id, toUInt32(intDiv(toUInt32(timestamp), 3600) * 3600) AS hour, \
        count(), sum(bytes_sent), transform(hour, ?, ?, toUInt64(0)) \
        FROM file_downloads FINAL \
        WHERE tenant_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?) \
        AND has(?, hour) GROUP BY tenant_id, hour",
};

pub(super) const API_USAGE: Rollup = Rollup {
    name: "api_usage",
    rows_sql: "SELECT hour, sum(rows) AS rows FROM hourly_writes \
        WHERE rollup = 'api_usage' AND tenant_id = ? AND hour >= ? AND hour < ? GROUP BY hour",
    count_sql: "INSERT INTO api_usage_hourly (tenant_id, hour, route, method, requests, \
        client_errors, errors, durations, rows_seen) \
        SELECT tenant_id, toUInt32(intDiv(toUInt32(timestamp), 3600) * 3600) AS hour, \
        route, method, count(), countIf(status >= 400 AND status < 500), countIf(status >= 500), \
        quantilesState(0.5, 0.9, 0.99)(duration_ms), transform(hour, ?, ?, toUInt64(0)) \
        FROM api_usage FINAL \
        WHERE tenant_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?) \
        AND has(?, hour) GROUP BY tenant_id, hour, route, method",
};

#[derive(Debug, Clone, Copy, Row, Deserialize)]
struct HourCount {
    hour: u32,
    rows: u64,
}

#[derive(Debug, Row, Serialize)]
struct Mark {
    rollup: &'static str,
    tenant_id: String,
    hour: u32,
    rows_seen: u64,
}

/// The hours whose counts must be taken again: those written to since
/// their stamp, or never stamped. Each comes with the row count to stamp.
fn stale_hours(rows: Vec<HourCount>, marks: &[HourCount]) -> Vec<HourCount> {
    let stamped: HashMap<u32, u64> = marks.iter().map(|m| (m.hour, m.rows)).collect();
    rows.into_iter()
        .filter(|h| stamped.get(&h.hour) != Some(&h.rows))
        .collect()
}

/// `stale` in hour order, cut into runs of about `rows_per_pass` stored
/// rows; an hour with more is a run of its own.
fn passes(mut stale: Vec<HourCount>, rows_per_pass: u64) -> Vec<Vec<HourCount>> {
    stale.sort_by_key(|h| h.hour);
    let mut passes: Vec<Vec<HourCount>> = Vec::new();
    let mut rows = 0;
    for hour in stale {
        match passes.last_mut() {
            Some(pass) if rows + hour.rows <= rows_per_pass => pass.push(hour),
            _ => {
                rows = 0;
                passes.push(vec![hour]);
            }
        }
        rows += hour.rows;
    }
    passes
}

impl ClickHouse {
    /// Counts again the hours of `[from, to)` (whole hours, Unix seconds)
    /// that `tenant` has written to since they were last counted. Each step
    /// is a call of its own, under the store's timeout.
    pub(super) async fn refresh_hours(
        &self,
        rollup: &Rollup,
        tenant: &str,
        from: u32,
        to: u32,
    ) -> Result<(), StoreError> {
        debug_assert!(from.is_multiple_of(HOUR) && to.is_multiple_of(HOUR));
        let rows = self
            .client
            .query(rollup.rows_sql)
            .bind(tenant)
            .bind(from)
            .bind(to)
            .fetch_all::<HourCount>();
        let marks = self
            .client
            .query(
                "SELECT hour, max(rows_seen) AS rows FROM hourly_marks \
                 WHERE rollup = ? AND tenant_id = ? AND hour >= ? AND hour < ? GROUP BY hour",
            )
            .bind(rollup.name)
            .bind(tenant)
            .bind(from)
            .bind(to)
            .fetch_all::<HourCount>();
        let (rows, marks) = self
            .guard
            .run("hourly_stamps", async {
                tokio::try_join!(rows, marks).map_err(clickhouse_error)
            })
            .await?;
        for pass in passes(stale_hours(rows, &marks), ROWS_PER_PASS) {
            self.guard
                .run("hourly_count", self.count_hours(rollup, tenant, &pass))
                .await?;
        }
        Ok(())
    }

    /// Counts `hours` again, then stamps them.
    async fn count_hours(
        &self,
        rollup: &Rollup,
        tenant: &str,
        hours: &[HourCount],
    ) -> Result<(), StoreError> {
        let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
            return Ok(());
        };
        let starts: Vec<u32> = hours.iter().map(|h| h.hour).collect();
        let seen: Vec<u64> = hours.iter().map(|h| h.rows).collect();
        // The counts go into the hourly table inside ClickHouse: a tenant
        // with very many event types or routes costs the gateway no memory.
        self.client
            .query(rollup.count_sql)
            .bind(&starts)
            .bind(&seen)
            .bind(tenant)
            .bind(first.hour)
            .bind(last.hour + HOUR)
            .bind(&starts)
            .execute()
            .await
            .map_err(clickhouse_error)?;
        // Stamped only once the counts are in: a stamp read is never ahead
        // of the counts it vouches for.
        let mut insert = self
            .client
            .insert::<Mark>("hourly_marks")
            .await
            .map_err(clickhouse_error)?;
        for hour in hours {
            insert
                .write(&Mark {
                    rollup: rollup.name,
                    tenant_id: tenant.to_owned(),
                    hour: hour.hour,
                    rows_seen: hour.rows,
                })
                .await
                .map_err(clickhouse_error)?;
        }
        insert.end().await.map_err(clickhouse_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(u32, u64)]) -> Vec<HourCount> {
        pairs
            .iter()
            .map(|&(hour, rows)| HourCount { hour, rows })
            .collect()
    }

    #[test]
    fn hours_written_since_their_stamp_or_never_stamped_are_stale() {
        let rows = counts(&[(0, 5), (3_600, 7), (7_200, 2), (10_800, 1)]);
        let marks = counts(&[(0, 5), (3_600, 6), (14_400, 9)]);
        let stale: Vec<(u32, u64)> = stale_hours(rows, &marks)
            .into_iter()
            .map(|h| (h.hour, h.rows))
            .collect();
        // 0 is current; 3600 moved; 7200 and 10800 were never counted; a
        // stamp without rows (14400) asks for nothing.
        assert_eq!(stale, vec![(3_600, 7), (7_200, 2), (10_800, 1)]);
    }

    #[test]
    fn passes_hold_about_the_rows_asked_and_cover_every_hour_once() {
        let stale = counts(&[(7_200, 4), (0, 3), (3_600, 3), (10_800, 9), (14_400, 1)]);
        let hours = |passes: Vec<Vec<HourCount>>| -> Vec<Vec<u32>> {
            passes
                .into_iter()
                .map(|p| p.into_iter().map(|h| h.hour).collect())
                .collect()
        };
        assert_eq!(
            hours(passes(stale.clone(), 7)),
            vec![vec![0, 3_600], vec![7_200], vec![10_800], vec![14_400]]
        );
        assert_eq!(
            hours(passes(stale.clone(), 100)),
            vec![vec![0, 3_600, 7_200, 10_800, 14_400]]
        );
        assert!(passes(Vec::new(), 7).is_empty());
    }
}
