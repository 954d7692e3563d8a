//! Request middleware, outermost first: request id, HTTP metrics, authentication.

pub mod authenticate;
pub mod http_metrics;
pub mod request_id;
