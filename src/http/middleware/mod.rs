//! Request middleware, outermost first: request id, HTTP metrics,
//! authentication, the per-key rate limit; and the Pinning Service's
//! error shape on its routes.

pub mod authenticate;
pub mod http_metrics;
pub mod psa_errors;
pub mod rate_limit;
pub mod request_id;
