//! `POST /rate-limit/check` consumes; `GET /rate-limit/status/{key}` looks.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::auth::{Principal, Scope};
use crate::http::error::ApiError;
use crate::http::quota::{self, RateLimitAnswer};
use crate::http::resource;
use crate::http::AppState;
use crate::rate_limit::Decision;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/rate-limit/check").route(web::post().to(check)))
        .service(resource("/rate-limit/status/{key}").route(web::get().to(status)));
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Check {
    key: String,
    policy: Option<String>,
    #[serde(default = "one", deserialize_with = "crate::whole_number::u64")]
    cost: u64,
}

fn one() -> u64 {
    1
}

#[utoipa::path(post, path = "/rate-limit/check", tag = "rate limits", summary = "Consume from a key's limits", request_body = Check, responses((status = 200, description = "Allowed, with RateLimit headers", body = RateLimitAnswer), (status = 429, description = "Denied, with Retry-After: the same fields in an application/problem+json body (type, title, status, detail, violated_policies)")))]
async fn check(
    principal: Principal,
    state: web::Data<AppState>,
    body: web::Json<Check>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::RateLimit)?;
    let limiter = &state.rate_limiter;
    let policy = body.policy.as_deref().unwrap_or(limiter.default_policy());
    let decision = limiter
        .check(&principal.tenant, policy, &body.key, body.cost)
        .await?;
    if !decision.allowed {
        return Err(ApiError::QuotaExceeded(Box::new(decision)));
    }
    Ok(answer(&decision))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct StatusOptions {
    policy: Option<String>,
}

#[utoipa::path(get, path = "/rate-limit/status/{key}", tag = "rate limits", summary = "A key's limits without consuming", params(("key" = String, Path, description = "The limited key"), StatusOptions), responses((status = 200, description = "Its state", body = RateLimitAnswer)))]
async fn status(
    principal: Principal,
    state: web::Data<AppState>,
    key: web::Path<String>,
    options: web::Query<StatusOptions>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::RateLimit)?;
    let limiter = &state.rate_limiter;
    let policy = options
        .policy
        .as_deref()
        .unwrap_or(limiter.default_policy());
    let decision = limiter.status(&principal.tenant, policy, &key).await?;
    Ok(answer(&decision))
}

fn answer(decision: &Decision) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    quota::insert_headers(&mut response, decision);
    response.json(quota::fields(decision))
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(check, status),
    components(schemas(RateLimitAnswer, quota::LimitAnswer))
)]
pub struct Api;
