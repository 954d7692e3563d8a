//! The IPFS Pinning Service API v1.0.0 at `/psa`, one pin set per tenant:
//! what Kubo's `ipfs pin remote` speaks. Every file of the tenant is a pin
//! request here, its id the request id.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{Principal, Scope};
use crate::error_code::ErrorCode;
use crate::files::pins::{NameMatch, PinFilter, PinProgress, PinSpec, TrackedPin};
use crate::files::ContentId;
use crate::http::error::ApiError;
use crate::http::resource;
use crate::http::AppState;

/// Most CIDs one listing may name, as the specification bounds them.
const MAX_LISTED_CIDS: usize = 10;
/// Pins one listing may answer, at most and when none is asked.
const MAX_LIMIT: i64 = 1000;
const DEFAULT_LIMIT: i64 = 10;
/// Most delegates an answer may carry.
const MAX_DELEGATES: usize = 20;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/psa/pins")
            .route(web::get().to(list))
            .route(web::post().to(add)),
    )
    .service(
        resource("/psa/pins/{requestid}")
            .route(web::get().to(get))
            .route(web::post().to(replace))
            .route(web::delete().to(remove)),
    );
}

/// Whether a request reads one pin request's status: Kubo polls it every
/// half second while it waits, so the gateway's rate limit leaves it alone.
pub fn is_status_poll(req: &actix_web::dev::ServiceRequest) -> bool {
    req.method() == actix_web::http::Method::GET
        && req
            .path()
            .strip_prefix("/psa/pins/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// A pin as a client asks for it.
#[derive(Deserialize, utoipa::ToSchema)]
struct PinBody {
    /// The content to pin.
    #[schema(max_length = 256)]
    cid: String,
    /// Up to files.max_name_chars characters.
    #[schema(max_length = 255)]
    name: Option<String>,
    /// Multiaddrs of peers that hold the content (up to pinning.max_origins).
    #[schema(max_items = 20)]
    origins: Option<Vec<String>>,
    /// Text values only (up to files.max_metadata_bytes of JSON).
    #[schema(value_type = Option<Object>)]
    meta: Option<Map<String, Value>>,
}

/// A pin as the service answers it.
#[derive(Serialize, utoipa::ToSchema)]
struct PinAnswer {
    cid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    origins: Vec<String>,
    #[schema(value_type = Object)]
    meta: Map<String, Value>,
}

/// A pin request and where it stands.
#[derive(Serialize, utoipa::ToSchema)]
struct PinStatusAnswer {
    /// This service's id of the request (a UUID).
    requestid: String,
    /// queued, pinning, pinned or failed.
    status: &'static str,
    #[schema(format = DateTime)]
    created: String,
    pin: PinAnswer,
    /// Multiaddrs of the IPFS nodes that will hold the content.
    delegates: Vec<String>,
    /// With a failed pin, `status_details` says why.
    #[schema(value_type = Object)]
    info: Map<String, Value>,
}

/// A page of pin requests and how many the filters match in all.
#[derive(Serialize, utoipa::ToSchema)]
struct PinResults {
    count: i64,
    results: Vec<PinStatusAnswer>,
}

/// Every failure on these routes: `{"error": {"reason", "details"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PinFailure {
    error: PinFailureDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
struct PinFailureDetail {
    /// BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, INSUFFICIENT_FUNDS, ...
    reason: String,
    details: Option<String>,
}

fn answer(pin: TrackedPin) -> PinStatusAnswer {
    let file = pin.file;
    let meta = match file.metadata {
        Value::Object(map) => map
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(text) => (key, Value::String(text)),
                other => (key, Value::String(other.to_string())),
            })
            .collect(),
        _ => Map::new(),
    };
    let mut info = Map::new();
    if let Some(failure) = pin.failure {
        info.insert("status_details".into(), Value::String(failure));
    }
    PinStatusAnswer {
        requestid: file.id.to_string(),
        status: pin.progress.as_str(),
        created: file.created_at.format(&Rfc3339).unwrap_or_default(),
        pin: PinAnswer {
            cid: file.cid.to_string(),
            name: (!file.name.is_empty()).then_some(file.name),
            origins: file.origins,
            meta,
        },
        delegates: pin.delegates.into_iter().take(MAX_DELEGATES).collect(),
        info,
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidPinRequest, message)
}

/// A request id of the path; text that is no UUID names no request (404).
fn request_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no pin request {raw}")))
}

