//! Gives every request an id, runs it inside a tracing span carrying that id,
//! echoes it in `X-Request-Id` and logs one line when the response is ready.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::http::route_template;
use crate::metrics::method_label;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_acceptable_id(value))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // The raw path is not logged: session ids and cache keys travel in it
    // and are as good as credentials. The route template and a short digest
    // of the path tell requests apart without them.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = method_label(req.method()),
        path_digest = %path_digest(req.path()),
        route = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let route = route_template(response.request());
    span.record("route", &*route);
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request answered"
        )
    });
    Ok(response)
}

/// The first 12 hex digits of the path's SHA-256: enough to follow one
/// resource through the logs, useless for guessing the path.
pub fn path_digest(path: &str) -> String {
    hex::encode(&Sha256::digest(path.as_bytes())[..6])
}

/// A caller's id is kept when it is short and plain, so it can be joined
/// across services without letting a caller inject into logs.
fn is_acceptable_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plain_ids_only() {
        assert!(is_acceptable_id("0b7e-4f1a_trace:1.2"));
        assert!(!is_acceptable_id(""));
        assert!(!is_acceptable_id("a b"));
        assert!(!is_acceptable_id("x\ny"));
        assert!(!is_acceptable_id(&"a".repeat(129)));
    }

    #[test]
    fn path_digest_hides_the_path() {
        let digest = path_digest("/session/sess_secret");
        assert_eq!(digest.len(), 12);
        assert!(!digest.contains("secret"));
        assert_ne!(digest, path_digest("/session/sess_other"));
    }
}
