//! Every Prometheus metric the gateway exports, named and described in one place.

use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub const HTTP_REQUESTS_TOTAL: &str = "gateway_http_requests_total";
const HTTP_REQUESTS_HELP: &str = "HTTP requests answered, by route template, method and status.";

pub const HTTP_REQUEST_DURATION_SECONDS: &str = "gateway_http_request_duration_seconds";
const HTTP_REQUEST_DURATION_HELP: &str =
    "Time from receiving a request to its response head, by route template and method.";

pub const STORE_CALLS_TOTAL: &str = "gateway_store_calls_total";
const STORE_CALLS_HELP: &str =
    "Calls to a backend store, by store, operation and outcome (ok, error, unavailable).";

pub const STORE_CALL_DURATION_SECONDS: &str = "gateway_store_call_duration_seconds";
const STORE_CALL_DURATION_HELP: &str =
    "Duration of calls to a backend store, by store and operation.";

pub const FILE_RECONCILER_ACTIONS_TOTAL: &str = "gateway_file_reconciler_actions_total";
const FILE_RECONCILER_ACTIONS_HELP: &str = "What the file reconciler did: abandoned_upload (a stale pending upload removed), pin_pinned, pin_error (a pin state refreshed from the Cluster).";

pub const RATE_LIMIT_DECISIONS_TOTAL: &str = "gateway_rate_limit_decisions_total";
const RATE_LIMIT_DECISIONS_HELP: &str = "Rate-limit checks, by policy and outcome: allowed, denied, shadow_denied (a shadow policy would have denied), unchecked (Redis unavailable, policy fails open).";

pub const SESSION_EVENTS_TOTAL: &str = "gateway_session_events_total";
const SESSION_EVENTS_HELP: &str = "Session operations seen by the gateway: created, read, missed (unknown or expired id), updated, rotated, revoked, evicted (ended to keep a user within the per-user cap).";

pub const CACHE_OPERATIONS_TOTAL: &str = "gateway_cache_operations_total";
const CACHE_OPERATIONS_HELP: &str = "Cache operations by operation and outcome: get hit or miss (a miss includes values expired by TTL, which Redis does not report), set stored, delete deleted or miss.";

pub const ANALYTICS_EVENTS_TOTAL: &str = "gateway_analytics_events_total";
const ANALYTICS_EVENTS_HELP: &str = "Analytics events by outcome: accepted (durable in the spool), inserted (acknowledged by ClickHouse), rejected (invalid, nothing of their request accepted), dropped (an activity event of the gateway's own that found the spool's queue full), quarantined (refused by a reachable ClickHouse five times in a row and set aside in the spool's rejected/ folder).";

pub const ANALYTICS_SPOOL_EVENTS: &str = "gateway_analytics_spool_events";
const ANALYTICS_SPOOL_EVENTS_HELP: &str = "Events accepted and not yet acknowledged by ClickHouse.";

pub const ANALYTICS_SPOOL_BYTES: &str = "gateway_analytics_spool_bytes";
const ANALYTICS_SPOOL_BYTES_HELP: &str =
    "Bytes of events in the spool not yet acknowledged by ClickHouse.";

pub const ANALYTICS_OLDEST_PENDING_SECONDS: &str = "gateway_analytics_oldest_pending_seconds";
const ANALYTICS_OLDEST_PENDING_HELP: &str =
    "Age of the oldest event not yet acknowledged by ClickHouse (0 when none waits).";

pub const DASHBOARD_REQUESTS_TOTAL: &str = "gateway_dashboard_requests_total";
const DASHBOARD_REQUESTS_HELP: &str = "Dashboard query requests by report and how they were answered: hit (fresh from the Redis cache), miss (computed in ClickHouse, here or by another gateway), stale (an older answer, while a refresh runs or ClickHouse is down), bypassed (Redis unavailable, answered straight from ClickHouse), failed.";

pub const DASHBOARD_QUERIES_TOTAL: &str = "gateway_dashboard_queries_total";
const DASHBOARD_QUERIES_HELP: &str = "Dashboard queries this gateway ran in ClickHouse, by report.";

pub const BACKEND_UP: &str = "gateway_backend_up";
const BACKEND_UP_HELP: &str = "1 when the backend answered the gateway's last health check (every server.backend_probe_interval_secs), else 0.";

pub const FILE_BYTES_TOTAL: &str = "gateway_file_bytes_total";
const FILE_BYTES_HELP: &str =
    "Bytes of file content through the gateway, by direction: upload (committed files), download (sent).";

pub const FILE_PINS: &str = "gateway_file_pins";
const FILE_PINS_HELP: &str =
    "Content the gateway keeps pinned, by pin state (pinning, pinned, error), as of the reconciler's last pass.";

pub const REQUESTS_SHED_TOTAL: &str = "gateway_requests_shed_total";
const REQUESTS_SHED_HELP: &str =
    "Requests refused with 503 because a gateway-wide bound was reached, by bound (body_bytes, uploads).";

