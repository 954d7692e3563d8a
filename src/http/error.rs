//! The one error type at the HTTP edge, and its mapping to status and body.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use super::quota;
use crate::admission::Overloaded;
use crate::analytics::{IngestError, Rejection, SpoolError};
use crate::auth::{AuthError, Scope};
use crate::cache::CacheError;
use crate::challenges::ChallengeError;
use crate::files::FilesError;
use crate::rate_limit::{Decision, RateLimitError};
use crate::sessions::SessionError;
use crate::stores::{StoreError, StoreKind};

/// Seconds a client is asked to wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; `code` says which way.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 400: events of an ingestion request that are invalid, each by index.
    #[error("{} of the events are invalid; nothing was accepted", .0.len())]
    InvalidEvents(Vec<Rejection>),
    /// 401: no valid API key.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: the key lacks a scope.
    #[error("this API key lacks the {0} scope")]
    Forbidden(Scope),
    /// 404: nothing of that name for this tenant.
    #[error("{0}")]
    NotFound(String),
    /// 409: the resource exists already.
    #[error("{0}")]
    Conflict(String),
    /// 405: the path exists, not with this method; `allow` lists the ones it has.
    #[error("method {method} is not allowed on this path")]
    MethodNotAllowed {
        method: String,
        allow: Option<&'static str>,
    },
    /// 413: a body or value over its configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 408: the request took longer than the server keeps its state.
    #[error("{message}")]
    RequestTimeout { code: &'static str, message: String },
    /// 412: an `If-Match` precondition does not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 415: content of a type not accepted.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 428: the request must carry a precondition.
    #[error("{0}")]
    PreconditionRequired(String),
    /// 429: a rate limit denied the request.
    #[error("rate limit exceeded")]
    QuotaExceeded(Box<Decision>),
    /// 403: a signed link that is tampered with, expired, used up, or used
    /// with another method or path.
    #[error("{0}")]
    LinkRefused(String),
    /// 403: a browser page from an origin its tenant does not allow.
    #[error("{0}")]
    OriginNotAllowed(String),
    /// 409: a resumable upload's part starts elsewhere than its end.
    #[error("{0}")]
    OffsetMismatch(String),
    /// 412: a tus request without `Tus-Resumable: 1.0.0`.
    #[error("{0}")]
    UnsupportedTusVersion(String),
    /// 423: another request holds the resource.
    #[error("{0}")]
    Locked(String),
    /// 429: the tenant has as many resumable uploads open as it may.
    #[error("{0}")]
    TooManyUploads(String),
    /// 460 (tus checksum extension): a part's bytes do not match its checksum.
    #[error("{0}")]
    ChecksumMismatch(String),
    /// 406: a representation this path does not give.
    #[error("{0}")]
    NotAcceptable(String),
    /// 501: a feature this gateway is not configured for.
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    InsufficientFunds(String),
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 503: a backend is down or did not answer in time.
    #[error("{0} is unavailable; retry later")]
    Unavailable(StoreKind),
    /// 503: the disk of the event spool is full.
    #[error("the gateway's event spool has no disk space left; retry later")]
    SpoolDiskFull,
    /// 503: a gateway-wide bound on memory or concurrency is reached.
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// 500: the cause is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<StoreKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<&'a [Rejection]>,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The stable, machine-readable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::InvalidEvents(_) => "invalid_events",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::RequestTimeout { code, .. } => code,
            ApiError::PreconditionFailed(_) => "precondition_failed",
            ApiError::UnsupportedMediaType(_) => "unsupported_content_type",
            ApiError::PreconditionRequired(_) => "precondition_required",
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::LinkRefused(_) => "link_refused",
            ApiError::OriginNotAllowed(_) => "origin_not_allowed",
            ApiError::OffsetMismatch(_) => "offset_mismatch",
            ApiError::UnsupportedTusVersion(_) => "unsupported_tus_version",
            ApiError::Locked(_) => "locked",
            ApiError::TooManyUploads(_) => "too_many_uploads",
            ApiError::ChecksumMismatch(_) => "checksum_mismatch",
            ApiError::NotImplemented(_) => "not_implemented",
            ApiError::InsufficientFunds(_) => "insufficient_funds",
            ApiError::Unprocessable { code, .. } => code,
            ApiError::NotAcceptable(_) => "not_acceptable",
            ApiError::Unavailable(_) => "backend_unavailable",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::SpoolDiskFull => "spool_disk_full",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::InvalidEvents(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            ApiError::QuotaExceeded(_) | ApiError::TooManyUploads(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::LinkRefused(_) | ApiError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::OffsetMismatch(_) | ApiError::InsufficientFunds(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedTusVersion(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Locked(_) => StatusCode::LOCKED,
            ApiError::ChecksumMismatch(_) => {
                StatusCode::from_u16(460).expect("460 is a valid status code")
            }
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Unavailable(_) | ApiError::Overloaded(_) | ApiError::SpoolDiskFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(%cause, "request failed"),
            ApiError::QuotaExceeded(decision) => return quota::exceeded(decision),
            _ => {}
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                backend: match self {
                    ApiError::Unavailable(store) => Some(*store),
                    _ => None,
                },
                events: match self {
                    ApiError::InvalidEvents(rejections) => Some(rejections),
                    _ => None,
                },
            },
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unavailable(_) | ApiError::Overloaded(_) | ApiError::SpoolDiskFull => {
                response.insert_header((
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                ));
            }
            ApiError::Unauthenticated(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ApiError::UnsupportedTusVersion(_) => {
                response.insert_header(("Tus-Version", HeaderValue::from_static("1.0.0")));
            }
            ApiError::MethodNotAllowed {
                allow: Some(allow), ..
            } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            _ => {}
        }
        response.json(body)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable { store, .. } | StoreError::TimedOut { store, .. } => {
                ApiError::Unavailable(store)
            }
            invalid @ StoreError::InvalidValue { .. } => {
                ApiError::bad_request("invalid_value", invalid.to_string())
            }
            failed => ApiError::Internal(failed.to_string()),
        }
    }
}

impl From<ChallengeError> for ApiError {
    fn from(error: ChallengeError) -> Self {
        match error {
            ChallengeError::Invalid(message) => ApiError::bad_request("invalid_field", message),
            ChallengeError::NotFound(message) => ApiError::NotFound(message),
            ChallengeError::Conflict(message) => ApiError::Conflict(message),
            ChallengeError::Files(files) => files.into(),
            ChallengeError::Store(store) => store.into(),
        }
    }
}

impl From<FilesError> for ApiError {
    fn from(error: FilesError) -> Self {
        match error {
            FilesError::Store(store) => store.into(),
            FilesError::TooLarge { .. } | FilesError::OverQuota { .. } => {
                ApiError::PayloadTooLarge(error.to_string())
            }
            FilesError::UnsupportedType(_) => ApiError::UnsupportedMediaType(error.to_string()),
            FilesError::Invalid { code, message } => ApiError::BadRequest { code, message },
            FilesError::NotFound(_) => ApiError::NotFound(error.to_string()),
            FilesError::InUse(message) => ApiError::Conflict(message),
            FilesError::Overloaded(overloaded) => overloaded.into(),
            FilesError::Expired => ApiError::RequestTimeout {
                code: "upload_expired",
                message: error.to_string(),
            },
            FilesError::NotSupported(message) => ApiError::NotImplemented(message),
            FilesError::TooManyUploads { .. } => ApiError::TooManyUploads(error.to_string()),
            FilesError::Locked(message) => ApiError::Locked(message),
            FilesError::LinkUsed => {
                ApiError::LinkRefused("the link was used already; it opens one upload".into())
            }
            FilesError::OffsetMismatch { .. } => ApiError::OffsetMismatch(error.to_string()),
            FilesError::ChecksumMismatch => ApiError::ChecksumMismatch(error.to_string()),
            FilesError::InsufficientFunds { .. } => ApiError::InsufficientFunds(error.to_string()),
            FilesError::Unprocessable { code, message } => {
                ApiError::Unprocessable { code, message }
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Invalid(message) => ApiError::bad_request("invalid_events", message),
            IngestError::Rejected(rejections) => ApiError::InvalidEvents(rejections),
            IngestError::TooLarge(message) => ApiError::PayloadTooLarge(message),
            // The spool fills only while ClickHouse does not take its events.
            IngestError::Spool(SpoolError::Full { .. }) => {
                tracing::warn!(%error, "ingestion refused");
                ApiError::Unavailable(StoreKind::ClickHouse)
            }
            IngestError::Spool(SpoolError::Io(cause)) => ApiError::Internal(cause),
            IngestError::Spool(SpoolError::DiskFull) => {
                tracing::error!("event spool disk full: ingestion refused");
                ApiError::SpoolDiskFull
            }
            IngestError::Overloaded(overloaded) => overloaded.into(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Store(store) => store.into(),
            SessionError::NotFound => ApiError::NotFound(error.to_string()),
            SessionError::Invalid(message) => {
                ApiError::bad_request("invalid_session_request", message)
            }
            SessionError::TooLarge(message) | SessionError::OverBudget(message) => {
                ApiError::PayloadTooLarge(message)
            }
            SessionError::VersionMismatch { .. } => ApiError::PreconditionFailed(error.to_string()),
        }
    }
}

impl From<CacheError> for ApiError {
    fn from(error: CacheError) -> Self {
        match error {
            CacheError::Store(store) => store.into(),
            CacheError::NotFound => ApiError::NotFound(error.to_string()),
            CacheError::Invalid(message) => ApiError::bad_request("invalid_cache_request", message),
            CacheError::TooLarge(message) | CacheError::OverBudget(message) => {
                ApiError::PayloadTooLarge(message)
            }
        }
    }
}

impl From<RateLimitError> for ApiError {
    fn from(error: RateLimitError) -> Self {
        match error {
            RateLimitError::Store(store) => store.into(),
            RateLimitError::UnknownPolicy(_) => {
                ApiError::bad_request("unknown_policy", error.to_string())
            }
            RateLimitError::Invalid(message) => {
                ApiError::bad_request("invalid_rate_limit_request", message)
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::MissingKey | AuthError::InvalidKey => {
                ApiError::Unauthenticated(error.to_string())
            }
            AuthError::MissingScope(scope) => ApiError::Forbidden(scope),
            AuthError::Store(store) => store.into(),
        }
    }
}

/// Extractor failures (JSON, query, path) in the same shape as every other error.
pub mod extractors {
    use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
    use actix_web::{web, HttpRequest};

    use super::ApiError;

    pub fn json_config(limit: usize) -> web::JsonConfig {
        web::JsonConfig::default()
            .limit(limit)
            .error_handler(|error, _req: &HttpRequest| {
                match error {
                    JsonPayloadError::OverflowKnownLength { length, limit } => {
                        ApiError::PayloadTooLarge(format!(
                            "JSON body of {length} bytes is over the limit of {limit} bytes"
                        ))
                    }
                    JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge(format!(
                        "JSON body is over the limit of {limit} bytes"
                    )),
                    JsonPayloadError::ContentType => ApiError::bad_request(
                        "unsupported_content_type",
                        "expected Content-Type: application/json",
                    ),
                    other => ApiError::bad_request("invalid_json", other.to_string()),
                }
                .into()
            })
    }

    pub fn query_config() -> web::QueryConfig {
        web::QueryConfig::default().error_handler(|error: QueryPayloadError, _req| {
            ApiError::bad_request("invalid_query", error.to_string()).into()
        })
    }

    pub fn path_config() -> web::PathConfig {
        web::PathConfig::default().error_handler(|error: PathError, _req| {
            ApiError::bad_request("invalid_path", error.to_string()).into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn unavailable_names_the_backend_and_asks_to_retry() {
        let response = ApiError::Unavailable(StoreKind::Redis).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get("retry-after").unwrap(), "5");
        let body = to_bytes(response.into_body()).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "backend_unavailable");
        assert_eq!(json["error"]["backend"], "redis");
        assert!(json["error"]["message"].as_str().unwrap().contains("redis"));
    }

    #[actix_web::test]
    async fn internal_errors_keep_their_cause_private() {
        let response = ApiError::Internal("password=hunter2".into()).error_response();
        let body = to_bytes(response.into_body()).await.unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("hunter2"));
    }
}
