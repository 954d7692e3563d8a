//! `/files`: upload, metadata, download, listing and deletion.

use actix_multipart::{Field, Multipart};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::auth::{Principal, Scope};
use crate::error_code::ErrorCode;
use crate::files::upload_request::{common_folder, relative_path, upload_details, UploadFields};
use crate::files::verifiable::VerifiableRequest;
use crate::files::{
    requested_range, ContentId, ContentSink, DirectoryEntry, File, FilesError, PathEntry,
    PinStatus, PinWait, RangeError, ReceivedContent,
};
use crate::http::error::ApiError;
use crate::http::form::{is_multipart, next_part, text_field};
use crate::http::idle;
use crate::http::page_limit::page_limit;
use crate::http::resource;
use crate::http::AppState;
use crate::links::LinkGrant;
use crate::rfc3339;

/// Content never changes under a CID, so a client may keep it for good; but
/// it is a tenant's private file, so no shared cache may keep it.
const IMMUTABLE: &str = "private, max-age=29030400, immutable";
/// The answer depends on who asks (the key decides the tenant).
const VARY: &str = "Authorization, X-API-Key";
/// Largest text field of a multipart upload, other than `metadata`.
const MAX_TEXT_FIELD_BYTES: usize = 4096;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/files/upload").route(web::post().to(upload)))
        .service(resource("/files").route(web::get().to(list)))
        .service(
            resource("/files/{cid}")
                .route(web::get().to(describe))
                .route(web::delete().to(delete)),
        )
        .service(
            resource("/files/{cid}/download")
                .route(web::get().to(download))
                .route(web::head().to(download)),
        )
        .service(
            resource("/ipfs/{cid}")
                .route(web::get().to(ipfs_path))
                .route(web::head().to(ipfs_path)),
        )
        .service(
            resource("/ipfs/{cid}/{path:.*}")
                .route(web::get().to(ipfs_subpath))
                .route(web::head().to(ipfs_subpath)),
        );
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    name: Option<String>,
    /// `pinned`: answer once `replication_min` peers hold the pin.
    wait: Option<String>,
    owner: Option<String>,
    replication_min: Option<i32>,
    replication_max: Option<i32>,
}

#[utoipa::path(post, path = "/files/upload", tag = "files", summary = "Upload a file: multipart (file part and fields), a raw body with ?name=, or its DAG as a CAR", params(UploadQuery), request_body(description = "The file: a raw body, multipart/form-data with a file part and name, owner, metadata, replication_min, replication_max fields, or application/vnd.ipld.car (one root, every block under it)", content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "multipart/form-data"), (Vec<u8> = "application/vnd.ipld.car"))), responses((status = 201, description = "Stored and pinned (or pinning)", body = FileResponse), (status = 202, description = "Stored; with ?wait=pinned, the wait ran out before replication_min peers held the pin", body = FileResponse), (status = 408, description = "The upload took longer than files.pending_expiry_secs (upload_expired)"), (status = 415, description = "A content type outside files.allowed_content_types"), (status = 422, description = "A CAR that does not read (invalid_car), names no root or several, or lacks a block under its root (incomplete_car)")))]
async fn upload(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<UploadQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesWrite)?;
    let files = &state.files;
    let query = query.into_inner();
    let wait = PinWait::parse(query.wait.as_deref())?;
    let fields = UploadFields {
        name: query.name,
        owner: query.owner,
        replication_min: query.replication_min,
        replication_max: query.replication_max,
        ..UploadFields::default()
    };
    // The body's length bounds the file's: the upload reserves no more of
    // the tenant's quota than that.
    let expected_bytes = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let idle = Duration::from_secs(state.settings.server.idle_timeout_secs);
    let payload = idle::request_body(payload, idle);
    let uploaded = files
        .upload_and_pin(&principal.tenant, expected_bytes, wait, |sink| async move {
            let mut fields = fields;
            let content = if is_multipart(&req) {
                receive_form(&sink, &req, payload, &mut fields).await?
            } else if is_car(&req) {
                sink.receive_car(payload).await?
            } else {
                fields.declared_type = declared_type(req.headers().get(header::CONTENT_TYPE));
                sink.receive(payload).await?
            };
            Ok((content, upload_details(sink.settings(), fields)?))
        })
        .await?;
    let status = if uploaded.still_pinning {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    let file = &uploaded.file;
    Ok(HttpResponse::build(status)
        .insert_header((header::LOCATION, format!("/files/{}", file.cid)))
        .json(file_json(file, &state, uploaded.pin.as_ref())))
}

