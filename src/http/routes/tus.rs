//! `/files/tus`: resumable uploads by the tus 1.0 protocol (core, creation,
//! creation-with-upload, creation-defer-length, termination, checksum with
//! sha256, expiration), with an API key or a signed upload URL.

use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use time::OffsetDateTime;
use uuid::Uuid;

use super::links::{link_error, public_base};
use crate::auth::{Principal, Scope};
use crate::error_code::ErrorCode;
use crate::files::tus::{TusCreation, TusPatch, TusUpload};
use crate::files::upload_request::{upload_details, UploadFields};
use crate::http::error::ApiError;
use crate::http::idle;
use crate::http::resource;
use crate::http::AppState;
use crate::links::LinkGrant;

const VERSION: &str = "1.0.0";
const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration";
const PART_TYPE: &str = "application/offset+octet-stream";
/// Longest `Upload-Metadata` header, in bytes.
const MAX_METADATA_HEADER_BYTES: usize = 32 * 1024;
/// Most `Upload-Metadata` pairs.
const MAX_METADATA_PAIRS: usize = 64;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let tus_headers = || DefaultHeaders::new().add(("Tus-Resumable", VERSION));
    cfg.service(
        resource("/files/tus")
            .wrap(tus_headers())
            .route(web::post().to(create))
            .route(web::method(actix_web::http::Method::OPTIONS).to(options))
            // What /files/{cid} answers for a CID `tus`, which is none.
            .route(web::get().to(no_such_file))
            .route(web::delete().to(no_such_file)),
    )
    .service(
        // Upload ids only: /files/tus/links is /files/{cid}/links of cid `tus`.
        resource("/files/tus/{id:[0-9a-fA-F-]+}")
            .wrap(tus_headers())
            .route(web::head().to(status))
            .route(web::patch().to(append))
            .route(web::delete().to(terminate))
            .route(web::method(actix_web::http::Method::OPTIONS).to(options)),
    );
}

async fn no_such_file() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(
        "no such file: tus is not a valid CID".into(),
    ))
}

/// The server's capabilities; answered without a key.
async fn options(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Tus-Version", VERSION))
        .insert_header(("Tus-Extension", EXTENSIONS))
        .insert_header(("Tus-Max-Size", state.files.settings().max_upload_bytes))
        .insert_header(("Tus-Checksum-Algorithm", "sha256"))
        .finish()
}

fn is_part(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PART_TYPE.as_bytes())
}

fn require_version(req: &HttpRequest) -> Result<(), ApiError> {
    match req
        .headers()
        .get("Tus-Resumable")
        .map(HeaderValue::as_bytes)
    {
        Some(b"1.0.0") => Ok(()),
        _ => Err(ApiError::UnsupportedTusVersion(
            "send Tus-Resumable: 1.0.0; this server speaks tus 1.0.0".into(),
        )),
    }
}

fn number_header(headers: &HeaderMap, name: &'static str) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidTusHeader,
                format!("{name} must be a non-negative whole number"),
            )
        })
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs (the value
/// may be absent); keys are unique.
pub fn parse_metadata(raw: &str) -> Result<Vec<(String, String)>, String> {
    if raw.len() > MAX_METADATA_HEADER_BYTES {
        return Err(format!(
            "Upload-Metadata is over {MAX_METADATA_HEADER_BYTES} bytes"
        ));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(format!("Upload-Metadata key {key:?} is not valid"));
        }
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(format!("Upload-Metadata names {key:?} twice"));
        }
        let bytes = STANDARD
            .decode(value.trim())
            .map_err(|_| format!("Upload-Metadata value of {key:?} is not base64"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("Upload-Metadata value of {key:?} is not UTF-8 text"))?;
        pairs.push((key.to_owned(), text));
        if pairs.len() > MAX_METADATA_PAIRS {
            return Err(format!(
                "Upload-Metadata has more than {MAX_METADATA_PAIRS} pairs"
            ));
        }
    }
    Ok(pairs)
}

