//! Failures on the Pinning Service routes in that specification's shape,
//! `{"error": {"reason", "details"}}`, whichever layer refused the request
//! (authentication, rate limit, routing, the handler). Headers such as
//! Retry-After and WWW-Authenticate are kept.

use crate::error_code::ErrorCode;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};
use serde_json::{json, Value};

/// Error bodies are small; anything larger is not one of ours.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub async fn psa_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let path = req.path();
    let pinning_service = path == "/psa" || path.starts_with("/psa/");
    let response = next.call(req).await?;
    if !pinning_service || response.status().as_u16() < 400 {
        return Ok(response.map_into_left_body());
    }
    let (req, response) = response.into_parts();
    let status = response.status();
    let headers = response.headers().clone();
    let body = actix_web::body::to_bytes_limited(response.into_body(), MAX_ERROR_BODY)
        .await
        .ok()
        .and_then(Result::ok);
    let parsed: Value = body
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    let code = parsed["error"]["code"].as_str().unwrap_or("");
    let details = parsed["error"]["message"]
        .as_str()
        .or_else(|| parsed["detail"].as_str())
        .or_else(|| parsed["title"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
    let mut rebuilt = HttpResponse::build(status);
    for (name, value) in headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.append_header((name.clone(), value.clone()));
        }
    }
    let body = json!({"error": {"reason": reason(status, code), "details": details}});
    Ok(ServiceResponse::new(req, rebuilt.json(body)).map_into_right_body())
}

/// The specification's reasons where it names one, else the gateway's code
/// in capitals.
fn reason(status: StatusCode, code: &str) -> String {
    match (status.as_u16(), code) {
        (_, code) if code == ErrorCode::InsufficientFunds.as_str() => "INSUFFICIENT_FUNDS".into(),
        (400, _) => "BAD_REQUEST".into(),
        (401, _) => "UNAUTHORIZED".into(),
        (404, _) => "NOT_FOUND".into(),
        (500, _) => "INTERNAL_SERVER_ERROR".into(),
        (_, "") => status
            .canonical_reason()
            .unwrap_or("ERROR")
            .to_ascii_uppercase()
            .replace(' ', "_"),
        (_, code) => code.to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_the_specification() {
        assert_eq!(
            reason(StatusCode::CONFLICT, "insufficient_funds"),
            "INSUFFICIENT_FUNDS"
        );
        assert_eq!(
            reason(StatusCode::BAD_REQUEST, "invalid_json"),
            "BAD_REQUEST"
        );
        assert_eq!(
            reason(StatusCode::UNAUTHORIZED, "unauthenticated"),
            "UNAUTHORIZED"
        );
        assert_eq!(reason(StatusCode::NOT_FOUND, "not_found"), "NOT_FOUND");
        assert_eq!(
            reason(StatusCode::SERVICE_UNAVAILABLE, "backend_unavailable"),
            "BACKEND_UNAVAILABLE"
        );
        assert_eq!(
            reason(StatusCode::TOO_MANY_REQUESTS, ""),
            "TOO_MANY_REQUESTS"
        );
    }
}
