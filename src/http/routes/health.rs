//! `GET /health` (the process is alive) and `GET /ready` (every backend answers).

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::http::resource;
use crate::startup::AppState;
use crate::stores::{HealthDetail, StoreError, StoreKind};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health").route(web::get().to(health)))
        .service(resource("/ready").route(web::get().to(ready)));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    backends: BTreeMap<&'static str, BackendReadiness>,
}

#[derive(Serialize)]
struct BackendReadiness {
    status: &'static str,
    latency_ms: f64,
    #[serde(flatten)]
    detail: HealthDetail,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let stores = &state.stores;
    // All five are asked at once; each answers within its own timeout.
    let (postgres, redis, clickhouse, kubo, cluster) = tokio::join!(
        timed(stores.postgres.health()),
        timed(stores.redis.health()),
        timed(stores.clickhouse.health()),
        timed(stores.kubo.health()),
        timed(stores.cluster.health()),
    );
    let backends: BTreeMap<&'static str, BackendReadiness> = StoreKind::ALL
        .into_iter()
        .zip([postgres, redis, clickhouse, kubo, cluster])
        .map(|(kind, readiness)| (kind.name(), readiness))
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

async fn timed(
    check: impl std::future::Future<Output = Result<HealthDetail, StoreError>>,
) -> BackendReadiness {
    let started = Instant::now();
    let result = check.await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
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