/// An upload's fields from its metadata: `filename`/`name`,
/// `filetype`/`type`, `owner`, `metadata` (a JSON object),
/// `replication_min`/`replication_max`, `wait` (`pinned`); any other pair
/// goes into the file's metadata as a string.
fn fields_from_metadata(pairs: Vec<(String, String)>) -> Result<(UploadFields, bool), ApiError> {
    let mut fields = UploadFields::default();
    let mut extra = serde_json::Map::new();
    let mut wait = false;
    let replication = |name: &str, value: &str| {
        value.trim().parse::<i32>().map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidReplication,
                format!("{name} must be a whole number"),
            )
        })
    };
    for (key, value) in pairs {
        match key.as_str() {
            "filename" | "name" => fields.name = Some(value),
            "filetype" | "type" => {
                fields.declared_type = value
                    .parse::<mime::Mime>()
                    .ok()
                    .map(|m| m.essence_str().to_owned())
            }
            "owner" => fields.owner = Some(value),
            "metadata" => fields.metadata = Some(value),
            "replication_min" => fields.replication_min = Some(replication(&key, &value)?),
            "replication_max" => fields.replication_max = Some(replication(&key, &value)?),
            "wait" if value == "pinned" => wait = true,
            "wait" => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidWait,
                    format!("wait={value:?} is not known; the only value is pinned"),
                ))
            }
            _ => {
                extra.insert(key, serde_json::Value::String(value));
            }
        }
    }
    if !extra.is_empty() {
        let mut object = match fields.metadata.as_deref() {
            None => serde_json::Map::new(),
            Some(text) => match serde_json::from_str(text) {
                Ok(serde_json::Value::Object(object)) => object,
                _ => {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidMetadata,
                        "metadata must be a JSON object",
                    ))
                }
            },
        };
        for (key, value) in extra {
            object.entry(key).or_insert(value);
        }
        fields.metadata = Some(serde_json::Value::Object(object).to_string());
    }
    Ok((fields, wait))
}

fn http_date(at: OffsetDateTime) -> String {
    header::HttpDate::from(std::time::SystemTime::from(at)).to_string()
}

/// What every answer about an upload says of it.
fn describe(response: &mut HttpResponseBuilder, upload: &TusUpload) {
    response
        .insert_header(("Upload-Offset", upload.offset))
        .insert_header(("Upload-Expires", http_date(upload.expires_at)))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    match upload.length {
        Some(length) => response.insert_header(("Upload-Length", length)),
        None => response.insert_header(("Upload-Defer-Length", "1")),
    };
    if let Some(cid) = &upload.completed {
        response.insert_header(("X-Ipfs-Path", format!("/ipfs/{cid}")));
    }
}

/// The URL of upload `id`: for a link's upload, signed for the requests
/// that continue it, until the upload expires.
fn upload_url(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    grant: Option<&LinkGrant>,
    upload: &TusUpload,
) -> Result<String, ApiError> {
    let path = format!("/files/tus/{}", upload.id);
    let Some(_) = grant else {
        return Ok(format!("{}{path}", public_base(state, req)));
    };
    let continuation = LinkGrant {
        methods: "HEAD,PATCH,DELETE".into(),
        path: path.clone(),
        tenant: principal.tenant.clone(),
        expires: upload.expires_at.unix_timestamp(),
        owner: None,
        max_bytes: None,
        content_types: Vec::new(),
        nonce: None,
    };
    let query = state.links.sign(&continuation).map_err(link_error)?;
    Ok(format!("{}{path}?{query}", public_base(state, req)))
}

/// The upload a link may continue: only the one it was signed for.
fn upload_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no upload {raw}")))
}

