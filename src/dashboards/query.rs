//! A dashboard request, checked and normalised: which report, over which
//! range, in which buckets, filtered how. Two requests that normalise alike
//! share one cache entry.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::DashboardSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    UserActivity,
    ChallengeStats,
    FileStats,
    ApiUsage,
}

impl Report {
    pub fn name(self) -> &'static str {
        match self {
            Report::UserActivity => "user-activity",
            Report::ChallengeStats => "challenge-stats",
            Report::FileStats => "file-stats",
            Report::ApiUsage => "api-usage",
        }
    }

    /// The one filter a report takes, if any.
    pub fn filter_name(self) -> Option<&'static str> {
        match self {
            Report::UserActivity => Some("user_id"),
            Report::ChallengeStats => Some("challenge_id"),
            Report::FileStats => None,
            Report::ApiUsage => Some("route"),
        }
    }

    pub fn ttl_secs(self, settings: &DashboardSettings) -> u64 {
        match self {
            Report::UserActivity => settings.user_activity_ttl_secs,
            Report::ChallengeStats => settings.challenge_stats_ttl_secs,
            Report::FileStats => settings.file_stats_ttl_secs,
            Report::ApiUsage => settings.api_usage_ttl_secs,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
}

impl Interval {
    pub fn seconds(self) -> i64 {
        match self {
            Interval::Hour => 3_600,
            Interval::Day => 86_400,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }

    /// The range a request without `from` covers.
    fn default_span(self) -> i64 {
        match self {
            Interval::Hour => 86_400,
            Interval::Day => 7 * 86_400,
        }
    }
}

/// The query string of every dashboard endpoint.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RawQuery {
    /// Start of the range, RFC 3339 (default: `to` minus 7 days, or 24 hours hourly).
    pub from: Option<String>,
    /// End of the range, RFC 3339, exclusive (default: the end of the current interval).
    pub to: Option<String>,
    /// `hour` or `day` (the default).
    pub interval: Option<String>,
    /// user-activity only: one user's events.
    pub user_id: Option<String>,
    /// challenge-stats only: one challenge.
    pub challenge_id: Option<String>,
    /// api-usage only: one route template, such as `/files/{cid}`.
    pub route: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardQuery {
    pub report: Report,
    /// `[from, to)` in Unix seconds.
    pub from: i64,
    pub to: i64,
    pub interval: Interval,
    pub filter: Option<String>,
}

/// Longest filter value, in bytes.
const MAX_FILTER_BYTES: usize = 256;

impl DashboardQuery {
    /// Checks `raw` for `report`. The range is widened to whole intervals;
    /// without `to` it ends at the end of the current interval, so repeated
    /// requests normalise alike and share a cache entry until the interval
    /// turns.
    pub fn parse(
        report: Report,
        raw: RawQuery,
        now: OffsetDateTime,
        settings: &DashboardSettings,
    ) -> Result<Self, String> {
        let interval = match raw.interval.as_deref() {
            None | Some("day") => Interval::Day,
            Some("hour") => Interval::Hour,
            Some(other) => return Err(format!("interval={other:?} is not known; use hour or day")),
        };
        let step = interval.seconds();
        let to = match &raw.to {
            Some(text) => parse_time("to", text)?,
            None => {
                let now = now.unix_timestamp();
                now.div_euclid(step) * step + step
            }
        };
        let from = match &raw.from {
            Some(text) => parse_time("from", text)?,
            None => to - interval.default_span(),
        };
        if from >= to {
            return Err("from must be before to".into());
        }
        // Whole intervals: buckets are whole anyway, and a range that moves
        // by a second (a dashboard that asks for "the last 24 hours" each
        // time) then shares its cache entry, rather than starting a new
        // ClickHouse query per request.
        let from = from.div_euclid(step) * step;
        let to = (to + step - 1).div_euclid(step) * step;
        // ClickHouse's DateTime holds 1970 to 2106.
        if from < 0 || to > i64::from(u32::MAX) {
            return Err("from and to must lie between 1970 and 2106".into());
        }
        let max_span = settings.max_range_days as i64 * 86_400;
        if to - from > max_span {
            return Err(format!(
                "the range covers more than {} days (dashboards.max_range_days)",
                settings.max_range_days
            ));
        }
        let buckets = (to - from) / step;
        if buckets as u64 > settings.max_buckets {
            return Err(format!(
                "the range holds {buckets} {} buckets; the limit is {} (dashboards.max_buckets): use a wider interval or a shorter range",
                interval.name(),
                settings.max_buckets
            ));
        }
        let filters = [
            ("user_id", raw.user_id),
            ("challenge_id", raw.challenge_id),
            ("route", raw.route),
        ];
        let mut filter = None;
        for (name, value) in filters {
            let Some(value) = value else { continue };
            if report.filter_name() != Some(name) {
                return Err(format!("{} takes no {name} parameter", report.name()));
            }
            if value.is_empty()
                || value.len() > MAX_FILTER_BYTES
                || value.chars().any(char::is_control)
            {
                return Err(format!(
                    "{name} must have 1 to {MAX_FILTER_BYTES} bytes and no control characters"
                ));
            }
            filter = Some(value);
        }
        Ok(Self {
            report,
            from,
            to,
            interval,
            filter,
        })
    }

    /// A digest of everything that decides the answer; the tenant is added
    /// by the cache key.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.report.name());
        hasher.update(format!(
            "|{}|{}|{}|",
            self.from,
            self.to,
            self.interval.name()
        ));
        if let Some(filter) = &self.filter {
            hasher.update([1u8]);
            hasher.update(filter.as_bytes());
        }
        hex::encode(&hasher.finalize()[..16])
    }
}

fn parse_time(name: &str, text: &str) -> Result<i64, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|e| format!("{name}={text:?} is not an RFC 3339 time ({e})"))
}