/// A CAR upload: the body is the file's DAG as blocks.
fn is_car(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.essence_str() == crate::files::verifiable::CAR_TYPE)
}

/// The type a raw upload declares. Form encodings describe how a body was
/// sent, not the file (`curl --data-binary` sends one by default), so they
/// declare nothing.
fn declared_type(value: Option<&HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?;
    let mime: mime::Mime = value.parse().ok()?;
    let essence = mime.essence_str();
    (essence != "application/x-www-form-urlencoded").then(|| essence.to_owned())
}

/// Reads a multipart form: `file` parts, each streamed to Kubo in turn,
/// and the small text fields before or after them. One file part is the
/// file; several, or one whose filename is a relative path
/// (`docs/a.txt`), make one UnixFS directory.
async fn receive_form(
    sink: &ContentSink,
    req: &HttpRequest,
    payload: impl futures_util::Stream<Item = Result<bytes::Bytes, PayloadError>> + 'static,
    fields: &mut UploadFields,
) -> Result<ReceivedContent, FilesError> {
    let mut form = Multipart::new(req.headers(), payload);
    let mut parts: Vec<(Option<String>, DirectoryEntry)> = Vec::new();
    let max_files = sink.settings().max_directory_files;
    while let Some(mut field) = next_part(&mut form).await? {
        let field_name = field.name().unwrap_or_default().to_owned();
        match field_name.as_str() {
            "file" => {
                if parts.len() >= max_files {
                    return Err(FilesError::invalid(
                        ErrorCode::TooManyFiles,
                        format!("a directory upload holds at most {max_files} files"),
                    ));
                }
                let filename = field
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .map(str::to_owned);
                // A path names a directory upload: refused before its
                // bytes are read when it cannot be one.
                if let Some(path) = filename.as_deref().filter(|name| name.contains('/')) {
                    relative_path(path)?;
                }
                let declared_type = field.content_type().map(|m| m.essence_str().to_owned());
                let content = sink.receive(&mut field).await?;
                parts.push((
                    filename,
                    DirectoryEntry {
                        path: Vec::new(),
                        content,
                        declared_type,
                    },
                ));
            }
            "name" => fields.name = Some(text_field(&mut field, MAX_TEXT_FIELD_BYTES).await?),
            "owner" => fields.owner = Some(text_field(&mut field, MAX_TEXT_FIELD_BYTES).await?),
            "metadata" => {
                let limit = sink.settings().max_metadata_bytes;
                fields.metadata = Some(text_field(&mut field, limit).await?);
            }
            "replication_min" => {
                fields.replication_min = Some(number_field(&mut field, "replication_min").await?)
            }
            "replication_max" => {
                fields.replication_max = Some(number_field(&mut field, "replication_max").await?)
            }
            other => {
                return Err(FilesError::invalid(
                    ErrorCode::InvalidMultipart,
                    format!(
                        "unknown form field {other:?}; expected file, name, owner, metadata, \
                         replication_min, replication_max"
                    ),
                ))
            }
        }
    }
    match parts.len() {
        0 => Err(FilesError::invalid(
            ErrorCode::InvalidMultipart,
            "the form has no part named \"file\"",
        )),
        1 if !parts[0].0.as_deref().unwrap_or("").contains('/') => {
            let (filename, entry) = parts.remove(0);
            if fields.name.is_none() {
                fields.name = filename;
            }
            fields.declared_type = entry.declared_type;
            Ok(entry.content)
        }
        _ => {
            let mut entries = Vec::with_capacity(parts.len());
            for (filename, mut entry) in parts {
                let filename = filename.ok_or_else(|| {
                    FilesError::invalid(
                        ErrorCode::InvalidPath,
                        "each file of a directory upload needs a filename: its path in the directory",
                    )
                })?;
                entry.path = relative_path(&filename)?;
                entries.push(entry);
            }
            if fields.name.is_none() {
                fields.name = common_folder(&entries);
            }
            sink.directory(entries).await
        }
    }
}

async fn number_field(field: &mut Field, name: &str) -> Result<i32, FilesError> {
    let text = text_field(field, 16).await?;
    text.trim().parse().map_err(|_| {
        FilesError::invalid(
            ErrorCode::InvalidReplication,
            format!("{name} must be a whole number"),
        )
    })
}

