//! `GET /health` (the process is alive) and `GET /ready` (every backend answers).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Scope;
use crate::http::middleware::authenticate::presented_key;
use crate::http::resource;
use crate::http::AppState;
use crate::stores::{HealthDetail, StoreError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health").route(web::get().to(health)))
        .service(resource("/ready").route(web::get().to(ready)));
}

#[utoipa::path(get, path = "/health", tag = "operations", summary = "Liveness: the process answers", responses((status = 200, description = "Alive", body = Alive)))]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Alive { status: "ok" })
}

#[derive(Serialize, ToSchema)]
struct Alive {
    /// Always `ok`.
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
struct Readiness {
    /// `ready` when every backend is up, else `unavailable`.
    status: &'static str,
    /// By backend: postgres, redis, clickhouse, kubo, cluster. Only for a
    /// key with the admin scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    backends: Option<BTreeMap<&'static str, BackendReadiness>>,
}

#[derive(Serialize, ToSchema)]
struct BackendReadiness {
    /// `up` or `down`.
    status: &'static str,
    latency_ms: f64,
    #[serde(flatten)]
    detail: HealthDetail,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[utoipa::path(get, path = "/ready", tag = "operations", summary = "Readiness: whether every backend answers; each backend's status, latency and version with an admin key", params(("Authorization" = Option<String>, Header, description = "Bearer with an admin key, for the detail")), responses((status = 200, description = "Every backend answers (the detail with an admin key)", body = Readiness), (status = 503, description = "A backend is down (the detail with an admin key)", body = Readiness)))]
async fn ready(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let checks = state.stores.recent_checks().await;
    let all_up = checks.iter().all(|(_, _, result)| result.is_ok());
    let status = if all_up { "ready" } else { "unavailable" };
    let mut response = if all_up {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    // Versions, latencies and errors help an attacker as much as an operator.
    let backends = is_admin(&state, &req).await.then(|| {
        checks
            .iter()
            .map(|(kind, took, result)| (kind.name(), readiness(*took, result.clone())))
            .collect()
    });
    response.json(Readiness { status, backends })
}

/// Whether the request carries a valid key with the admin scope. Any
/// failure (no key, a bad one, Postgres down) just means no detail.
async fn is_admin(state: &AppState, req: &HttpRequest) -> bool {
    let Some(key) = presented_key(req.headers()) else {
        return false;
    };
    state
        .api_keys
        .authenticate(&key)
        .await
        .is_ok_and(|principal| principal.scopes.contains(&Scope::Admin))
}

fn readiness(took: Duration, result: Result<HealthDetail, StoreError>) -> BackendReadiness {
    let latency_ms = (took.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    match result {
        Ok(detail) => BackendReadiness {
            status: "up",
            latency_ms,
            detail,
            error: None,
        },
        Err(error) => BackendReadiness {
            status: "down",
            latency_ms,
            detail: HealthDetail::default(),
            error: Some(error.to_string()),
        },
    }
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, ready))]
pub struct Api;
