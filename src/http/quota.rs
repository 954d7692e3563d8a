//! How a rate-limit decision is written into a response: the headers on
//! every answer, the JSON fields, and the `application/problem+json` body of
//! a denial.

use actix_web::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;
use serde_json::{json, Value};

use crate::rate_limit::{self, Decision};

/// The problem type the IETF httpapi rate-limit draft registers.
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// `RateLimit-Policy`, `RateLimit` and `X-RateLimit-*`, plus `Retry-After`
/// when the request was denied.
pub fn insert_headers(response: &mut HttpResponseBuilder, decision: &Decision) {
    let mut insert = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.insert_header((HeaderName::from_static(name), value));
        }
    };
    if decision.unchecked {
        return;
    }
    insert(
        "ratelimit-policy",
        rate_limit::ratelimit_policy_header(decision),
    );
    insert("ratelimit", rate_limit::ratelimit_header(decision));
    for (name, value) in rate_limit::legacy_headers(decision) {
        insert(name, value);
    }
    if !decision.allowed {
        response.insert_header((
            RETRY_AFTER,
            rate_limit::ceil_secs(decision.retry_after_us()).to_string(),
        ));
    }
}

/// What both rate-limit endpoints answer: the decision, the binding limit's
/// figures at the top, and every limit of the policy.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RateLimitAnswer {
    allowed: bool,
    policy: String,
    /// The binding limit's figures: the violated limit that frees up last,
    /// else the one with the least left.
    limit: Option<u64>,
    remaining: Option<u64>,
    reset_seconds: Option<u64>,
    retry_after_seconds: u64,
    /// A shadow policy never denies; `would_deny` says what it would do.
    shadow: bool,
    would_deny: bool,
    /// False when Redis could not be asked and the policy fails open.
    checked: bool,
    limits: Vec<LimitAnswer>,
}

/// One limit of a policy and where the key stands against it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LimitAnswer {
    name: String,
    limit: u64,
    window_seconds: f64,
    burst: u64,
    remaining: u64,
    reset_seconds: u64,
    allowed: bool,
}

pub fn fields(decision: &Decision) -> RateLimitAnswer {
    let binding = decision.binding();
    RateLimitAnswer {
        allowed: decision.allowed,
        policy: decision.policy.name.clone(),
        limit: binding.map(|l| l.limit.limit),
        remaining: binding.map(|l| l.remaining),
        reset_seconds: binding.map(|l| rate_limit::ceil_secs(l.reset_us)),
        retry_after_seconds: rate_limit::ceil_secs(decision.retry_after_us()),
        shadow: decision.policy.shadow,
        would_deny: decision.shadow_denied,
        checked: !decision.unchecked,
        limits: decision
            .limits
            .iter()
            .map(|l| LimitAnswer {
                name: l.limit.name.clone(),
                limit: l.limit.limit,
                window_seconds: l.limit.window.as_secs_f64(),
                burst: l.limit.burst,
                remaining: l.remaining,
                reset_seconds: rate_limit::ceil_secs(l.reset_us),
                allowed: l.allowed,
            })
            .collect(),
    }
}

/// 429 with the headers and a problem body naming the violated limits.
pub fn exceeded(decision: &Decision) -> HttpResponse {
    let violated: Vec<&str> = decision
        .limits
        .iter()
        .filter(|l| !l.allowed)
        .map(|l| l.limit.name.as_str())
        .collect();
    let detail = decision
        .limits
        .iter()
        .filter(|l| !l.allowed)
        .map(|l| {
            format!(
                "limit {:?} of policy {:?} ({} per {}, burst {})",
                l.limit.name,
                decision.policy.name,
                l.limit.limit,
                humantime::format_duration(l.limit.window),
                l.limit.burst
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut body = serde_json::to_value(fields(decision)).unwrap_or_default();
    if let Value::Object(map) = &mut body {
        map.insert("type".into(), json!(QUOTA_EXCEEDED_TYPE));
        map.insert(
            "title".into(),
            json!("Request cannot be satisfied as assigned quota has been exceeded"),
        );
        map.insert("status".into(), json!(429));
        map.insert(
            "detail".into(),
            json!(format!(
                "quota exceeded: {detail}; retry after {} s",
                rate_limit::ceil_secs(decision.retry_after_us())
            )),
        );
        map.insert("violated_policies".into(), json!(violated));
    }
    let mut response = HttpResponse::build(StatusCode::TOO_MANY_REQUESTS);
    insert_headers(&mut response, decision);
    response
        .content_type("application/problem+json")
        .body(body.to_string())
}
