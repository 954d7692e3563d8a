//! Response headers describing a decision: `RateLimit-Policy` and
//! `RateLimit` as the IETF httpapi draft writes them (one list item per
//! limit), and the widely used `X-RateLimit-*` trio for the binding limit.

use super::Decision;

/// Whole seconds, rounded up so a client that waits this long succeeds.
pub fn ceil_secs(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

/// `"minute";q=100;w=60, "day";q=1000;w=86400`
pub fn ratelimit_policy_header(decision: &Decision) -> String {
    decision
        .limits
        .iter()
        .map(|l| {
            let (quota, window) = whole_second_quota(l.limit.limit, l.limit.window);
            format!("\"{}\";q={quota};w={window}", l.limit.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The header's window is whole seconds. A window that is not is written
/// as the next whole number of seconds, with the quota scaled to it and
/// rounded down, so a client that keeps to it is never denied: 10 per
/// 500 ms is `q=20;w=1`, 100 per 1.5 s is `q=133;w=2`.
fn whole_second_quota(limit: u64, window: std::time::Duration) -> (u64, u64) {
    let window_us = window.as_micros().max(1);
    let seconds = window_us.div_ceil(1_000_000);
    if seconds * 1_000_000 == window_us {
        return (limit, seconds as u64);
    }
    let quota = u128::from(limit) * seconds * 1_000_000 / window_us;
    (u64::try_from(quota).unwrap_or(u64::MAX), seconds as u64)
}

/// `"minute";r=19;t=1, "day";r=999;t=87`
pub fn ratelimit_header(decision: &Decision) -> String {
    decision
        .limits
        .iter()
        .map(|l| {
            format!(
                "\"{}\";r={};t={}",
                l.limit.name,
                l.remaining,
                ceil_secs(l.reset_us)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (seconds from now).
pub fn legacy_headers(decision: &Decision) -> Vec<(&'static str, String)> {
    match decision.binding() {
        Some(binding) => vec![
            ("x-ratelimit-limit", binding.limit.limit.to_string()),
            ("x-ratelimit-remaining", binding.remaining.to_string()),
            ("x-ratelimit-reset", ceil_secs(binding.reset_us).to_string()),
        ],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::RedisDownMode;
    use crate::rate_limit::{Limit, LimitState, Policy};

    fn state(
        name: &str,
        limit: u64,
        window: u64,
        remaining: u64,
        reset_us: u64,
        retry_us: u64,
    ) -> LimitState {
        LimitState {
            limit: Limit {
                name: name.into(),
                limit,
                window: Duration::from_secs(window),
                burst: limit,
                emission_us: window * 1_000_000 / limit,
                tolerance_us: window * 1_000_000,
            },
            allowed: retry_us == 0,
            remaining,
            reset_us,
            retry_us,
        }
    }

    fn decision(limits: Vec<LimitState>) -> Decision {
        let policy = Arc::new(Policy {
            name: "api".into(),
            limits: limits.iter().map(|l| l.limit.clone()).collect(),
            shadow: false,
            on_redis_down: RedisDownMode::Open,
        });
        Decision {
            allowed: limits.iter().all(|l| l.allowed),
            policy,
            shadow_denied: false,
            unchecked: false,
            limits,
        }
    }

    #[test]
    fn writes_every_limit() {
        let d = decision(vec![
            state("minute", 100, 60, 19, 1_500_000, 0),
            state("day", 1000, 86400, 999, 86_400_000_000, 0),
        ]);
        assert_eq!(
            ratelimit_policy_header(&d),
            "\"minute\";q=100;w=60, \"day\";q=1000;w=86400"
        );
        assert_eq!(
            ratelimit_header(&d),
            "\"minute\";r=19;t=2, \"day\";r=999;t=86400"
        );
    }

    #[test]
    fn legacy_headers_follow_the_binding_limit() {
        let d = decision(vec![
            state("minute", 100, 60, 0, 60_000_000, 600_000),
            state("day", 1000, 86400, 900, 86_000_000_000, 0),
        ]);
        assert_eq!(
            legacy_headers(&d),
            vec![
                ("x-ratelimit-limit", "100".to_owned()),
                ("x-ratelimit-remaining", "0".to_owned()),
                ("x-ratelimit-reset", "60".to_owned()),
            ]
        );
        assert_eq!(d.retry_after_us(), 600_000);
    }

    #[test]
    fn sub_second_windows_are_written_in_whole_seconds() {
        let within = |limit, window_ms, remaining, reset_us| {
            let mut state = state("fast", limit, 1, remaining, reset_us, 0);
            state.limit.window = Duration::from_millis(window_ms);
            state
        };
        let d = decision(vec![
            within(10, 500, 9, 50_000),
            within(100, 1_500, 99, 1_200_000),
            within(3, 1_000, 2, 0),
        ]);
        assert_eq!(
            ratelimit_policy_header(&d),
            "\"fast\";q=20;w=1, \"fast\";q=133;w=2, \"fast\";q=3;w=1"
        );
        // A reset under a second is a second away, never zero: a client
        // that waits that long succeeds.
        assert_eq!(
            ratelimit_header(&d),
            "\"fast\";r=9;t=1, \"fast\";r=99;t=2, \"fast\";r=2;t=0"
        );
        assert_eq!(
            whole_second_quota(u64::MAX, Duration::from_micros(1)),
            (u64::MAX, 1)
        );
    }
}
