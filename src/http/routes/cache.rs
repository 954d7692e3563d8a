//! The key/value cache: `POST /cache/set`, `GET /cache/get/{key}`,
//! `DELETE /cache/{key}`. Keys may hold any characters, `/` included.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{Principal, Scope};
use crate::config::CacheSettings;
use crate::http::error::{extractors, ApiError};
use crate::http::resource;
use crate::http::AppState;

/// Room in a set's body for the key and the JSON around the value.
const SET_BODY_OVERHEAD_BYTES: usize = 4096;

/// `settings` sizes the body limit of a set: values may be larger than other
/// JSON bodies, and a value over `cache.max_value_bytes` should hear of that
/// limit rather than the general one.
pub fn configure(cfg: &mut web::ServiceConfig, settings: &CacheSettings) {
    let set_body_limit =
        settings.max_value_bytes + settings.max_key_bytes + SET_BODY_OVERHEAD_BYTES;
    cfg.service(
        resource("/cache/set")
            .app_data(extractors::json_config(set_body_limit))
            .route(web::post().to(set))
            .route(web::delete().to(|p, s| delete(p, s, "set".to_owned()))),
    )
    // Longest match first: `/cache/get/x` is a read, and a delete there
    // removes the key `get/x`.
    .service(
        resource("/cache/get/{key:.+}")
            .route(web::get().to(get))
            .route(
                web::delete().to(|p, s, key: web::Path<String>| delete(p, s, format!("get/{key}"))),
            ),
    )
    .service(
        resource("/cache/{key:.+}")
            .route(web::delete().to(|p, s, key: web::Path<String>| delete(p, s, key.into_inner()))),
    );
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Set {
    key: String,
    value: serde_json::Value,
    #[serde(default, deserialize_with = "crate::whole_number::option_u64")]
    ttl_seconds: Option<u64>,
}

#[utoipa::path(post, path = "/cache/set", tag = "cache", summary = "Store a JSON value under a key", request_body = Set, responses((status = 200, description = "Stored, with its TTL", body = Stored)))]
async fn set(
    principal: Principal,
    state: web::Data<AppState>,
    body: web::Json<Set>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Cache)?;
    let ttl = state
        .cache
        .set(&principal.tenant, &body.key, &body.value, body.ttl_seconds)
        .await?;
    Ok(HttpResponse::Ok().json(Stored {
        key: body.key.clone(),
        ttl_seconds: ttl,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Stored {
    key: String,
    /// The expiry used.
    ttl_seconds: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Entry {
    key: String,
    value: serde_json::Value,
    /// Seconds left.
    ttl_seconds: u64,
}

#[utoipa::path(get, path = "/cache/get/{key}", tag = "cache", summary = "Read a value and its seconds left", params(("key" = String, Path, description = "The key; any characters, / included")), responses((status = 200, description = "The value", body = Entry)))]
async fn get(
    principal: Principal,
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Cache)?;
    let cached = state.cache.get(&principal.tenant, &key).await?;
    Ok(HttpResponse::Ok().json(Entry {
        key: key.into_inner(),
        value: cached.value,
        ttl_seconds: cached.ttl_seconds,
    }))
}

#[utoipa::path(delete, path = "/cache/{key}", tag = "cache", summary = "Delete a key", params(("key" = String, Path, description = "The key; any characters, / included")), responses((status = 204, description = "Deleted")))]
async fn delete(
    principal: Principal,
    state: web::Data<AppState>,
    key: String,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Cache)?;
    state.cache.delete(&principal.tenant, &key).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(set, get, delete))]
pub struct Api;
