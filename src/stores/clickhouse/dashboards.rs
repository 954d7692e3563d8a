//! The dashboard queries. Values are bound (`?`), never spliced into the SQL
//! text; the optional filters add fixed text with a bound value.
//!
//! Counts read each event once: `uniqExact(event_id)` where only counts are
//! needed, `FINAL` where sums and quantiles are taken over the rows. User
//! activity, file traffic and API usage read hourly counts taken that way
//! (see `hourly`), brought up to date first; one user's activity and the
//! challenge statistics (exact quantiles and distinct users, which hours
//! cannot be summed into) read the raw rows.

use clickhouse::Row;
use serde::Deserialize;

use super::hourly::{self, Rollup};
use super::{clickhouse_error, ClickHouse};
use crate::stores::StoreError;

/// What every dashboard query selects on: one tenant's events in
/// `[from, to)` (Unix seconds), grouped into buckets of `bucket_secs`.
#[derive(Debug, Clone)]
pub struct Window<'a> {
    pub tenant: &'a str,
    pub from: u32,
    pub to: u32,
    pub bucket_secs: u32,
    /// Most rows returned; one more is asked for, to tell a cut answer.
    pub max_rows: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct ActivityRow {
    pub bucket: u64,
    pub event_type: String,
    pub events: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct ChallengeRow {
    pub bucket: u64,
    pub challenge_id: String,
    pub attempts: u64,
    pub completions: u64,
    pub unique_users: u64,
    pub runtime_ms_median: f64,
    pub runtime_ms_p90: f64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct FileTrafficRow {
    pub bucket: u64,
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct ApiUsageRow {
    pub bucket: u64,
    pub route: String,
    pub method: String,
    pub requests: u64,
    pub client_errors: u64,
    pub errors: u64,
    pub duration_ms_median: f64,
    pub duration_ms_p90: f64,
    pub duration_ms_p99: f64,
}

/// `bucket` of a row: the start of its interval, in Unix seconds.
const BUCKET: &str = "toUInt64(intDiv(toUInt32(timestamp), ?) * ?) AS bucket";
const IN_WINDOW: &str =
    "tenant_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?)";

/// The same over the hourly tables (`hour` is whole hours).
const HOURLY_BUCKET: &str = "toUInt64(intDiv(hour, ?) * ?) AS bucket";
const IN_HOURS: &str = "tenant_id = ? AND hour >= ? AND hour < ?";

/// Each hour's current counts: the row stamped with the highest row count.
const USER_ACTIVITY_HOURS: &str = "SELECT hour, event_type, \
    argMax(events, rows_seen) AS hour_events FROM user_activity_hourly \
    WHERE tenant_id = ? AND hour >= ? AND hour < ? GROUP BY hour, event_type";

const CHALLENGE_STATS: &str = "count() AS attempts, \
    countIf(status = 'passed') AS completions, \
    uniqExact(user_id) AS unique_users, \
    toFloat64(quantileExactIf(0.5)(runtime_ms, status = 'passed')) AS runtime_ms_median, \
    toFloat64(quantileExactIf(0.9)(runtime_ms, status = 'passed')) AS runtime_ms_p90";

/// Over `api_usage_hourly`'s current rows, renamed (`r`, `ce`, `e`, `d`) so
/// that no sum takes its own alias's name.
const API_USAGE_STATS: &str = "sum(r) AS requests, sum(ce) AS client_errors, sum(e) AS errors, \
    toFloat64(quantilesMerge(0.5, 0.9, 0.99)(d)[1]) AS duration_ms_median, \
    toFloat64(quantilesMerge(0.5, 0.9, 0.99)(d)[2]) AS duration_ms_p90, \
    toFloat64(quantilesMerge(0.5, 0.9, 0.99)(d)[3]) AS duration_ms_p99";

impl ClickHouse {
    /// Events by bucket and type, and the number of distinct events in the
    /// whole window. The whole tenant's counts come from the hourly table,
    /// brought up to date first; one user's are counted from the raw rows.
    pub async fn user_activity(
        &self,
        window: &Window<'_>,
        user_id: Option<&str>,
    ) -> Result<(Vec<ActivityRow>, u64), StoreError> {
        let Some(user_id) = user_id else {
            return self.user_activity_from_hours(window).await;
        };
        let rows_sql = format!(
            "SELECT {BUCKET}, event_type, uniqExact(event_id) AS events FROM user_activity \
             WHERE {IN_WINDOW} AND user_id = ? GROUP BY bucket, event_type \
             ORDER BY bucket, event_type LIMIT ?"
        );
        let total_sql = format!(
            "SELECT uniqExact(event_id) FROM user_activity WHERE {IN_WINDOW} AND user_id = ?"
        );
        self.guard
            .run("dashboard_user_activity", async {
                let rows = bind_window(self.client.query(&rows_sql), window, true)
                    .bind(user_id)
                    .bind(window.max_rows + 1)
                    .fetch_all::<ActivityRow>();
                let total = bind_window(self.client.query(&total_sql), window, false)
                    .bind(user_id)
                    .fetch_one::<u64>();
                let (rows, total) = tokio::try_join!(rows, total).map_err(clickhouse_error)?;
                Ok((rows, total))
            })
            .await
    }

    async fn user_activity_from_hours(
        &self,
        window: &Window<'_>,
    ) -> Result<(Vec<ActivityRow>, u64), StoreError> {
        self.refresh(&hourly::USER_ACTIVITY, window).await?;
        let rows_sql = format!(
            "SELECT {HOURLY_BUCKET}, event_type, sum(hour_events) AS events \
             FROM ({USER_ACTIVITY_HOURS}) GROUP BY bucket, event_type \
             ORDER BY bucket, event_type LIMIT ?"
        );
        let total_sql = format!("SELECT sum(hour_events) FROM ({USER_ACTIVITY_HOURS})");
        self.guard
            .run("dashboard_user_activity", async {
                let rows = bind_window(self.client.query(&rows_sql), window, true)
                    .bind(window.max_rows + 1)
                    .fetch_all::<ActivityRow>();
                let total =
                    bind_window(self.client.query(&total_sql), window, false).fetch_one::<u64>();
                let (rows, total) = tokio::try_join!(rows, total).map_err(clickhouse_error)?;
                Ok((rows, total))
            })
            .await
    }

    /// Counts again the window's hours written to since they were counted.
    async fn refresh(&self, rollup: &Rollup, window: &Window<'_>) -> Result<(), StoreError> {
        self.refresh_hours(rollup, window.tenant, window.from, window.to)
            .await
    }

    /// Attempts and completions per bucket and challenge, and over the
    /// whole window.
    pub async fn challenge_stats(
        &self,
        window: &Window<'_>,
        challenge_id: Option<&str>,
    ) -> Result<(Vec<ChallengeRow>, ChallengeRow), StoreError> {
        let filter = if challenge_id.is_some() {
            " AND challenge_id = ?"
        } else {
            ""
        };
        let rows_sql = format!(
            "SELECT {BUCKET}, challenge_id, {CHALLENGE_STATS} FROM challenge_completions FINAL \
             WHERE {IN_WINDOW}{filter} GROUP BY bucket, challenge_id \
             ORDER BY bucket, challenge_id LIMIT ?"
        );
        let total_sql = format!(
            // The placeholders fill the row's first columns; they take names
            // of their own, since an alias would shadow the column filtered on.
            "SELECT toUInt64(0) AS no_bucket, '' AS no_challenge, {CHALLENGE_STATS} \
             FROM challenge_completions FINAL WHERE {IN_WINDOW}{filter}"
        );
        self.guard
            .run("dashboard_challenge_stats", async {
                let rows = bind_optional(
                    bind_window(self.client.query(&rows_sql), window, true),
                    challenge_id,
                )
                .bind(window.max_rows + 1)
                .fetch_all::<ChallengeRow>();
                let total = bind_optional(
                    bind_window(self.client.query(&total_sql), window, false),
                    challenge_id,
                )
                .fetch_one::<ChallengeRow>();
                let (rows, total) = tokio::try_join!(rows, total).map_err(clickhouse_error)?;
                Ok((rows, total))
            })
            .await
    }

    /// Uploads and downloads per bucket: files and bytes of each.
    pub async fn file_traffic(
        &self,
        window: &Window<'_>,
    ) -> Result<(Vec<FileTrafficRow>, Vec<FileTrafficRow>), StoreError> {
        tokio::try_join!(
            self.refresh(&hourly::FILE_UPLOADS, window),
            self.refresh(&hourly::FILE_DOWNLOADS, window)
        )?;
        let sql = |table: &str| {
            format!(
                "SELECT {HOURLY_BUCKET}, sum(hour_files) AS files, sum(hour_bytes) AS bytes \
                 FROM (SELECT hour, argMax(files, rows_seen) AS hour_files, \
                 argMax(bytes, rows_seen) AS hour_bytes FROM {table} \
                 WHERE {IN_HOURS} GROUP BY hour) \
                 GROUP BY bucket ORDER BY bucket LIMIT ?"
            )
        };
        let uploads_sql = sql("file_uploads_hourly");
        let downloads_sql = sql("file_downloads_hourly");
        self.guard
            .run("dashboard_file_stats", async {
                let uploads = bind_window(self.client.query(&uploads_sql), window, true)
                    .bind(window.max_rows + 1)
                    .fetch_all::<FileTrafficRow>();
                let downloads = bind_window(self.client.query(&downloads_sql), window, true)
                    .bind(window.max_rows + 1)
                    .fetch_all::<FileTrafficRow>();
                let (uploads, downloads) =
                    tokio::try_join!(uploads, downloads).map_err(clickhouse_error)?;
                Ok((uploads, downloads))
            })
            .await
    }

    /// Requests, errors and latency per bucket, route and method, and over
    /// the whole window.
    pub async fn api_usage(
        &self,
        window: &Window<'_>,
        route: Option<&str>,
    ) -> Result<(Vec<ApiUsageRow>, ApiUsageRow), StoreError> {
        self.refresh(&hourly::API_USAGE, window).await?;
        let filter = if route.is_some() {
            " AND route = ?"
        } else {
            ""
        };
        let current = format!(
            "SELECT hour, route, method, requests AS r, client_errors AS ce, errors AS e, \
             durations AS d FROM api_usage_hourly FINAL WHERE {IN_HOURS}{filter}"
        );
        let rows_sql = format!(
            "SELECT {HOURLY_BUCKET}, route, method, {API_USAGE_STATS} FROM ({current}) \
             GROUP BY bucket, route, method ORDER BY bucket, route, method LIMIT ?"
        );
        let total_sql = format!(
            // The placeholders fill the row's first columns; they take names
            // of their own, since an alias would shadow the column filtered on.
            "SELECT toUInt64(0) AS no_bucket, '' AS no_route, '' AS no_method, {API_USAGE_STATS} \
             FROM ({current})"
        );
        self.guard
            .run("dashboard_api_usage", async {
                let rows = bind_optional(
                    bind_window(self.client.query(&rows_sql), window, true),
                    route,
                )
                .bind(window.max_rows + 1)
                .fetch_all::<ApiUsageRow>();
                let total = bind_optional(
                    bind_window(self.client.query(&total_sql), window, false),
                    route,
                )
                .fetch_one::<ApiUsageRow>();
                let (rows, total) = tokio::try_join!(rows, total).map_err(clickhouse_error)?;
                Ok((rows, total))
            })
            .await
    }
}

/// Binds the bucket width (when the query groups by bucket) and the window,
/// in the order `BUCKET` and `IN_WINDOW` (or `HOURLY_BUCKET` and `IN_HOURS`)
/// take them.
fn bind_window(
    query: clickhouse::query::Query,
    window: &Window<'_>,
    bucketed: bool,
) -> clickhouse::query::Query {
    let query = if bucketed {
        query.bind(window.bucket_secs).bind(window.bucket_secs)
    } else {
        query
    };
    query.bind(window.tenant).bind(window.from).bind(window.to)
}

fn bind_optional(query: clickhouse::query::Query, value: Option<&str>) -> clickhouse::query::Query {
    match value {
        Some(value) => query.bind(value),
        None => query,
    }
}
