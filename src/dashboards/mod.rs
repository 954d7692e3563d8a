//! The dashboard queries over the analytics tables, each answered through a
//! read-through Redis cache.
//!
//! Every answer has the same frame: the report, the range and interval it
//! used, one bucket per interval of the range (empty ones included, so a
//! chart needs no gap filling), and a total over the whole range.

pub mod query;
pub mod read_through;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::{json, Map, Value};

use crate::auth::TenantId;
use crate::config::DashboardSettings;
use crate::metrics::Metrics;
use crate::rfc3339;
use crate::stores::clickhouse::{ChallengeRow, ClickHouse, Window};
use crate::stores::redis::keys as redis_keys;
use crate::stores::redis::Redis;
use crate::stores::StoreError;
pub use query::{DashboardQuery, RawQuery, Report};
pub use read_through::{Answer, CacheStatus};
use read_through::{Lifetimes, ReadThrough};

#[derive(Clone)]
pub struct Dashboards {
    clickhouse: ClickHouse,
    cache: ReadThrough,
    settings: Arc<DashboardSettings>,
    metrics: Arc<Metrics>,
}

impl Dashboards {
    pub fn new(
        clickhouse: ClickHouse,
        redis: Redis,
        settings: &DashboardSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            clickhouse,
            cache: ReadThrough::new(redis),
            settings: Arc::new(settings.clone()),
            metrics,
        }
    }

    pub fn settings(&self) -> &DashboardSettings {
        &self.settings
    }

    pub async fn answer(
        &self,
        tenant: &TenantId,
        query: DashboardQuery,
    ) -> Result<Answer, StoreError> {
        let report = query.report;
        let key = redis_keys::dashboard_answer(tenant.as_str(), &query.fingerprint());
        let settings = &self.settings;
        let lifetimes = Lifetimes {
            fresh: Duration::from_secs(report.ttl_secs(settings)),
            stale_while_revalidate: Duration::from_secs(settings.stale_while_revalidate_secs),
            stale_if_error: Duration::from_secs(settings.stale_if_error_secs),
            lock: Duration::from_millis(settings.lock_ms),
        };
        let this = self.clone();
        let tenant = tenant.clone();
        let answer = self
            .cache
            .get(key, lifetimes, move || {
                async move { this.compute(&tenant, &query).await }.boxed()
            })
            .await;
        let outcome = match &answer {
            Ok(answer) if answer.bypassed => "bypassed",
            Ok(answer) => match answer.status {
                CacheStatus::Hit => "hit",
                CacheStatus::Miss => "miss",
                CacheStatus::Stale => "stale",
            },
            Err(_) => "failed",
        };
        self.metrics
            .dashboard_requests
            .with_label_values(&[report.name(), outcome])
            .inc();
        answer
    }

    /// Runs the report's query in ClickHouse and writes its answer.
    async fn compute(
        &self,
        tenant: &TenantId,
        query: &DashboardQuery,
    ) -> Result<Bytes, StoreError> {
        self.metrics
            .dashboard_queries
            .with_label_values(&[query.report.name()])
            .inc();
        let window = Window {
            tenant: tenant.as_str(),
            // Checked to lie within DateTime's range when parsed.
            from: query.from as u32,
            to: query.to as u32,
            bucket_secs: query.interval.seconds() as u32,
            max_rows: self.settings.max_rows,
        };
        let filter = query.filter.as_deref();
        let max_rows = self.settings.max_rows as usize;
        let mut frame = Frame::new(query);
        let (total, truncated) = match query.report {
            Report::UserActivity => {
                let (rows, total) = self.clickhouse.user_activity(&window, filter).await?;
                let truncated = rows.len() > max_rows;
                for row in rows.into_iter().take(max_rows) {
                    let bucket = frame.bucket(row.bucket);
                    let sum = bucket.get("total").and_then(Value::as_u64).unwrap_or(0);
                    bucket.insert("total".into(), json!(sum + row.events));
                    if let Some(types) = bucket
                        .entry("events")
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                    {
                        types.insert(row.event_type, json!(row.events));
                    }
                }
                frame.fill_empty(|| json!({"events": {}, "total": 0}));
                (json!(total), truncated)
            }
            Report::ChallengeStats => {
                let (rows, total) = self.clickhouse.challenge_stats(&window, filter).await?;
                let truncated = rows.len() > max_rows;
                for row in rows.into_iter().take(max_rows) {
                    let mut stats = challenge_json(&row);
                    stats.insert("challenge_id".into(), json!(row.challenge_id));
                    let list = frame
                        .bucket(row.bucket)
                        .entry("challenges")
                        .or_insert_with(|| json!([]));
                    if let Some(list) = list.as_array_mut() {
                        list.push(Value::Object(stats));
                    }
                }
                frame.fill_empty(|| json!({"challenges": []}));
                (Value::Object(challenge_json(&total)), truncated)
            }
            Report::FileStats => {
                let (uploads, downloads) = self.clickhouse.file_traffic(&window).await?;
                let truncated = uploads.len() > max_rows || downloads.len() > max_rows;
                let mut total = [0u64; 4];
                for (rows, files_name, bytes_name, at) in [
                    (uploads, "uploads", "upload_bytes", 0),
                    (downloads, "downloads", "download_bytes", 2),
                ] {
                    for row in rows.into_iter().take(max_rows) {
                        let bucket = frame.bucket(row.bucket);
                        bucket.insert(files_name.into(), json!(row.files));
                        bucket.insert(bytes_name.into(), json!(row.bytes));
                        total[at] += row.files;
                        total[at + 1] += row.bytes;
                    }
                }
                for bucket in frame.buckets.values_mut() {
                    for name in ["uploads", "upload_bytes", "downloads", "download_bytes"] {
                        bucket.entry(name).or_insert(json!(0));
                    }
                }
                frame.fill_empty(|| {
                    json!({"uploads": 0, "upload_bytes": 0, "downloads": 0, "download_bytes": 0})
                });
                let total = json!({
                    "uploads": total[0], "upload_bytes": total[1],
                    "downloads": total[2], "download_bytes": total[3],
                });
                (total, truncated)
            }
            Report::ApiUsage => {
                let (rows, total) = self.clickhouse.api_usage(&window, filter).await?;
                let truncated = rows.len() > max_rows;
                for row in rows.into_iter().take(max_rows) {
                    let mut stats = api_usage_json(&row);
                    stats.insert("route".into(), json!(row.route));
                    stats.insert("method".into(), json!(row.method));
                    let list = frame
                        .bucket(row.bucket)
                        .entry("routes")
                        .or_insert_with(|| json!([]));
                    if let Some(list) = list.as_array_mut() {
                        list.push(Value::Object(stats));
                    }
                }
                frame.fill_empty(|| json!({"routes": []}));
                let mut total_json = api_usage_json(&total);
                total_json.insert("tenant".into(), json!(tenant.as_str()));
                (Value::Object(total_json), truncated)
            }
        };
        Ok(frame.finish(total, truncated))
    }
}