/// The pin a body asks for, within every bound.
fn pin_spec(state: &AppState, body: PinBody) -> Result<PinSpec, ApiError> {
    let cid =
        ContentId::parse(&body.cid).map_err(|e| bad_request(format!("cid {:?}: {e}", body.cid)))?;
    let name = body.name.unwrap_or_default();
    let max_name = state.settings.files.max_name_chars;
    if name.chars().count() > max_name {
        return Err(bad_request(format!(
            "name is longer than {max_name} characters"
        )));
    }
    if name.contains('\0') {
        return Err(bad_request("name holds a NUL character"));
    }
    let pinning = state.files.pinning();
    let origins = body.origins.unwrap_or_default();
    if origins.len() > pinning.max_origins {
        return Err(bad_request(format!(
            "{} origins; at most {} are accepted",
            origins.len(),
            pinning.max_origins
        )));
    }
    for origin in &origins {
        check_origin(origin, pinning.max_origin_bytes)?;
    }
    let meta = body.meta.unwrap_or_default();
    check_meta(&meta, state.settings.files.max_metadata_bytes)?;
    Ok(PinSpec {
        cid,
        name,
        origins,
        meta,
    })
}

/// An origin must be a multiaddr; the Cluster gets them comma-separated.
fn check_origin(origin: &str, max_bytes: usize) -> Result<(), ApiError> {
    if origin.len() > max_bytes {
        return Err(bad_request(format!(
            "an origin is longer than {max_bytes} bytes"
        )));
    }
    if origin.contains(',') {
        return Err(bad_request(format!("origin {origin:?} holds a comma")));
    }
    origin
        .parse::<multiaddr::Multiaddr>()
        .map(drop)
        .map_err(|e| bad_request(format!("origin {origin:?} is not a multiaddr: {e}")))
}

/// `meta` maps names to text, within the metadata bound.
fn check_meta(meta: &Map<String, Value>, max_bytes: usize) -> Result<(), ApiError> {
    if let Some((key, _)) = meta.iter().find(|(_, value)| !value.is_string()) {
        return Err(bad_request(format!("meta {key:?} is not a string")));
    }
    let text = serde_json::to_string(meta).unwrap_or_default();
    if text.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "meta is over {max_bytes} bytes of JSON"
        )));
    }
    if text.contains("\\u0000") {
        return Err(bad_request("meta holds a NUL character"));
    }
    Ok(())
}

/// A timestamp at any fractional precision, rounded to the microseconds
/// the store keeps: up for `before`, down for `after`, so that comparing
/// against it gives what comparing against the exact instant would.
fn instant(raw: &str, round_up: bool) -> Result<OffsetDateTime, ApiError> {
    let invalid = || bad_request(format!("{raw:?} is not an RFC 3339 date-time"));
    // `time` reads at most nine fractional digits; more change nothing
    // once rounded to microseconds, except whether the value was exact.
    let (text, finer) = match raw.find('.') {
        Some(dot) => {
            let digits = raw[dot + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(invalid)?;
            let fraction = &raw[dot + 1..dot + 1 + digits];
            if digits > 9 {
                let kept = format!("{}{}", &raw[..dot + 10], &raw[dot + 1 + digits..]);
                (kept, fraction[9..].bytes().any(|b| b != b'0'))
            } else {
                (raw.to_owned(), false)
            }
        }
        None => (raw.to_owned(), false),
    };
    let at = OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| invalid())?;
    let micros = at.unix_timestamp_nanos().div_euclid(1000);
    let exact = at.unix_timestamp_nanos().rem_euclid(1000) == 0 && !finer;
    let micros = if round_up && !exact {
        micros + 1
    } else {
        micros
    };
    OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).map_err(|_| invalid())
}

/// What a listing's query asks for.
struct Listing {
    cids: Vec<String>,
    name: Option<(String, NameMatch)>,
    statuses: Vec<&'static str>,
    before: Option<OffsetDateTime>,
    after: Option<OffsetDateTime>,
    meta: Option<Value>,
    limit: i64,
}

