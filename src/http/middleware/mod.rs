//! Request middleware, outermost first: request id, HTTP metrics,
//! authentication, the per-key rate limit.

pub mod authenticate;
pub mod http_metrics;
pub mod rate_limit;
pub mod request_id;
