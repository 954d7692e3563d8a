//! `GET /health` (the process is alive) and `GET /ready` (every backend answers).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::resource;
use crate::startup::AppState;
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
    /// By backend: postgres, redis, clickhouse, kubo, cluster.
    backends: BTreeMap<&'static str, BackendReadiness>,
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

#[utoipa::path(get, path = "/ready", tag = "operations", summary = "Readiness: each backend's status, latency and version", responses((status = 200, description = "Every backend answers", body = Readiness), (status = 503, description = "A backend is down", body = Readiness)))]
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let backends: BTreeMap<&'static str, BackendReadiness> = state
        .stores
        .check_all()
        .await
        .into_iter()
        .map(|(kind, took, result)| (kind.name(), readiness(took, result)))
        .collect();
    let all_up = backends.values().all(|b| b.status == "up");
    let body = Readiness {
        status: if all_up { "ready" } else { "unavailable" },
        backends,
    };
    if all_up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
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
