//! Hourly user-activity counts (clickhouse-schema/003_user_activity_hourly.sql):
//! brought up to date for a range, then read in place of the raw events.
//!
//! An hour is current when the row count its counts were stamped with
//! equals the row count the view has added up since. Hours that are not are
//! counted again from the view's id sets, stamped with the row count read
//! before; rows that land meanwhile make the count move again, so they are
//! never lost, only counted once more.

use std::collections::HashMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{clickhouse_error, ClickHouse};
use crate::stores::StoreError;

const HOUR: u32 = 3_600;

/// Stored rows one computation covers, about: a tenant's first dashboard
/// over a busy month is counted in several steps, each kept once done, so a
/// query cut short by its timeout leaves less for the next one.
const ROWS_PER_PASS: u64 = 2_000_000;

#[derive(Debug, Clone, Copy, Row, Deserialize)]
struct HourCount {
    hour: u32,
    rows: u64,
}

#[derive(Debug, Row, Serialize)]
struct Mark {
    tenant_id: String,
    hour: u32,
    rows_seen: u64,
}

/// The hours whose counts must be computed again: those written to since
/// their stamp, or never stamped. Each comes with the write count to stamp.
fn stale_hours(writes: Vec<HourCount>, marks: &[HourCount]) -> Vec<HourCount> {
    let stamped: HashMap<u32, u64> = marks.iter().map(|m| (m.hour, m.rows)).collect();
    writes
        .into_iter()
        .filter(|w| stamped.get(&w.hour) != Some(&w.rows))
        .collect()
}

/// `stale` in hour order, cut into runs of about `rows_per_pass` written
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

/// Distinct events per hour and type as of their latest computation.
const CURRENT_COUNTS: &str = "SELECT hour, event_type, argMax(events, rows_seen) AS hour_events \
    FROM user_activity_hourly WHERE tenant_id = ? AND hour >= ? AND hour < ? \
    GROUP BY hour, event_type";

impl ClickHouse {
    /// Computes again the hours of `[from, to)` (whole hours, Unix seconds)
    /// that `tenant` has written to since they were last computed. Each
    /// step is a call of its own, under the store's timeout.
    pub(super) async fn refresh_activity_hours(
        &self,
        tenant: &str,
        from: u32,
        to: u32,
    ) -> Result<(), StoreError> {
        debug_assert!(from.is_multiple_of(HOUR) && to.is_multiple_of(HOUR));
        let writes = self
            .client
            .query(
                "SELECT hour, sumMerge(rows) AS rows FROM user_activity_hourly_ids \
                 WHERE tenant_id = ? AND hour >= ? AND hour < ? GROUP BY hour",
            )
            .bind(tenant)
            .bind(from)
            .bind(to)
            .fetch_all::<HourCount>();
        let marks = self
            .client
            .query(
                "SELECT hour, max(rows_seen) AS rows FROM user_activity_hourly_marks \
                 WHERE tenant_id = ? AND hour >= ? AND hour < ? GROUP BY hour",
            )
            .bind(tenant)
            .bind(from)
            .bind(to)
            .fetch_all::<HourCount>();
        let (writes, marks) = self
            .guard
            .run("activity_hours_stamps", async {
                tokio::try_join!(writes, marks).map_err(clickhouse_error)
            })
            .await?;
        for pass in passes(stale_hours(writes, &marks), ROWS_PER_PASS) {
            self.guard
                .run(
                    "activity_hours_compute",
                    self.recompute_activity_hours(tenant, &pass),
                )
                .await?;
        }
        Ok(())
    }

    /// Counts `hours` again from their id sets, then stamps them.
    async fn recompute_activity_hours(
        &self,
        tenant: &str,
        hours: &[HourCount],
    ) -> Result<(), StoreError> {
        let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
            return Ok(());
        };
        let (first, last) = (first.hour, last.hour);
        let starts: Vec<u32> = hours.iter().map(|h| h.hour).collect();
        let seen: Vec<u64> = hours.iter().map(|h| h.rows).collect();
        // The counts go from the id sets to the hourly table inside
        // ClickHouse: a tenant with very many event types costs the gateway
        // no memory.
        self.client
            .query(
                "INSERT INTO user_activity_hourly (tenant_id, hour, event_type, events, rows_seen) \
                 SELECT tenant_id, hour, event_type, uniqExactMerge(ids), \
                 transform(hour, ?, ?, toUInt64(0)) \
                 FROM user_activity_hourly_ids \
                 WHERE tenant_id = ? AND hour >= ? AND hour <= ? AND has(?, hour) \
                 GROUP BY tenant_id, hour, event_type",
            )
            .bind(&starts)
            .bind(&seen)
            .bind(tenant)
            .bind(first)
            .bind(last)
            .bind(&starts)
            .execute()
            .await
            .map_err(clickhouse_error)?;
        // Stamped only once the counts are in: a stamp read is never ahead
        // of the counts it vouches for.
        let mut insert = self
            .client
            .insert::<Mark>("user_activity_hourly_marks")
            .await
            .map_err(clickhouse_error)?;
        for hour in hours {
            insert
                .write(&Mark {
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

/// SQL over the hourly counts of one tenant's `[from, to)`: events by bucket
/// and type (binds: bucket width twice, tenant, from, to, row limit).
pub(super) fn bucketed_counts_sql() -> String {
    format!(
        "SELECT toUInt64(intDiv(hour, ?) * ?) AS bucket, event_type, sum(hour_events) AS events \
         FROM ({CURRENT_COUNTS}) GROUP BY bucket, event_type ORDER BY bucket, event_type LIMIT ?"
    )
}

/// SQL for the number of events in one tenant's `[from, to)` (binds:
/// tenant, from, to).
pub(super) fn total_count_sql() -> String {
    format!("SELECT sum(hour_events) FROM ({CURRENT_COUNTS})")
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
        let writes = counts(&[(0, 5), (3_600, 7), (7_200, 2), (10_800, 1)]);
        let marks = counts(&[(0, 5), (3_600, 6), (14_400, 9)]);
        let stale: Vec<(u32, u64)> = stale_hours(writes, &marks)
            .into_iter()
            .map(|h| (h.hour, h.rows))
            .collect();
        // 0 is current; 3600 moved; 7200 and 10800 were never computed; a
        // stamp without writes (14400) asks for nothing.
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