/// A stored file as callers see it.
#[derive(Serialize, utoipa::ToSchema)]
struct FileResponse {
    cid: String,
    name: String,
    /// Bytes charged to the tenant's quota; null for a pin request not
    /// pinned yet.
    size: Option<u64>,
    content_type: String,
    /// Hex SHA-256 of the content; null for a pin request (its bytes never
    /// passed the gateway).
    sha256: Option<String>,
    /// upload, car (its DAG uploaded as a CAR) or pin (made through the
    /// Pinning Service API at /psa).
    kind: String,
    owner: Option<String>,
    metadata: serde_json::Value,
    /// The content on the public IPFS gateway (`kubo.gateway_url`).
    url: String,
    /// The content through this gateway.
    download_url: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    pin: PinResponse,
}

#[derive(Serialize, utoipa::ToSchema)]
struct PinResponse {
    /// The stored state: pinning, pinned or error.
    status: String,
    replication_min: i32,
    replication_max: i32,
    /// Live from the Cluster, when it answered.
    pinned_peers: Option<usize>,
    allocations: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<Object>>)]
    peers: Option<Vec<crate::files::PeerPinStatus>>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct FilePage {
    files: Vec<FileResponse>,
    /// Pass as `cursor` for the next page; absent on the last one.
    next_cursor: Option<String>,
}

fn file_json(file: &File, state: &AppState, pin: Option<&PinStatus>) -> FileResponse {
    let gateway = state.settings.kubo.gateway_url.trim_end_matches('/');
    FileResponse {
        cid: file.cid.to_string(),
        name: file.name.clone(),
        size: file.size,
        content_type: file.content_type.clone(),
        sha256: file.sha256.as_deref().map(hex::encode),
        kind: file.kind.as_str().to_owned(),
        owner: file.owner.clone(),
        metadata: file.metadata.clone(),
        url: format!("{gateway}/ipfs/{}", file.cid),
        download_url: format!("/files/{}/download", file.cid),
        created_at: rfc3339::format(file.created_at),
        updated_at: rfc3339::format(file.updated_at),
        pin: PinResponse {
            status: file.pin_state.as_str().to_owned(),
            replication_min: file.replication_min,
            replication_max: file.replication_max,
            pinned_peers: pin.map(PinStatus::pinned_peers),
            allocations: pin.map(|p| p.allocations.clone()),
            peers: pin.map(|p| p.peers.clone()),
        },
    }
}

/// A path's CID. Text that is no CID names no file: 404, saying why.
pub(super) fn parse_cid(raw: &str) -> Result<ContentId, ApiError> {
    ContentId::parse(raw).map_err(|e| ApiError::NotFound(format!("no such file: {e}")))
}

#[utoipa::path(get, path = "/files/{cid}", tag = "files", summary = "A file's metadata and live pin status", params(("cid" = String, Path, description = "The content id")), responses((status = 200, description = "The file", body = FileResponse)))]
async fn describe(
    principal: Principal,
    state: web::Data<AppState>,
    cid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesRead)?;
    let cid = parse_cid(&cid)?;
    let (file, pin) = state.files.describe(&principal.tenant, &cid).await?;
    Ok(HttpResponse::Ok().json(file_json(&file, &state, pin.as_ref())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    owner: Option<String>,
}

#[utoipa::path(get, path = "/files", tag = "files", summary = "The tenant's files, newest first", params(ListQuery), responses((status = 200, description = "A page of files and next_cursor", body = FilePage)))]
async fn list(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesRead)?;
    let settings = state.files.settings();
    let limit = page_limit(
        query.limit,
        settings.list_default_limit,
        settings.list_max_limit,
        "files.list_max_limit",
    )?;
    let after = query.cursor.as_deref().map(cursor::decode).transpose()?;
    let page = state
        .files
        .list(&principal.tenant, query.owner.as_deref(), after, limit)
        .await?;
    let files: Vec<_> = page
        .files
        .iter()
        .map(|f| file_json(f, &state, None))
        .collect();
    Ok(HttpResponse::Ok().json(FilePage {
        files,
        next_cursor: page.next.map(|(at, id)| cursor::encode(at, id)),
    }))
}