/// The parts of an answer every report shares.
struct Frame<'a> {
    query: &'a DashboardQuery,
    buckets: std::collections::BTreeMap<u64, Map<String, Value>>,
}

impl<'a> Frame<'a> {
    fn new(query: &'a DashboardQuery) -> Self {
        Self {
            query,
            buckets: Default::default(),
        }
    }

    fn bucket(&mut self, start: u64) -> &mut Map<String, Value> {
        self.buckets.entry(start).or_default()
    }

    /// Adds every interval of the range that no row fell into.
    fn fill_empty(&mut self, empty: impl Fn() -> Value) {
        let step = self.query.interval.seconds();
        let mut start = self.query.from.div_euclid(step) * step;
        while start < self.query.to {
            self.buckets
                .entry(start as u64)
                .or_insert_with(|| match empty() {
                    Value::Object(map) => map,
                    _ => Map::new(),
                });
            start += step;
        }
    }

    fn finish(self, total: Value, truncated: bool) -> Bytes {
        let query = self.query;
        let buckets: Vec<Value> = self
            .buckets
            .into_iter()
            .map(|(start, mut fields)| {
                fields.insert("start".into(), json!(rfc3339::from_unix(start as i64)));
                Value::Object(fields)
            })
            .collect();
        let mut answer = json!({
            "report": query.report.name(),
            "range": {"from": rfc3339::from_unix(query.from), "to": rfc3339::from_unix(query.to)},
            "interval": query.interval.name(),
            "buckets": buckets,
            "total": total,
            "truncated": truncated,
        });
        if let (Some(filter), Some(name)) = (&query.filter, query.report.filter_name()) {
            answer[name] = json!(filter);
        }
        Bytes::from(answer.to_string())
    }
}

