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
use crate::error_code::ErrorCode;
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
    BadRequest { code: ErrorCode, message: String },
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
    RequestTimeout { code: ErrorCode, message: String },
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
    /// 416: a range that starts past the end of `size` bytes.
    #[error("{message}")]
    RangeNotSatisfiable { size: u64, message: String },
    /// 406: a representation this path does not give.
    #[error("{0}")]
    NotAcceptable(String),
    /// 501: a feature this gateway is not configured for.
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    InsufficientFunds(String),
    #[error("{message}")]
    Unprocessable { code: ErrorCode, message: String },
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
    code: ErrorCode,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<StoreKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<&'a [Rejection]>,
}

impl ApiError {
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The stable, machine-readable code clients match on.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest { code, .. } => *code,
            ApiError::InvalidEvents(_) => ErrorCode::InvalidEvents,
            ApiError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::RequestTimeout { code, .. } => *code,
            ApiError::PreconditionFailed(_) => ErrorCode::PreconditionFailed,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedContentType,
            ApiError::PreconditionRequired(_) => ErrorCode::PreconditionRequired,
            ApiError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            ApiError::LinkRefused(_) => ErrorCode::LinkRefused,
            ApiError::OriginNotAllowed(_) => ErrorCode::OriginNotAllowed,
            ApiError::OffsetMismatch(_) => ErrorCode::OffsetMismatch,
            ApiError::UnsupportedTusVersion(_) => ErrorCode::UnsupportedTusVersion,
            ApiError::Locked(_) => ErrorCode::Locked,
            ApiError::TooManyUploads(_) => ErrorCode::TooManyUploads,
            ApiError::ChecksumMismatch(_) => ErrorCode::ChecksumMismatch,
            ApiError::NotImplemented(_) => ErrorCode::NotImplemented,
            ApiError::InsufficientFunds(_) => ErrorCode::InsufficientFunds,
            ApiError::Unprocessable { code, .. } => *code,
            ApiError::RangeNotSatisfiable { .. } => ErrorCode::RangeNotSatisfiable,
            ApiError::NotAcceptable(_) => ErrorCode::NotAcceptable,
            ApiError::Unavailable(_) => ErrorCode::BackendUnavailable,
            ApiError::Overloaded(_) => ErrorCode::Overloaded,
            ApiError::SpoolDiskFull => ErrorCode::SpoolDiskFull,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).expect("the table holds valid statuses")
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
            ApiError::RangeNotSatisfiable { size, .. } => {
                response.insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
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
                ApiError::bad_request(ErrorCode::InvalidValue, invalid.to_string())
            }
            failed => ApiError::Internal(failed.to_string()),
        }
    }
}

impl From<ChallengeError> for ApiError {
    fn from(error: ChallengeError) -> Self {
        match error {
            ChallengeError::Invalid(message) => {
                ApiError::bad_request(ErrorCode::InvalidField, message)
            }
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
                code: ErrorCode::UploadExpired,
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
            IngestError::Invalid(message) => {
                ApiError::bad_request(ErrorCode::InvalidEvents, message)
            }
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
                ApiError::bad_request(ErrorCode::InvalidSessionRequest, message)
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
            CacheError::Invalid(message) => {
                ApiError::bad_request(ErrorCode::InvalidCacheRequest, message)
            }
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
                ApiError::bad_request(ErrorCode::UnknownPolicy, error.to_string())
            }
            RateLimitError::Invalid(message) => {
                ApiError::bad_request(ErrorCode::InvalidRateLimitRequest, message)
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

    use super::{ApiError, ErrorCode};

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
                        ErrorCode::UnsupportedContentType,
                        "expected Content-Type: application/json",
                    ),
                    other => ApiError::bad_request(ErrorCode::InvalidJson, other.to_string()),
                }
                .into()
            })
    }

    pub fn query_config() -> web::QueryConfig {
        web::QueryConfig::default().error_handler(|error: QueryPayloadError, _req| {
            ApiError::bad_request(ErrorCode::InvalidQuery, error.to_string()).into()
        })
    }

    pub fn path_config() -> web::PathConfig {
        web::PathConfig::default().error_handler(|error: PathError, _req| {
            ApiError::bad_request(ErrorCode::InvalidPath, error.to_string()).into()
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