/// Keyset cursors: the position of the last file of a page, opaque to clients.
mod cursor {
    use time::OffsetDateTime;
    use uuid::Uuid;

    use crate::error_code::ErrorCode;
    use crate::http::error::ApiError;

    pub fn encode(at: OffsetDateTime, id: Uuid) -> String {
        hex::encode(format!("{}:{}", at.unix_timestamp_nanos(), id.simple()))
    }

    pub fn decode(cursor: &str) -> Result<(OffsetDateTime, Uuid), ApiError> {
        let invalid = || {
            ApiError::bad_request(
                ErrorCode::InvalidCursor,
                "cursor is not one this API gave out",
            )
        };
        let text = String::from_utf8(hex::decode(cursor).map_err(|_| invalid())?)
            .map_err(|_| invalid())?;
        let (nanos, id) = text.split_once(':').ok_or_else(invalid)?;
        let nanos: i128 = nanos.parse().map_err(|_| invalid())?;
        let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid())?;
        // Postgres's timestamps start in 4713 BC: keep to the years files can have.
        if !(1970..=9999).contains(&at.year()) {
            return Err(invalid());
        }
        Ok((at, Uuid::parse_str(id).map_err(|_| invalid())?))
    }
}

#[utoipa::path(delete, path = "/files/{cid}", tag = "files", summary = "Drop the tenant's file; unpinned when no tenant holds the CID", params(("cid" = String, Path, description = "The content id")), responses((status = 204, description = "Deleted"), (status = 409, description = "A submission names the file as its output")))]
async fn delete(
    principal: Principal,
    state: web::Data<AppState>,
    cid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesWrite)?;
    let cid = parse_cid(&cid)?;
    state.files.delete(&principal.tenant, &cid).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(method(get, head), path = "/files/{cid}/download", tag = "files", summary = "The content, streamed; one Range, If-None-Match; or verifiably with format=raw|car (or Accept)", params(("cid" = String, Path, description = "The content id"), ("format" = Option<String>, Query, description = "raw (the root block) or car (the DAG); as Accept: application/vnd.ipld.raw or application/vnd.ipld.car"), ("dag-scope" = Option<String>, Query, description = "block, entity or all (car)"), ("entity-bytes" = Option<String>, Query, description = "from:to (car)")), responses((status = 200, description = "The content", body = Vec<u8>, content_type = "application/octet-stream"), (status = 206, description = "The requested range"), (status = 304, description = "Not modified"), (status = 416, description = "Range not satisfiable")))]
async fn download(
    principal: Principal,
    grant: Option<LinkGrant>,
    state: web::Data<AppState>,
    req: HttpRequest,
    cid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesRead)?;
    let cid = parse_cid(&cid)?;
    if let Some(request) = verifiable_request(&req)? {
        return verifiable_answer(&state, &principal, grant.as_ref(), &req, &cid, "", &request)
            .await;
    }
    let (file, size) = state.files.to_download(&principal.tenant, &cid).await?;
    let bytes = BytesToSend {
        target: file.cid.to_string(),
        etag: format!("\"{}\"", file.cid),
        name: &file.name,
        content_type: &file.content_type,
        size,
    };
    send_bytes(&state, &principal, grant.as_ref(), &req, bytes).await
}

/// Bytes of a file to stream from Kubo: `target` is a CID, or a CID and a
/// path under it.
struct BytesToSend<'a> {
    target: String,
    etag: String,
    name: &'a str,
    content_type: &'a str,
    size: u64,
}