#[utoipa::path(post, path = "/files/tus", tag = "uploads", summary = "Create a resumable upload (tus 1.0 creation; the body may carry its first part)", params(("Tus-Resumable" = String, Header, description = "1.0.0"), ("Upload-Length" = Option<u64>, Header, description = "The file's size; or Upload-Defer-Length: 1"), ("Upload-Defer-Length" = Option<String>, Header, description = "1: the size comes with a later PATCH"), ("Upload-Metadata" = Option<String>, Header, description = "key base64 pairs: filename, filetype, owner, metadata, replication_min, replication_max, wait")), request_body(content = Option<Vec<u8>>, content_type = "application/offset+octet-stream"), responses((status = 201, description = "Created; Location is the upload's URL"), (status = 412, description = "Tus-Resumable missing or not 1.0.0")))]
async fn create(
    principal: Principal,
    grant: Option<LinkGrant>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesWrite)?;
    require_version(&req)?;
    let headers = req.headers();
    let length = number_header(headers, "Upload-Length")?;
    let deferred = match headers
        .get("Upload-Defer-Length")
        .map(HeaderValue::as_bytes)
    {
        None => false,
        Some(b"1") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidTusHeader,
                "Upload-Defer-Length must be 1",
            ))
        }
    };
    if length.is_some() == deferred {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTusHeader,
            "send exactly one of Upload-Length and Upload-Defer-Length: 1",
        ));
    }
    let pairs = match headers.get("Upload-Metadata") {
        None => Vec::new(),
        Some(value) => parse_metadata(value.to_str().map_err(|_| {
            ApiError::bad_request(ErrorCode::InvalidMetadata, "Upload-Metadata is not ASCII")
        })?)
        .map_err(|message| ApiError::bad_request(ErrorCode::InvalidMetadata, message))?,
    };
    let (mut fields, wait_for_pin) = fields_from_metadata(pairs)?;
    if let Some(grant) = &grant {
        // A link decides the owner; the page cannot choose another.
        if fields.owner.is_some() && fields.owner != grant.owner {
            return Err(ApiError::LinkRefused(
                "the upload link sets the owner; leave owner out of Upload-Metadata".into(),
            ));
        }
        fields.owner = grant.owner.clone();
    }
    let details = upload_details(state.files.settings(), fields)?;
    let creation = TusCreation {
        length,
        details,
        allowed_types: grant
            .as_ref()
            .map(|g| g.content_types.clone())
            .unwrap_or_default(),
        max_bytes: grant.as_ref().and_then(|g| g.max_bytes),
        wait_for_pin,
        one_use: grant
            .as_ref()
            .and_then(|g| g.nonce.clone().map(|nonce| (nonce, g.expires))),
    };
    let upload = state.files.tus_create(&principal.tenant, creation).await?;
    let location = upload_url(&state, &req, &principal, grant.as_ref(), &upload)?;
    let with_part = is_part(headers);
    let upload = if with_part || upload.length == Some(0) {
        let patch = TusPatch {
            offset: 0,
            length: None,
            checksum: checksum(headers)?,
        };
        receive(&state, &principal, upload.id, patch, payload).await?
    } else {
        upload
    };
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, location));
    describe(&mut response, &upload);
    Ok(response.finish())
}

/// `Upload-Checksum: sha256 <base64>`.
fn checksum(headers: &HeaderMap) -> Result<Option<[u8; 32]>, ApiError> {
    let Some(value) = headers.get("Upload-Checksum") else {
        return Ok(None);
    };
    let invalid =
        |message: &str| ApiError::bad_request(ErrorCode::InvalidChecksum, message.to_owned());
    let text = value
        .to_str()
        .map_err(|_| invalid("Upload-Checksum is not ASCII"))?;
    let (algorithm, digest) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| invalid("Upload-Checksum is `sha256 <base64 digest>`"))?;
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(invalid(
            "the only Upload-Checksum algorithm supported is sha256",
        ));
    }
    let bytes = STANDARD
        .decode(digest.trim())
        .map_err(|_| invalid("the Upload-Checksum digest is not base64"))?;
    bytes
        .try_into()
        .map(Some)
        .map_err(|_| invalid("a sha256 Upload-Checksum digest has 32 bytes"))
}

/// Streams one part into the upload; waits for the pin when the upload
/// asked and this was its last byte.
async fn receive(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    patch: TusPatch,
    payload: web::Payload,
) -> Result<TusUpload, ApiError> {
    let idle = Duration::from_secs(state.settings.server.idle_timeout_secs);
    let body = idle::request_body(payload, idle);
    let appended = state
        .files
        .tus_append(&principal.tenant, id, patch, body)
        .await?;
    Ok(appended.upload)
}

#[utoipa::path(head, path = "/files/tus/{id}", tag = "uploads", summary = "Where a resumable upload stands: Upload-Offset, Upload-Length, Upload-Expires", params(("id" = String, Path, description = "The upload id"), ("Tus-Resumable" = String, Header, description = "1.0.0")), responses((status = 200, description = "The upload; X-Ipfs-Path once complete"), (status = 412, description = "Tus-Resumable missing or not 1.0.0")))]
async fn status(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesWrite)?;
    require_version(&req)?;
    let upload = state
        .files
        .tus_upload(&principal.tenant, upload_id(&id)?)
        .await?;
    let mut response = HttpResponse::Ok();
    describe(&mut response, &upload);
    Ok(response.finish())
}

