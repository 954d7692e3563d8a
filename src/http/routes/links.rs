//! Signed links for browsers: `POST /files/{cid}/links` (a download link)
//! and `POST /uploads` (a one-use tus upload URL).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::{Principal, Scope};
use crate::error_code::ErrorCode;
use crate::http::error::ApiError;
use crate::http::resource;
use crate::http::AppState;
use crate::links::{LinkError, LinkGrant};
use crate::rfc3339;

/// Most content types one upload link may list.
const MAX_CONTENT_TYPES: usize = 32;
/// Longest content type, in bytes.
const MAX_CONTENT_TYPE_BYTES: usize = 255;
/// Longest owner, in bytes (as for uploads).
const MAX_OWNER_BYTES: usize = 256;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/files/{cid}/links").route(web::post().to(download_link)))
        .service(resource("/uploads").route(web::post().to(upload_link)));
}

/// The gateway's base URL as the caller reached it, unless configured.
pub fn public_base(state: &AppState, req: &HttpRequest) -> String {
    let configured = state.settings.server.public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_owned();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

pub fn link_error(error: LinkError) -> ApiError {
    match error {
        LinkError::NotConfigured => ApiError::NotImplemented(error.to_string()),
        other => ApiError::LinkRefused(other.to_string()),
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DownloadLinkRequest {
    /// Seconds the link works (default links.default_ttl_secs, at most links.max_ttl_secs).
    #[serde(default, deserialize_with = "crate::whole_number::option_u64")]
    #[schema(minimum = 1)]
    expires_in_secs: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct LinkResponse {
    /// The URL; it works without a key until `expires_at`.
    url: String,
    /// The method it opens (GET also opens HEAD).
    method: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

#[utoipa::path(post, path = "/files/{cid}/links", tag = "links", summary = "A signed download link to the tenant's file, for a browser", params(("cid" = String, Path, description = "The content id")), request_body(content = Option<DownloadLinkRequest>, content_type = "application/json"), responses((status = 201, description = "The link", body = LinkResponse), (status = 501, description = "Links are off: links.signing_key is not set")))]
async fn download_link(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    cid: web::Path<String>,
    body: Option<web::Json<DownloadLinkRequest>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesRead)?;
    let request = body.map(web::Json::into_inner).unwrap_or_default();
    let cid = super::files::parse_cid(&cid)?;
    // Only a file of the caller's tenant gets a link.
    state.files.file(&principal.tenant, &cid).await?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let expires = state
        .links
        .expiry(now, request.expires_in_secs)
        .map_err(|message| ApiError::bad_request(ErrorCode::InvalidExpiry, message))?;
    let path = format!("/files/{cid}/download");
    let grant = LinkGrant {
        methods: "GET".into(),
        path: path.clone(),
        tenant: principal.tenant.clone(),
        expires,
        owner: None,
        max_bytes: None,
        content_types: Vec::new(),
        nonce: None,
    };
    let query = state.links.sign(&grant).map_err(link_error)?;
    Ok(HttpResponse::Created().json(LinkResponse {
        url: format!("{}{path}?{query}", public_base(&state, &req)),
        method: "GET".into(),
        expires_at: rfc3339::from_unix(expires),
    }))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UploadLinkRequest {
    /// The owner of the file made through the link.
    #[schema(min_length = 1, max_length = 256)]
    owner: Option<String>,
    /// Most bytes the upload may have (default and at most files.max_upload_bytes).
    #[serde(default, deserialize_with = "crate::whole_number::option_u64")]
    #[schema(minimum = 0)]
    max_bytes: Option<u64>,
    /// Content types the file may have (as recognised from its bytes, else
    /// as declared); empty or absent: any the gateway accepts.
    #[serde(default)]
    #[schema(max_items = 32)]
    content_types: Vec<String>,
    /// Seconds the link works (default links.default_ttl_secs, at most links.max_ttl_secs).
    #[serde(default, deserialize_with = "crate::whole_number::option_u64")]
    #[schema(minimum = 1)]
    expires_in_secs: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct UploadLinkResponse {
    /// A tus 1.0 creation URL (POST), for one upload, working without a key.
    url: String,
    method: String,
    #[schema(format = DateTime)]
    expires_at: String,
    max_bytes: u64,
    content_types: Vec<String>,
    owner: Option<String>,
}

#[utoipa::path(post, path = "/uploads", tag = "links", summary = "A signed one-use upload URL (tus) for a browser", request_body(content = Option<UploadLinkRequest>, content_type = "application/json"), responses((status = 201, description = "The upload URL", body = UploadLinkResponse), (status = 501, description = "Links are off: links.signing_key is not set")))]
async fn upload_link(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Option<web::Json<UploadLinkRequest>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::FilesWrite)?;
    let request = body.map(web::Json::into_inner).unwrap_or_default();
    let max_upload = state.files.settings().max_upload_bytes;
    let max_bytes = request.max_bytes.unwrap_or(max_upload);
    if max_bytes > max_upload {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidMaxBytes,
            format!("max_bytes must be at most files.max_upload_bytes, {max_upload}"),
        ));
    }
    if let Some(owner) = &request.owner {
        if owner.is_empty() || owner.len() > MAX_OWNER_BYTES || owner.chars().any(char::is_control)
        {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidOwner,
                "owner must have 1 to 256 bytes and no control characters",
            ));
        }
    }
    if request.content_types.len() > MAX_CONTENT_TYPES {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidContentTypes,
            format!("at most {MAX_CONTENT_TYPES} content types"),
        ));
    }
    let mut content_types = Vec::with_capacity(request.content_types.len());
    for raw in &request.content_types {
        let parsed = (raw.len() <= MAX_CONTENT_TYPE_BYTES)
            .then(|| raw.parse::<mime::Mime>().ok())
            .flatten()
            .filter(|m| m.params().next().is_none());
        let Some(parsed) = parsed else {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidContentTypes,
                format!("{raw:?} is not a content type such as image/png"),
            ));
        };
        content_types.push(parsed.essence_str().to_owned());
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let expires = state
        .links
        .expiry(now, request.expires_in_secs)
        .map_err(|message| ApiError::bad_request(ErrorCode::InvalidExpiry, message))?;
    let grant = LinkGrant {
        methods: "POST".into(),
        path: "/files/tus".into(),
        tenant: principal.tenant.clone(),
        expires,
        owner: request.owner.clone(),
        max_bytes: Some(max_bytes),
        content_types: content_types.clone(),
        nonce: Some(uuid::Uuid::new_v4().simple().to_string()),
    };
    let query = state.links.sign(&grant).map_err(link_error)?;
    Ok(HttpResponse::Created().json(UploadLinkResponse {
        url: format!("{}/files/tus?{query}", public_base(&state, &req)),
        method: "POST".into(),
        expires_at: rfc3339::from_unix(expires),
        max_bytes,
        content_types,
        owner: request.owner,
    }))
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(download_link, upload_link))]
pub struct Api;