/// Formats Unix seconds as RFC 3339, in UTC.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc3339;
    use time::macros::datetime;

    fn settings() -> DashboardSettings {
        DashboardSettings {
            user_activity_ttl_secs: 60,
            challenge_stats_ttl_secs: 60,
            file_stats_ttl_secs: 60,
            api_usage_ttl_secs: 60,
            stale_while_revalidate_secs: 30,
            stale_if_error_secs: 3600,
            lock_ms: 1000,
            max_range_days: 31,
            max_buckets: 200,
            max_rows: 1000,
        }
    }

    fn parse(report: Report, raw: RawQuery) -> Result<DashboardQuery, String> {
        DashboardQuery::parse(report, raw, datetime!(2026-03-10 15:42:10 UTC), &settings())
    }

    #[test]
    fn defaults_end_with_the_current_interval() {
        let query = parse(Report::UserActivity, RawQuery::default()).unwrap();
        assert_eq!(rfc3339::from_unix(query.to), "2026-03-11T00:00:00Z");
        assert_eq!(rfc3339::from_unix(query.from), "2026-03-04T00:00:00Z");
        let hourly = parse(
            Report::UserActivity,
            RawQuery {
                interval: Some("hour".into()),
                ..RawQuery::default()
            },
        )
        .unwrap();
        assert_eq!(rfc3339::from_unix(hourly.to), "2026-03-10T16:00:00Z");
        assert_eq!(rfc3339::from_unix(hourly.from), "2026-03-09T16:00:00Z");
    }

    #[test]
    fn ranges_widen_to_whole_intervals_and_share_an_entry() {
        let at = |from: &str, to: &str| {
            parse(
                Report::UserActivity,
                RawQuery {
                    from: Some(from.into()),
                    to: Some(to.into()),
                    interval: Some("hour".into()),
                    ..RawQuery::default()
                },
            )
            .unwrap()
        };
        let first = at("2026-03-09T15:42:10Z", "2026-03-10T15:42:10Z");
        let a_second_later = at("2026-03-09T15:42:11Z", "2026-03-10T15:42:11Z");
        assert_eq!(rfc3339::from_unix(first.from), "2026-03-09T15:00:00Z");
        assert_eq!(rfc3339::from_unix(first.to), "2026-03-10T16:00:00Z");
        assert_eq!(first.fingerprint(), a_second_later.fingerprint());
        // An aligned day of hours is 24 buckets, not 25.
        let day = at("2026-03-09T00:00:00Z", "2026-03-10T00:00:00Z");
        assert_eq!((day.to - day.from) / 3600, 24);
        let mut tight = settings();
        tight.max_buckets = 24;
        let raw = RawQuery {
            from: Some("2026-03-09T00:00:00Z".into()),
            to: Some("2026-03-10T00:00:00Z".into()),
            interval: Some("hour".into()),
            ..RawQuery::default()
        };
        let now = datetime!(2026-03-10 15:42:10 UTC);
        assert!(DashboardQuery::parse(Report::UserActivity, raw.clone(), now, &tight).is_ok());
        tight.max_buckets = 23;
        assert!(DashboardQuery::parse(Report::UserActivity, raw, now, &tight).is_err());
    }

    #[test]
    fn range_and_bucket_bounds_hold_exactly_at_their_limits() {
        let now = datetime!(2026-03-10 15:42:10 UTC);
        let raw = |from: &str, to: &str, interval: &str| RawQuery {
            from: Some(from.into()),
            to: Some(to.into()),
            interval: Some(interval.into()),
            ..RawQuery::default()
        };
        let parse_with = |raw: RawQuery, settings: &DashboardSettings| {
            DashboardQuery::parse(Report::UserActivity, raw, now, settings)
        };
        let mut bounds = settings();
        bounds.max_buckets = 1_000;
        // 31 days exactly is allowed; one hour more is not.
        let month = raw("2026-02-01T00:00:00Z", "2026-03-04T00:00:00Z", "day");
        assert!(parse_with(month, &bounds).is_ok());
        let past = raw("2026-02-01T00:00:00Z", "2026-03-04T01:00:00Z", "hour");
        let error = parse_with(past, &bounds).unwrap_err();
        assert!(error.contains("max_range_days"), "{error}");
        // 200 hourly buckets exactly is allowed; 201 are not.
        bounds.max_buckets = 200;
        let at = raw("2026-03-01T00:00:00Z", "2026-03-09T08:00:00Z", "hour");
        assert_eq!(
            parse_with(at, &bounds).map(|q| (q.to - q.from) / 3600),
            Ok(200)
        );
        let over = raw("2026-03-01T00:00:00Z", "2026-03-09T09:00:00Z", "hour");
        let error = parse_with(over, &bounds).unwrap_err();
        assert!(error.contains("201 hour buckets"), "{error}");
        // An empty range is refused, even one that would widen to an interval.
        let empty = raw("2026-03-01T10:30:00Z", "2026-03-01T10:30:00Z", "hour");
        assert_eq!(
            parse_with(empty, &bounds).unwrap_err(),
            "from must be before to"
        );
    }

    #[test]
    fn same_query_in_other_words_shares_a_fingerprint() {
        let utc = parse(
            Report::FileStats,
            RawQuery {
                from: Some("2026-03-01T00:00:00Z".into()),
                to: Some("2026-03-02T00:00:00Z".into()),
                ..RawQuery::default()
            },
        )
        .unwrap();
        let offset = parse(
            Report::FileStats,
            RawQuery {
                from: Some("2026-03-01T02:00:00+02:00".into()),
                to: Some("2026-03-02T02:00:00+02:00".into()),
                interval: Some("day".into()),
                ..RawQuery::default()
            },
        )
        .unwrap();
        assert_eq!(utc.fingerprint(), offset.fingerprint());
        let other_report = DashboardQuery {
            report: Report::ApiUsage,
            ..utc.clone()
        };
        assert_ne!(utc.fingerprint(), other_report.fingerprint());
    }

    #[test]
    fn bad_ranges_and_filters_are_refused_with_a_reason() {
        let cases = [
            (
                Report::UserActivity,
                RawQuery {
                    from: Some("yesterday".into()),
                    ..RawQuery::default()
                },
                "RFC 3339",
            ),
            (
                Report::UserActivity,
                RawQuery {
                    from: Some("2026-03-02T00:00:00Z".into()),
                    to: Some("2026-03-01T00:00:00Z".into()),
                    ..RawQuery::default()
                },
                "before",
            ),
            (
                Report::UserActivity,
                RawQuery {
                    from: Some("2025-01-01T00:00:00Z".into()),
                    ..RawQuery::default()
                },
                "max_range_days",
            ),
            (
                Report::UserActivity,
                RawQuery {
                    from: Some("2026-02-25T00:00:00Z".into()),
                    interval: Some("hour".into()),
                    ..RawQuery::default()
                },
                "max_buckets",
            ),
            (
                Report::UserActivity,
                RawQuery {
                    interval: Some("week".into()),
                    ..RawQuery::default()
                },
                "interval",
            ),
            (
                Report::FileStats,
                RawQuery {
                    user_id: Some("u1".into()),
                    ..RawQuery::default()
                },
                "takes no user_id",
            ),
            (
                Report::ApiUsage,
                RawQuery {
                    route: Some(String::new()),
                    ..RawQuery::default()
                },
                "route must have",
            ),
        ];
        for (report, raw, expected) in cases {
            let error = parse(report, raw).unwrap_err();
            assert!(
                error.contains(expected),
                "{error:?} should mention {expected:?}"
            );
        }
    }
}
