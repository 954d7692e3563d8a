//! Every error code a client can receive, with its HTTP status and meaning:
//! the one table the error answers, the capabilities' errors and the OpenAPI
//! document all read.

use serde::Serialize;

macro_rules! error_codes {
    ($($variant:ident => $code:literal, $status:literal, $description:literal;)*) => {
        /// A stable, machine-readable error code; clients match on its text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status every answer with this code carries.
            pub const fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                }
            }

            pub const fn description(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $description,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidJson => "invalid_json", 400, "The JSON body does not parse or does not fit the operation's schema.";
    InvalidQuery => "invalid_query", 400, "A query parameter is missing, unknown or out of range.";
    InvalidPath => "invalid_path", 400, "A path segment, or a file's path inside a directory upload, is not valid.";
    InvalidValue => "invalid_value", 400, "A value does not fit the store it is kept in (a length or range the store refuses).";
    InvalidField => "invalid_field", 400, "A field of a challenge, a submission or a form is invalid.";
    InvalidEvents => "invalid_events", 400, "Some events of an ingestion request are invalid; `events` lists each by index. Nothing was accepted.";
    InvalidSessionRequest => "invalid_session_request", 400, "A session request is malformed or over a bound.";
    InvalidCacheRequest => "invalid_cache_request", 400, "A cache key, value or TTL is malformed or over a bound.";
    InvalidRateLimitRequest => "invalid_rate_limit_request", 400, "A rate-limit check is malformed or over a bound.";
    UnknownPolicy => "unknown_policy", 400, "The rate-limit policy named is not configured.";
    InvalidScopes => "invalid_scopes", 400, "An API key's scopes are empty or name an unknown scope.";
    InvalidName => "invalid_name", 400, "A file name is empty, too long or holds control characters.";
    MissingName => "missing_name", 400, "An upload needs a file name and has none.";
    InvalidOwner => "invalid_owner", 400, "An owner is empty, over 256 bytes or holds control characters.";
    InvalidExpiry => "invalid_expiry", 400, "A link's expiry is not a number of seconds within the allowed bounds.";
    InvalidLink => "invalid_link", 400, "A signed upload link carries an expiry that is not a valid time.";
    InvalidCursor => "invalid_cursor", 400, "The cursor is not one this API gave out.";
    InvalidLimit => "invalid_limit", 400, "A page size is outside 1 to its configured maximum.";
    InvalidRange => "invalid_range", 400, "The Range header is malformed or asks for more than one range.";
    InvalidIfMatch => "invalid_if_match", 400, "The If-Match header is not a valid entity tag.";
    InvalidMultipart => "invalid_multipart", 400, "The multipart body is malformed or lacks a part it needs.";
    InvalidFormat => "invalid_format", 400, "A verifiable (CAR) download's format parameters are invalid.";
    InvalidReplication => "invalid_replication", 400, "The replication asked for is outside the allowed bounds.";
    InvalidWait => "invalid_wait", 400, "wait names something other than pinned.";
    InvalidContentTypes => "invalid_content_types", 400, "A link's content types are too many or not media types.";
    InvalidMaxBytes => "invalid_max_bytes", 400, "A link's max_bytes is over files.max_upload_bytes.";
    FieldTooLarge => "field_too_large", 400, "A form field is over its size bound.";
    TooManyFiles => "too_many_files", 400, "A directory upload holds more files than its bound.";
    NotAFile => "not_a_file", 400, "The content is a UnixFS directory, not a file: fetch it as a CAR or by path.";
    IncompleteBody => "incomplete_body", 400, "The body ended before its announced length, or the client went away.";
    InvalidMetadata => "invalid_metadata", 400, "Upload-Metadata is malformed.";
    InvalidTusHeader => "invalid_tus_header", 400, "A tus header is missing or malformed.";
    InvalidUploadLength => "invalid_upload_length", 400, "Upload-Length is missing, malformed or over the bound.";
    InvalidChecksum => "invalid_checksum", 400, "Upload-Checksum names an unknown algorithm or is not base64.";
    InvalidPinRequest => "invalid_pin_request", 400, "A Pinning Service API request is malformed.";
    Unauthenticated => "unauthenticated", 401, "No valid API key, session or signed link.";
    Forbidden => "forbidden", 403, "The API key lacks the scope this operation needs.";
    LinkRefused => "link_refused", 403, "A signed link is tampered with, expired, used up, or used with another method or path.";
    OriginNotAllowed => "origin_not_allowed", 403, "A browser page from an origin its tenant does not allow.";
    NotFound => "not_found", 404, "Nothing of that name for this tenant.";
    MethodNotAllowed => "method_not_allowed", 405, "The path exists, not with this method; Allow lists the ones it has.";
    NotAcceptable => "not_acceptable", 406, "The representation asked for in Accept is not one this path gives.";
    UploadExpired => "upload_expired", 408, "The upload took longer than the gateway keeps its state.";
    Conflict => "conflict", 409, "The resource exists already, or changed since it was read.";
    OffsetMismatch => "offset_mismatch", 409, "A resumable upload's part starts elsewhere than the upload's end.";
    InsufficientFunds => "insufficient_funds", 409, "The tenant's storage quota has no room for this content.";
    PreconditionFailed => "precondition_failed", 412, "An If-Match precondition does not hold.";
    UnsupportedTusVersion => "unsupported_tus_version", 412, "A tus request without Tus-Resumable: 1.0.0.";
    PayloadTooLarge => "payload_too_large", 413, "A body or value is over its configured limit.";
    UnsupportedContentType => "unsupported_content_type", 415, "The body's Content-Type is not one this operation takes.";
    RangeNotSatisfiable => "range_not_satisfiable", 416, "The Range starts past the end of the content.";
    InvalidCar => "invalid_car", 422, "The CAR file is malformed or its blocks do not match their CIDs.";
    IncompleteCar => "incomplete_car", 422, "The CAR file lacks blocks its root needs.";
    Locked => "locked", 423, "Another request holds the resource.";
    PreconditionRequired => "precondition_required", 428, "The operation needs an If-Match header.";
    QuotaExceeded => "quota_exceeded", 429, "A rate limit denied the request; the RateLimit headers say when to retry.";
    TooManyUploads => "too_many_uploads", 429, "The tenant has as many resumable uploads open as it may.";
    ChecksumMismatch => "checksum_mismatch", 460, "A part's bytes do not match its Upload-Checksum (tus checksum extension).";
    Internal => "internal", 500, "An unexpected error; its cause is logged, never sent.";
    NotImplemented => "not_implemented", 501, "A feature this gateway is not configured for.";
    BackendUnavailable => "backend_unavailable", 503, "A store is down or did not answer in time; `backend` names it.";
    Overloaded => "overloaded", 503, "A gateway-wide bound on memory or concurrency is reached.";
    SpoolDiskFull => "spool_disk_full", 503, "The disk of the event spool is full.";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_carry_error_statuses() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{text}"
            );
            assert!((400..600).contains(&code.status()), "{text}");
            assert!(!code.description().is_empty(), "{text}");
        }
    }

    #[test]
    fn a_code_serializes_as_its_text() {
        assert_eq!(
            serde_json::to_string(&ErrorCode::RangeNotSatisfiable).unwrap(),
            "\"range_not_satisfiable\""
        );
    }
}