/// Streams `bytes` with the HTTP caching and range semantics downloads have:
/// ETag and If-None-Match, one Range, HEAD.
async fn send_bytes(
    state: &AppState,
    principal: &Principal,
    grant: Option<&LinkGrant>,
    req: &HttpRequest,
    bytes: BytesToSend<'_>,
) -> Result<HttpResponse, ApiError> {
    let BytesToSend {
        target,
        etag,
        name,
        content_type,
        size,
    } = bytes;
    let cache_control = cache_control(grant);
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::VARY, VARY))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    if if_none_match(req, &etag) {
        return Ok(response.status(StatusCode::NOT_MODIFIED).finish());
    }
    response
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header(attachment(name));

    let range = match req.headers().get(header::RANGE).map(|v| v.to_str()) {
        None => None,
        Some(Err(_)) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRange,
                RangeError::Malformed.to_string(),
            ))
        }
        Some(Ok(value)) => match requested_range(value, size) {
            Ok(range) => Some(range),
            Err(RangeError::Unsatisfiable(size)) => {
                return Err(ApiError::RangeNotSatisfiable {
                    size,
                    message: RangeError::Unsatisfiable(size).to_string(),
                })
            }
            Err(other) => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidRange,
                    other.to_string(),
                ))
            }
        },
    };
    let length = match range {
        Some(range) => {
            response.status(StatusCode::PARTIAL_CONTENT).insert_header((
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", range.start, range.end),
            ));
            range.len()
        }
        None => size,
    };
    if req.method() == Method::HEAD || length == 0 {
        return Ok(response
            .no_chunking(length)
            .streaming(futures_util::stream::empty::<
                Result<bytes::Bytes, std::io::Error>,
            >()));
    }
    let content = state
        .files
        .download(&principal.tenant, &target, range, length)
        .await?;
    let content = idle::download(
        content,
        Duration::from_secs(state.settings.server.idle_timeout_secs),
    );
    Ok(response.no_chunking(length).streaming(content))
}

/// What is at a path of the tenant's file: a file's bytes (as a download,
/// always as an attachment of no sniffable type: a directory may hold
/// HTML, which must not run in the gateway's origin), or a folder's entries.
async fn plain_answer(
    state: &AppState,
    principal: &Principal,
    grant: Option<&LinkGrant>,
    req: &HttpRequest,
    cid: &ContentId,
    path: &str,
) -> Result<HttpResponse, ApiError> {
    match state.files.entry_at(&principal.tenant, cid, path).await? {
        PathEntry::File { bytes } => {
            let target = if path.is_empty() {
                cid.to_string()
            } else {
                format!("{cid}/{path}")
            };
            let name = path.rsplit('/').next().filter(|n| !n.is_empty());
            let bytes = BytesToSend {
                etag: format!("\"{target}\""),
                name: name.unwrap_or(cid.as_str()),
                content_type: "application/octet-stream",
                size: bytes,
                target,
            };
            send_bytes(state, principal, grant, req, bytes).await
        }
        PathEntry::Folder { entries, more } => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, cache_control(grant)))
            .insert_header((header::VARY, VARY))
            .json(FolderListing {
                cid: cid.to_string(),
                path: path.to_owned(),
                entries,
                more,
            })),
    }
}

/// A folder's entries, sorted by name.
#[derive(Serialize, utoipa::ToSchema)]
struct FolderListing {
    cid: String,
    path: String,
    entries: Vec<crate::files::ListedEntry>,
    /// More entries than one listing answers (crate::files::MAX_LISTED).
    more: bool,
}

/// Content never changes under a CID; but through a link, no copy may
/// outlive the link.
fn cache_control(grant: Option<&LinkGrant>) -> String {
    match grant {
        None => IMMUTABLE.to_owned(),
        Some(grant) => {
            let left = grant.expires - time::OffsetDateTime::now_utc().unix_timestamp();
            format!("private, max-age={}", left.max(0))
        }
    }
}

/// The verifiable answer a request asks for by `?format=` or `Accept`.
fn verifiable_request(req: &HttpRequest) -> Result<Option<VerifiableRequest>, ApiError> {
    let mut format = None;
    let mut dag_scope = None;
    let mut entity_bytes = None;
    for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match name.as_ref() {
            "format" => format = Some(value.into_owned()),
            "dag-scope" => dag_scope = Some(value.into_owned()),
            "entity-bytes" => entity_bytes = Some(value.into_owned()),
            _ => {}
        }
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    Ok(VerifiableRequest::parse(
        format.as_deref(),
        accept,
        dag_scope.as_deref(),
        entity_bytes.as_deref(),
    )?)
}

/// Streams a verifiable answer with the headers the trustless gateway
/// specification gives it.
async fn verifiable_answer(
    state: &AppState,
    principal: &Principal,
    grant: Option<&LinkGrant>,
    req: &HttpRequest,
    cid: &ContentId,
    path: &str,
    request: &VerifiableRequest,
) -> Result<HttpResponse, ApiError> {
    let answer = state
        .files
        .verifiable(&principal.tenant, cid, path, request)
        .await?;
    let cache_control = cache_control(grant);
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, answer.content_type.as_str()))
        .insert_header(attachment(&answer.file_name))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::VARY, "Accept, Authorization, X-API-Key"));
    if let Some(etag) = &answer.etag {
        response.insert_header((header::ETAG, etag.as_str()));
        if if_none_match(req, etag.trim_start_matches("W/")) {
            return Ok(response.status(StatusCode::NOT_MODIFIED).finish());
        }
    }
    if req.method() == Method::HEAD {
        return Ok(response.finish());
    }
    let body = idle::download(
        answer.body,
        Duration::from_secs(state.settings.server.idle_timeout_secs),
    );
    Ok(response.streaming(body))
}