/// Route label for requests that matched no route, so unknown paths cannot
/// blow up the label set.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The method label: one of the methods of RFC 9110 and PATCH, or `OTHER`.
/// HTTP lets a caller invent any method token; a label taken from it as sent
/// would make a new series per token.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .iter()
        .find(|known| **known == method.as_str())
        .copied()
        .unwrap_or("OTHER")
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The gateway's metrics, registered in a registry of their own so several
/// gateways can live in one process (as they do in tests).
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub store_calls: IntCounterVec,
    pub store_duration: HistogramVec,
    pub reconciler_actions: IntCounterVec,
    pub rate_limit_decisions: IntCounterVec,
    pub session_events: IntCounterVec,
    pub cache_operations: IntCounterVec,
    pub analytics_events: IntCounterVec,
    pub analytics_spool_events: IntGauge,
    pub analytics_spool_bytes: IntGauge,
    pub analytics_oldest_pending_seconds: Gauge,
    pub dashboard_requests: IntCounterVec,
    pub dashboard_queries: IntCounterVec,
    pub backend_up: IntGaugeVec,
    pub file_bytes: IntCounterVec,
    pub file_pins: IntGaugeVec,
    pub requests_shed: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(HTTP_REQUESTS_TOTAL, HTTP_REQUESTS_HELP),
            &["route", "method", "status"],
        )
        .expect("metric definition is valid");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUEST_DURATION_HELP)
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("metric definition is valid");
        let store_calls = IntCounterVec::new(
            Opts::new(STORE_CALLS_TOTAL, STORE_CALLS_HELP),
            &["store", "operation", "outcome"],
        )
        .expect("metric definition is valid");
        let store_duration = HistogramVec::new(
            HistogramOpts::new(STORE_CALL_DURATION_SECONDS, STORE_CALL_DURATION_HELP)
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["store", "operation"],
        )
        .expect("metric definition is valid");
        let reconciler_actions = IntCounterVec::new(
            Opts::new(FILE_RECONCILER_ACTIONS_TOTAL, FILE_RECONCILER_ACTIONS_HELP),
            &["action"],
        )
        .expect("metric definition is valid");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition is valid")
        };
        let rate_limit_decisions = counter(
            RATE_LIMIT_DECISIONS_TOTAL,
            RATE_LIMIT_DECISIONS_HELP,
            &["policy", "outcome"],
        );
        let session_events = counter(SESSION_EVENTS_TOTAL, SESSION_EVENTS_HELP, &["event"]);
        let cache_operations = counter(
            CACHE_OPERATIONS_TOTAL,
            CACHE_OPERATIONS_HELP,
            &["operation", "outcome"],
        );
        let analytics_events = counter(ANALYTICS_EVENTS_TOTAL, ANALYTICS_EVENTS_HELP, &["outcome"]);
        let analytics_spool_events =
            IntGauge::new(ANALYTICS_SPOOL_EVENTS, ANALYTICS_SPOOL_EVENTS_HELP)
                .expect("metric definition is valid");
        let analytics_spool_bytes =
            IntGauge::new(ANALYTICS_SPOOL_BYTES, ANALYTICS_SPOOL_BYTES_HELP)
                .expect("metric definition is valid");
        let analytics_oldest_pending_seconds = Gauge::new(
            ANALYTICS_OLDEST_PENDING_SECONDS,
            ANALYTICS_OLDEST_PENDING_HELP,
        )
        .expect("metric definition is valid");
        let dashboard_requests = counter(
            DASHBOARD_REQUESTS_TOTAL,
            DASHBOARD_REQUESTS_HELP,
            &["report", "cache"],
        );
        let dashboard_queries =
            counter(DASHBOARD_QUERIES_TOTAL, DASHBOARD_QUERIES_HELP, &["report"]);
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("metric definition is valid")
        };
        let backend_up = gauge(BACKEND_UP, BACKEND_UP_HELP, &["store"]);
        let file_bytes = counter(FILE_BYTES_TOTAL, FILE_BYTES_HELP, &["direction"]);
        let file_pins = gauge(FILE_PINS, FILE_PINS_HELP, &["state"]);
        let requests_shed = counter(REQUESTS_SHED_TOTAL, REQUESTS_SHED_HELP, &["reason"]);
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(store_calls.clone()),
            Box::new(store_duration.clone()),
            Box::new(reconciler_actions.clone()),
            Box::new(rate_limit_decisions.clone()),
            Box::new(session_events.clone()),
            Box::new(cache_operations.clone()),
            Box::new(analytics_events.clone()),
            Box::new(analytics_spool_events.clone()),
            Box::new(analytics_spool_bytes.clone()),
            Box::new(analytics_oldest_pending_seconds.clone()),
            Box::new(dashboard_requests.clone()),
            Box::new(dashboard_queries.clone()),
            Box::new(backend_up.clone()),
            Box::new(file_bytes.clone()),
            Box::new(file_pins.clone()),
            Box::new(requests_shed.clone()),
        ] {
            registry
                .register(collector)
                .expect("each metric is registered once in a fresh registry");
        }
        Arc::new(Self {
            registry,
            http_requests,
            http_duration,
            store_calls,
            store_duration,
            reconciler_actions,
            rate_limit_decisions,
            session_events,
            cache_operations,
            analytics_events,
            analytics_spool_events,
            analytics_spool_bytes,
            analytics_oldest_pending_seconds,
            dashboard_requests,
            dashboard_queries,
            backend_up,
            file_bytes,
            file_pins,
            requests_shed,
        })
    }

    /// The registry in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buffer).expect("the text encoder writes UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::Method;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for token in ["FOO", "get", "PROPFIND", "X1"] {
            let method = Method::from_bytes(token.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "OTHER", "{token}");
        }
    }
}
