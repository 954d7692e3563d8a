//! `GET /auth/whoami` for any key, and key management within the caller's
//! tenant for keys with the `admin` scope.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::auth::{ApiKeyInfo, Principal, Scope};
use crate::error_code::ErrorCode;
use crate::http::error::ApiError;
use crate::http::resource;
use crate::http::AppState;

/// Bound on a key's display name.
pub(crate) const MAX_NAME_CHARS: usize = 200;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/whoami").route(web::get().to(whoami)))
        .service(
            resource("/admin/keys")
                .route(web::get().to(list_keys))
                .route(web::post().to(create_key)),
        )
        .service(resource("/admin/keys/{id}").route(web::delete().to(revoke_key)));
}

#[utoipa::path(get, path = "/auth/whoami", tag = "auth", summary = "The calling key's tenant, id and scopes", responses((status = 200, description = "The key", body = WhoAmI)))]
async fn whoami(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(WhoAmI {
        tenant: principal.tenant.as_str().to_owned(),
        key_id: principal.key_id,
        scopes: principal
            .scopes
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
    })
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct WhoAmI {
    tenant: String,
    key_id: String,
    scopes: Vec<String>,
}

/// A new key: `key` is the secret, shown this once.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Issued {
    key: String,
    #[serde(flatten)]
    info: ApiKeyInfo,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Keys {
    keys: Vec<ApiKeyInfo>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    #[serde(default)]
    name: String,
    scopes: Vec<String>,
}

#[utoipa::path(post, path = "/admin/keys", tag = "auth", summary = "Create an API key in the caller's tenant (admin)", request_body = CreateKey, responses((status = 201, description = "The key, shown once", body = Issued)))]
async fn create_key(
    principal: Principal,
    state: web::Data<AppState>,
    body: web::Json<CreateKey>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Admin)?;
    let body = body.into_inner();
    if body.name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidName,
            format!("name is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if body.scopes.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidScopes,
            "scopes must not be empty",
        ));
    }
    let scopes = Scope::parse_list(&body.scopes.join(","))
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidScopes, e.to_string()))?;
    let issued = state
        .api_keys
        .create(&principal.tenant, &scopes, &body.name)
        .await?;
    Ok(HttpResponse::Created().json(Issued {
        key: issued.key,
        info: issued.info,
    }))
}

#[utoipa::path(get, path = "/admin/keys", tag = "auth", summary = "The tenant's keys, never their secrets (admin)", responses((status = 200, description = "The keys", body = Keys)))]
async fn list_keys(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Admin)?;
    let keys = state.api_keys.list(&principal.tenant).await?;
    Ok(HttpResponse::Ok().json(Keys { keys }))
}

#[utoipa::path(delete, path = "/admin/keys/{id}", tag = "auth", summary = "Revoke a key of the tenant (admin)", params(("id" = String, Path, description = "The key id")), responses((status = 204, description = "Revoked")))]
async fn revoke_key(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Admin)?;
    let id = id.into_inner();
    if state.api_keys.revoke(&id, Some(&principal.tenant)).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!(
            "no live key {id} in this tenant"
        )))
    }
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(whoami, create_key, list_keys, revoke_key))]
pub struct Api;