#[utoipa::path(method(get, head), path = "/ipfs/{cid}", tag = "files", summary = "The tenant's file: verifiably with ?format=raw|car or Accept: application/vnd.ipld.raw|car (dag-scope, entity-bytes); else its bytes, or a folder's entries", params(("cid" = String, Path, description = "The content id of a file of the tenant"), ("format" = Option<String>, Query, description = "raw or car"), ("dag-scope" = Option<String>, Query, description = "block, entity or all (car)"), ("entity-bytes" = Option<String>, Query, description = "from:to (car)")), responses((status = 200, description = "The block or the CAR (format=raw|car), else a file's bytes or a folder's entries", content((Vec<u8> = "application/vnd.ipld.raw"), (Vec<u8> = "application/vnd.ipld.car"), (Vec<u8> = "application/octet-stream"), (FolderListing = "application/json"))), (status = 206, description = "The requested range of a file"), (status = 304, description = "Not modified"), (status = 416, description = "Range not satisfiable")))]
async fn ipfs_path(
    principal: Principal,
    grant: Option<LinkGrant>,
    state: web::Data<AppState>,
    req: HttpRequest,
    cid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ipfs_answer(principal, grant, state, req, &cid, "").await
}

#[utoipa::path(method(get, head), path = "/ipfs/{cid}/{path}", tag = "files", summary = "A path under the tenant's file (a directory): verifiably with ?format=raw|car; else a file's bytes (Range, If-None-Match) or a folder's entries", params(("cid" = String, Path, description = "The content id of a file of the tenant"), ("path" = String, Path, description = "The path under it"), ("format" = Option<String>, Query, description = "raw or car"), ("dag-scope" = Option<String>, Query, description = "block, entity or all (car)"), ("entity-bytes" = Option<String>, Query, description = "from:to (car)")), responses((status = 200, description = "The block or the CAR (format=raw|car), else a file's bytes or a folder's entries", content((Vec<u8> = "application/vnd.ipld.raw"), (Vec<u8> = "application/vnd.ipld.car"), (Vec<u8> = "application/octet-stream"), (FolderListing = "application/json"))), (status = 206, description = "The requested range of a file"), (status = 304, description = "Not modified"), (status = 416, description = "Range not satisfiable")))]
async fn ipfs_subpath(
    principal: Principal,
    grant: Option<LinkGrant>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (cid, path) = path.into_inner();
    ipfs_answer(principal, grant, state, req, &cid, &path).await
}

async fn ipfs_answer(
    principal: Principal,
    grant: Option<LinkGrant>,
    state: web::Data<AppState>,
    req: HttpRequest,
    cid: &str,
    path: &str,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesRead)?;
    let cid = parse_cid(cid)?;
    let path = path.trim_matches('/');
    if path
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
        || path.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidPath,
            "a path under a CID has no . or .. segments and no control characters",
        ));
    }
    let Some(request) = verifiable_request(&req)? else {
        return plain_answer(&state, &principal, grant.as_ref(), &req, &cid, path).await;
    };
    verifiable_answer(
        &state,
        &principal,
        grant.as_ref(),
        &req,
        &cid,
        path,
        &request,
    )
    .await
}

fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// `attachment` with an ASCII fallback name and the exact name in UTF-8
/// (RFC 6266), so any name downloads under its own name and none can break
/// the header.
fn attachment(name: &str) -> header::ContentDisposition {
    use header::{Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue};
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![
            DispositionParam::Filename(fallback),
            DispositionParam::FilenameExt(ExtendedValue {
                charset: Charset::Ext("UTF-8".to_owned()),
                language_tag: None,
                value: name.as_bytes().to_vec(),
            }),
        ],
    }
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(upload, list, describe, delete, download, ipfs_path, ipfs_subpath))]
pub struct Api;