fn listing(query: &str, max_meta_bytes: usize) -> Result<Listing, ApiError> {
    let mut cids = Vec::new();
    let mut name = None;
    let mut matching = NameMatch::Exact;
    // The specification (v1.0.0) gives `status` no default: without
    // filters a listing is of the newest pins, whatever their status.
    // Kubo's CLI asks for `pinned` itself unless told otherwise.
    let mut statuses: Vec<&'static str> = PinProgress::ALL.map(PinProgress::as_str).to_vec();
    let (mut before, mut after, mut meta) = (None, None, None);
    let mut limit = DEFAULT_LIMIT;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "cid" => {
                cids = value.split(',').map(str::to_owned).collect();
                if cids.len() > MAX_LISTED_CIDS {
                    return Err(bad_request(format!(
                        "{} CIDs; at most {MAX_LISTED_CIDS} per listing",
                        cids.len()
                    )));
                }
                // Kept as stored: CIDv1 in base32, whatever form was asked.
                cids = cids
                    .iter()
                    .map(|cid| {
                        ContentId::parse(cid)
                            .map(|cid| cid.to_string())
                            .map_err(|e| bad_request(format!("cid {cid:?}: {e}")))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "name" => {
                if value.chars().count() > 255 {
                    return Err(bad_request("name is longer than 255 characters"));
                }
                name = Some(value.into_owned());
            }
            "match" => {
                matching = match value.as_ref() {
                    "exact" => NameMatch::Exact,
                    "iexact" => NameMatch::CaseInsensitive,
                    "partial" => NameMatch::Partial,
                    "ipartial" => NameMatch::CaseInsensitivePartial,
                    other => {
                        return Err(bad_request(format!(
                            "match {other:?}: exact, iexact, partial or ipartial"
                        )))
                    }
                }
            }
            "status" => {
                statuses = value
                    .split(',')
                    .map(|word| {
                        PinProgress::parse(word)
                            .map(PinProgress::as_str)
                            .ok_or_else(|| {
                                bad_request(format!(
                                    "status {word:?}: queued, pinning, pinned or failed"
                                ))
                            })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "before" => before = Some(instant(&value, true)?),
            "after" => after = Some(instant(&value, false)?),
            "limit" => {
                limit = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad_request(format!("limit {value:?}: a whole number 1..{MAX_LIMIT}"))
                    })?;
            }
            "meta" => {
                if value.len() > max_meta_bytes {
                    return Err(bad_request(format!("meta is over {max_meta_bytes} bytes")));
                }
                let parsed: Map<String, Value> = serde_json::from_str(&value)
                    .map_err(|e| bad_request(format!("meta is not a JSON object: {e}")))?;
                check_meta(&parsed, max_meta_bytes)?;
                meta = Some(Value::Object(parsed));
            }
            _ => {}
        }
    }
    Ok(Listing {
        cids,
        name: name.map(|name| (name, matching)),
        statuses,
        before,
        after,
        meta,
        limit,
    })
}

#[utoipa::path(get, path = "/psa/pins", tag = "pinning service", summary = "The tenant's pin requests, newest first, with their total count (Pinning Service API)",
    params(
        ("cid" = Option<Vec<String>>, Query, style = Form, explode = false, description = "Up to 10 CIDs, comma-separated"),
        ("name" = Option<String>, Query, max_length = 255, description = "Name to match"),
        ("match" = Option<String>, Query, description = "exact (default), iexact, partial or ipartial"),
        ("status" = Option<Vec<String>>, Query, style = Form, explode = false, description = "queued, pinning, pinned, failed, comma-separated (default: all)"),
        ("before" = Option<String>, Query, format = DateTime, description = "Made before this instant"),
        ("after" = Option<String>, Query, format = DateTime, description = "Made after this instant"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Results at most (default 10)"),
        ("meta" = Option<String>, Query, description = "A JSON object of text values the pin's meta must contain"),
    ),
    responses((status = 200, description = "Matching pin requests", body = PinResults)))]
async fn list(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesRead)?;
    let query = listing(req.query_string(), state.settings.files.max_metadata_bytes)?;
    let name = query.name.as_ref().map(|(name, m)| (name.as_str(), *m));
    let filter = PinFilter {
        cids: &query.cids,
        name,
        statuses: &query.statuses,
        before: query.before,
        after: query.after,
        meta: query.meta.as_ref(),
        fail_after: std::time::Duration::ZERO,
        limit: query.limit,
    };
    let (count, pins) = state.files.pin_requests(&principal.tenant, filter).await?;
    Ok(HttpResponse::Ok().json(PinResults {
        count,
        results: pins.into_iter().map(answer).collect(),
    }))
}

#[utoipa::path(post, path = "/psa/pins", tag = "pinning service", summary = "Pin a CID under a new request id; the Cluster fetches it, from its origins first",
    request_body = PinBody,
    responses((status = 202, description = "Accepted", body = PinStatusAnswer), (status = 409, description = "INSUFFICIENT_FUNDS: the tenant's quota is used up", body = PinFailure)))]
async fn add(
    principal: Principal,
    state: web::Data<AppState>,
    body: web::Json<PinBody>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesWrite)?;
    let spec = pin_spec(&state, body.into_inner())?;
    let pin = state.files.request_pin(&principal.tenant, &spec).await?;
    Ok(HttpResponse::Accepted().json(answer(pin)))
}

#[utoipa::path(get, path = "/psa/pins/{requestid}", tag = "pinning service", summary = "One pin request and where it stands (not rate-limited: clients poll it)",
    params(("requestid" = String, Path, description = "The request id")),
    responses((status = 200, description = "The pin request", body = PinStatusAnswer)))]