#[utoipa::path(patch, path = "/files/tus/{id}", tag = "uploads", summary = "Append a part at Upload-Offset", params(("id" = String, Path, description = "The upload id"), ("Tus-Resumable" = String, Header, description = "1.0.0"), ("Upload-Offset" = u64, Header, description = "Where the part starts: the upload's offset"), ("Upload-Length" = Option<u64>, Header, description = "The size of a deferred-length upload"), ("Upload-Checksum" = Option<String>, Header, description = "sha256 <base64 digest of the part>")), request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"), responses((status = 204, description = "Appended; Upload-Offset is the new offset, X-Ipfs-Path set when this was the last byte"), (status = 409, description = "Upload-Offset is not the upload's offset"), (status = 412, description = "Tus-Resumable missing or not 1.0.0"), (status = 415, description = "Content-Type is not application/offset+octet-stream"), (status = 423, description = "Another PATCH of the upload is still streaming"), (status = 460, description = "The part's checksum does not match; nothing of it was kept")))]
async fn append(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesWrite)?;
    require_version(&req)?;
    let headers = req.headers();
    if !is_part(headers) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "a PATCH carries Content-Type: {PART_TYPE}"
        )));
    }
    let offset = number_header(headers, "Upload-Offset")?.ok_or_else(|| {
        ApiError::bad_request(ErrorCode::InvalidTusHeader, "Upload-Offset is required")
    })?;
    let patch = TusPatch {
        offset,
        length: number_header(headers, "Upload-Length")?,
        checksum: checksum(headers)?,
    };
    let upload = receive(&state, &principal, upload_id(&id)?, patch, payload).await?;
    let mut response = HttpResponse::build(StatusCode::NO_CONTENT);
    describe(&mut response, &upload);
    Ok(response.finish())
}

#[utoipa::path(delete, path = "/files/tus/{id}", tag = "uploads", summary = "End an unfinished upload, releasing its reservation (tus termination)", params(("id" = String, Path, description = "The upload id"), ("Tus-Resumable" = String, Header, description = "1.0.0")), responses((status = 204, description = "Terminated"), (status = 412, description = "Tus-Resumable missing or not 1.0.0")))]
async fn terminate(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesWrite)?;
    require_version(&req)?;
    state
        .files
        .tus_terminate(&principal.tenant, upload_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, status, append, terminate))]
pub struct Api;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_decode_and_stay_unique() {
        let pairs = parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")
            .unwrap();
        assert_eq!(
            pairs,
            vec![
                (
                    "filename".to_owned(),
                    "world_domination_plan.pdf".to_owned()
                ),
                ("is_confidential".to_owned(), String::new()),
            ]
        );
        assert!(parse_metadata("a YQ==,a Yg==").is_err());
        assert!(parse_metadata("a !!!").is_err());
        assert!(parse_metadata(
            &"k,"
                .repeat(MAX_METADATA_PAIRS + 1)
                .split(',')
                .enumerate()
                .map(|(i, _)| format!("k{i}"))
                .collect::<Vec<_>>()
                .join(",")
        )
        .is_err());
    }

    #[test]
    fn unknown_metadata_goes_into_the_files_metadata() {
        let (fields, wait) = fields_from_metadata(vec![
            ("filename".into(), "a.txt".into()),
            ("filetype".into(), "text/plain; charset=utf-8".into()),
            ("relativePath".into(), "dir/a.txt".into()),
            ("wait".into(), "pinned".into()),
        ])
        .unwrap();
        assert!(wait);
        assert_eq!(fields.name.as_deref(), Some("a.txt"));
        assert_eq!(fields.declared_type.as_deref(), Some("text/plain"));
        let metadata: serde_json::Value =
            serde_json::from_str(fields.metadata.as_deref().unwrap()).unwrap();
        assert_eq!(metadata["relativePath"], "dir/a.txt");
        assert!(fields_from_metadata(vec![("wait".into(), "later".into())]).is_err());
    }
}