fn challenge_json(row: &ChallengeRow) -> Map<String, Value> {
    let completed = row.completions > 0;
    let rate = if row.attempts > 0 {
        json!(row.completions as f64 / row.attempts as f64)
    } else {
        Value::Null
    };
    let runtime = |value: f64| if completed { json!(value) } else { Value::Null };
    let Value::Object(map) = json!({
        "attempts": row.attempts,
        "completions": row.completions,
        "completion_rate": rate,
        "runtime_ms_median": runtime(row.runtime_ms_median),
        "runtime_ms_p90": runtime(row.runtime_ms_p90),
        "unique_users": row.unique_users,
    }) else {
        unreachable!("json! of an object is an object")
    };
    map
}

fn api_usage_json(row: &crate::stores::clickhouse::ApiUsageRow) -> Map<String, Value> {
    let any = row.requests > 0;
    let latency = |value: f64| {
        if any && value.is_finite() {
            json!(value)
        } else {
            Value::Null
        }
    };
    let rate = if any {
        json!(row.errors as f64 / row.requests as f64)
    } else {
        Value::Null
    };
    let Value::Object(map) = json!({
        "requests": row.requests,
        "client_errors": row.client_errors,
        "errors": row.errors,
        "error_rate": rate,
        "duration_ms_median": latency(row.duration_ms_median),
        "duration_ms_p90": latency(row.duration_ms_p90),
        "duration_ms_p99": latency(row.duration_ms_p99),
    }) else {
        unreachable!("json! of an object is an object")
    };
    map
}

#[cfg(test)]
mod tests {
    use super::query::{Interval, Report};
    use super::*;

    fn answered_buckets(from: i64, to: i64, interval: Interval) -> Vec<String> {
        let query = DashboardQuery {
            report: Report::UserActivity,
            from,
            to,
            interval,
            filter: None,
        };
        let mut frame = Frame::new(&query);
        frame.fill_empty(|| json!({"total": 0}));
        let answer: Value = serde_json::from_slice(&frame.finish(json!(0), false)).unwrap();
        answer["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|bucket| bucket["start"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn an_aligned_range_answers_one_bucket_per_interval() {
        // 2026-03-09T00:00:00Z, a day of hours.
        let from = 1_773_014_400;
        let hours = answered_buckets(from, from + 86_400, Interval::Hour);
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[0], "2026-03-09T00:00:00Z");
        assert_eq!(hours[23], "2026-03-09T23:00:00Z");
        let days = answered_buckets(from, from + 7 * 86_400, Interval::Day);
        assert_eq!(days.len(), 7);
        assert_eq!(days[6], "2026-03-15T00:00:00Z");
        // One interval: one bucket.
        assert_eq!(
            answered_buckets(from, from + 3_600, Interval::Hour).len(),
            1
        );
    }
}
