//! Sessions: `/session/...` for one session, `/users/{user_id}/sessions`
//! for all of a user's.

use actix_web::http::header::{self, EntityTag};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Principal, Scope};
use crate::error_code::ErrorCode;
use crate::http::error::ApiError;
use crate::http::resource;
use crate::http::AppState;
use crate::sessions::{Expected, Session, SessionError, SessionId};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/session/create").route(web::post().to(create)))
        .service(
            resource("/session/{id}")
                .route(web::get().to(read))
                .route(web::put().to(update))
                .route(web::patch().to(update))
                .route(web::delete().to(revoke)),
        )
        .service(resource("/session/{id}/rotate").route(web::post().to(rotate)))
        .service(
            resource("/users/{user_id}/sessions")
                .route(web::get().to(list))
                .route(web::delete().to(revoke_all)),
        );
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Create {
    user_id: String,
    #[serde(default = "empty_object")]
    data: serde_json::Value,
    #[serde(default, deserialize_with = "crate::whole_number::option_u64")]
    ttl_seconds: Option<u64>,
}

fn empty_object() -> serde_json::Value {
    json!({})
}

#[utoipa::path(post, path = "/session/create", tag = "sessions", summary = "Create a session", request_body = Create, responses((status = 201, description = "The session; ETag its version", body = crate::sessions::Session)))]
async fn create(
    principal: Principal,
    state: web::Data<AppState>,
    body: web::Json<Create>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Sessions)?;
    let session = state
        .sessions
        .create(
            &principal.tenant,
            &body.user_id,
            &body.data,
            body.ttl_seconds,
        )
        .await?;
    Ok(with_version(HttpResponse::Created(), &session))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ReadOptions {
    slide: Option<bool>,
}

#[utoipa::path(get, path = "/session/{id}", tag = "sessions", summary = "Read a session, sliding its idle expiry unless slide=false", params(("id" = String, Path, description = "The session id"), ReadOptions), responses((status = 200, description = "The session", body = crate::sessions::Session)))]
async fn read(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    options: web::Query<ReadOptions>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Sessions)?;
    let id = session_id(&id)?;
    let session = state
        .sessions
        .get(&principal.tenant, &id, options.slide)
        .await?;
    Ok(with_version(HttpResponse::Ok(), &session))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Update {
    data: serde_json::Value,
}

/// Replaces the data, only if the session is still at the version the
/// caller read (`If-Match`), so concurrent writers cannot lose each other's
/// changes without knowing.
#[utoipa::path(method(put, patch), path = "/session/{id}", tag = "sessions", summary = "Replace a session's data (also PATCH); needs If-Match", params(("id" = String, Path, description = "The session id"), ("If-Match" = String, Header, description = "The session version as an ETag, or *")), request_body = Update, responses((status = 200, description = "The session", body = crate::sessions::Session), (status = 412, description = "Stale If-Match"), (status = 428, description = "No If-Match")))]
async fn update(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<Update>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Sessions)?;
    let expected = expected_version(&req)?;
    let id = session_id(&id)?;
    let session = state
        .sessions
        .update(&principal.tenant, &id, expected, &body.data)
        .await?;
    Ok(with_version(HttpResponse::Ok(), &session))
}

#[utoipa::path(post, path = "/session/{id}/rotate", tag = "sessions", summary = "The same session under a new id; the old one ends", params(("id" = String, Path, description = "The session id")), responses((status = 200, description = "The session", body = crate::sessions::Session)))]
async fn rotate(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Sessions)?;
    let id = session_id(&id)?;
    let session = state.sessions.rotate(&principal.tenant, &id).await?;
    Ok(with_version(HttpResponse::Ok(), &session))
}

#[utoipa::path(delete, path = "/session/{id}", tag = "sessions", summary = "End a session", params(("id" = String, Path, description = "The session id")), responses((status = 204, description = "Ended")))]
async fn revoke(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Sessions)?;
    let id = session_id(&id)?;
    state.sessions.delete(&principal.tenant, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/users/{user_id}/sessions", tag = "sessions", summary = "A user's live sessions", params(("user_id" = String, Path, description = "The user id the sessions were created for")), responses((status = 200, description = "The sessions", body = UserSessions)))]
async fn list(
    principal: Principal,
    state: web::Data<AppState>,
    user_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Sessions)?;
    let sessions = state.sessions.list(&principal.tenant, &user_id).await?;
    Ok(HttpResponse::Ok().json(UserSessions {
        user_id: user_id.into_inner(),
        sessions,
    }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct UserSessions {
    user_id: String,
    sessions: Vec<Session>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Revoked {
    user_id: String,
    /// How many sessions ended.
    revoked: u64,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct RevokeAllOptions {
    /// A session to keep, for "log out my other devices".
    except: Option<String>,
}

#[utoipa::path(delete, path = "/users/{user_id}/sessions", tag = "sessions", summary = "End all of a user's sessions, or all but ?except=", params(("user_id" = String, Path, description = "The user id"), RevokeAllOptions), responses((status = 200, description = "How many ended", body = Revoked)))]
async fn revoke_all(
    principal: Principal,
    state: web::Data<AppState>,
    user_id: web::Path<String>,
    options: web::Query<RevokeAllOptions>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Sessions)?;
    let revoked = state
        .sessions
        .revoke_all(&principal.tenant, &user_id, options.except.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(Revoked {
        user_id: user_id.into_inner(),
        revoked,
    }))
}

/// The session as JSON, its version as the ETag for a later `If-Match`.
/// A path's session id, parsed before any store is asked.
fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(raw).map_err(|e| SessionError::from(e).into())
}

fn with_version(mut response: actix_web::HttpResponseBuilder, session: &Session) -> HttpResponse {
    response
        .insert_header(header::ETag(EntityTag::new_strong(
            session.version.to_string(),
        )))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(session)
}

fn expected_version(req: &HttpRequest) -> Result<Expected, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Err(ApiError::PreconditionRequired(
            "send If-Match with the session's ETag (its version) or *".into(),
        ));
    };
    let malformed = || {
        ApiError::bad_request(
            ErrorCode::InvalidIfMatch,
            "If-Match must be one strong ETag such as \"3\", or *",
        )
    };
    let value = value.to_str().map_err(|_| malformed())?.trim();
    if value == "*" {
        return Ok(Expected::Any);
    }
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .and_then(|v| v.parse().ok())
        .map(Expected::Version)
        .ok_or_else(malformed)
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, read, update, rotate, revoke, list, revoke_all))]
pub struct Api;