async fn get(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesRead)?;
    let id = request_id(&id)?;
    let pin = state.files.pin_request(&principal.tenant, id).await?;
    Ok(HttpResponse::Ok().json(answer(pin)))
}

#[utoipa::path(post, path = "/psa/pins/{requestid}", tag = "pinning service", summary = "Replace a pin request by a new one (a new request id); the old one is removed",
    params(("requestid" = String, Path, description = "The request id")),
    request_body = PinBody,
    responses((status = 202, description = "Accepted", body = PinStatusAnswer), (status = 409, description = "INSUFFICIENT_FUNDS: the tenant's quota is used up", body = PinFailure)))]
async fn replace(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<PinBody>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesWrite)?;
    let id = request_id(&id)?;
    let spec = pin_spec(&state, body.into_inner())?;
    let pin = state
        .files
        .replace_pin(&principal.tenant, id, &spec)
        .await?;
    Ok(HttpResponse::Accepted().json(answer(pin)))
}

#[utoipa::path(delete, path = "/psa/pins/{requestid}", tag = "pinning service", summary = "Remove a pin request; the Cluster unpins once no file of any tenant holds the CID",
    params(("requestid" = String, Path, description = "The request id")),
    responses((status = 202, description = "Removed")))]
async fn remove(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesWrite)?;
    let id = request_id(&id)?;
    state.files.remove_pin(&principal.tenant, id).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, add, get, replace, remove),
    components(schemas(PinFailure, PinFailureDetail))
)]
pub struct Api;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_to_microseconds_the_safe_way() {
        let exact = instant("2026-01-02T03:04:05.123456Z", true).unwrap();
        assert_eq!(exact.nanosecond(), 123_456_000);
        let up = instant("2026-01-02T03:04:05.1234561Z", true).unwrap();
        assert_eq!(up.nanosecond(), 123_457_000);
        let down = instant("2026-01-02T03:04:05.1234569Z", false).unwrap();
        assert_eq!(down.nanosecond(), 123_456_000);
        let long = instant("2026-01-02T03:04:05.123456000000001+00:00", true).unwrap();
        assert_eq!(long.nanosecond(), 123_457_000);
        let long_exact = instant("2026-01-02T03:04:05.123456000000000Z", true).unwrap();
        assert_eq!(long_exact.nanosecond(), 123_456_000);
        assert!(instant("yesterday", true).is_err());
        assert!(instant("2026-01-02T03:04:05.Z", true).is_err());
    }

    #[test]
    fn listings_read_every_filter_and_refuse_what_is_out_of_bounds() {
        let cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
        let query = format!(
            "cid={cid}&name=Doc&match=ipartial&status=queued,failed&limit=1000&meta=%7B%22a%22%3A%22b%22%7D"
        );
        let parsed = listing(&query, 1024).unwrap();
        assert_eq!(parsed.cids, vec![cid.to_owned()]);
        assert_eq!(
            parsed.name,
            Some(("Doc".to_owned(), NameMatch::CaseInsensitivePartial))
        );
        assert_eq!(parsed.statuses, vec!["queued", "failed"]);
        assert_eq!(parsed.limit, 1000);
        assert_eq!(parsed.meta, Some(serde_json::json!({"a": "b"})));

        let defaults = listing("", 1024).unwrap();
        assert_eq!(
            defaults.statuses,
            vec!["queued", "pinning", "pinned", "failed"]
        );
        assert_eq!(defaults.limit, 10);

        let eleven = [cid; 11].join(",");
        for bad in [
            format!("cid={eleven}"),
            "cid=nope".to_owned(),
            "limit=0".to_owned(),
            "limit=1001".to_owned(),
            "status=done".to_owned(),
            "match=fuzzy".to_owned(),
            "meta=%5B%5D".to_owned(),
            "meta=%7B%22a%22%3A1%7D".to_owned(),
            "before=now".to_owned(),
        ] {
            assert!(listing(&bad, 1024).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn origins_must_be_multiaddrs_without_commas() {
        assert!(check_origin("/ip4/127.0.0.1/tcp/4001", 1024).is_ok());
        assert!(check_origin(
            "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWNiMFiampRujTN5vyiocQnFrox2ipQDrvWevFZ4PXkyAU",
            1024
        )
        .is_ok());
        assert!(check_origin("not an address", 1024).is_err());
        assert!(check_origin("/dns4/a,b/tcp/1", 1024).is_err());
        assert!(check_origin("/ip4/127.0.0.1/tcp/4001", 10).is_err());
    }
}
