//! `POST /analytics/events` (one event, a JSON array of them, or NDJSON)
//! and the dashboard queries.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::{Principal, Scope};
use crate::dashboards::{DashboardQuery, RawQuery, Report};
use crate::error_code::ErrorCode;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::http::{idle, resource};
use std::time::Duration;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/analytics/events").route(web::post().to(ingest)))
        .service(resource("/analytics/user-activity").route(web::get().to(user_activity)))
        .service(resource("/analytics/challenge-stats").route(web::get().to(challenge_stats)))
        .service(resource("/analytics/file-stats").route(web::get().to(file_stats)))
        .service(resource("/analytics/api-usage").route(web::get().to(api_usage)));
}

#[utoipa::path(get, path = "/analytics/user-activity", tag = "analytics", summary = "Events by type per bucket; total counts each event once", params(RawQuery), responses((status = 200, description = "The report: range, interval, buckets (one per interval), total", body = DashboardAnswer, headers(("X-Cache" = String, description = "HIT, MISS or STALE"), ("Age" = u64, description = "Seconds since the answer was computed")))))]
async fn user_activity(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<RawQuery>,
) -> Result<HttpResponse, ApiError> {
    dashboard(Report::UserActivity, principal, state, query).await
}

#[utoipa::path(get, path = "/analytics/challenge-stats", tag = "analytics", summary = "Attempts, completions, completion rate, runtime median and p90, unique users", params(RawQuery), responses((status = 200, description = "The report: range, interval, buckets (one per interval), total", body = DashboardAnswer, headers(("X-Cache" = String, description = "HIT, MISS or STALE"), ("Age" = u64, description = "Seconds since the answer was computed")))))]
async fn challenge_stats(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<RawQuery>,
) -> Result<HttpResponse, ApiError> {
    dashboard(Report::ChallengeStats, principal, state, query).await
}

#[utoipa::path(get, path = "/analytics/file-stats", tag = "analytics", summary = "Uploads, downloads and their bytes per bucket", params(RawQuery), responses((status = 200, description = "The report: range, interval, buckets (one per interval), total", body = DashboardAnswer, headers(("X-Cache" = String, description = "HIT, MISS or STALE"), ("Age" = u64, description = "Seconds since the answer was computed")))))]
async fn file_stats(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<RawQuery>,
) -> Result<HttpResponse, ApiError> {
    dashboard(Report::FileStats, principal, state, query).await
}

#[utoipa::path(get, path = "/analytics/api-usage", tag = "analytics", summary = "The tenant's requests, errors and latency by route and method", params(RawQuery), responses((status = 200, description = "The report: range, interval, buckets (one per interval), total", body = DashboardAnswer, headers(("X-Cache" = String, description = "HIT, MISS or STALE"), ("Age" = u64, description = "Seconds since the answer was computed")))))]
async fn api_usage(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<RawQuery>,
) -> Result<HttpResponse, ApiError> {
    dashboard(Report::ApiUsage, principal, state, query).await
}

/// A dashboard query, answered from the cache when it can be: `X-Cache`
/// says how (HIT, MISS, STALE) and `Age` how old the answer is.
async fn dashboard(
    report: Report,
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<RawQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::AnalyticsRead)?;
    let query = DashboardQuery::parse(
        report,
        query.into_inner(),
        time::OffsetDateTime::now_utc(),
        state.dashboards.settings(),
    )
    .map_err(|message| ApiError::bad_request(ErrorCode::InvalidQuery, message))?;
    let answer = state.dashboards.answer(&principal.tenant, query).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("X-Cache", answer.status.header_value()))
        .insert_header((header::AGE, answer.age_secs.to_string()))
        .body(answer.body))
}

/// Answers 202 with the events' ids once they are durable on the gateway;
/// they reach ClickHouse in the next batch.
#[utoipa::path(post, path = "/analytics/events", tag = "analytics", summary = "Ingest one event, a JSON array, or NDJSON; 202 once durable", request_body(description = "An event {event_id, event_type, user_id, timestamp, properties}, an array of them, or NDJSON (one event per line)", content((serde_json::Value = "application/json"), (String = "application/x-ndjson"))), responses((status = 202, description = "The ids of the accepted events", body = Accepted)))]
async fn ingest(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::AnalyticsWrite)?;
    let ndjson = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/x-ndjson") || v.starts_with("application/jsonl")
        });
    let ids = state
        .analytics
        .ingest(
            &principal.tenant,
            idle::request_body(
                payload,
                Duration::from_secs(state.settings.server.idle_timeout_secs),
            ),
            ndjson,
            req.headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            state.admission.body_memory(),
        )
        .await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        accepted: ids.len(),
        event_ids: ids,
    }))
}

/// Events durable on the gateway, on their way to ClickHouse.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Accepted {
    accepted: usize,
    /// In the order sent; assigned by the gateway where an event had none.
    event_ids: Vec<uuid::Uuid>,
}

/// The frame of every dashboard answer; the fields of a bucket and of the
/// total depend on the report (see each endpoint).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DashboardAnswer {
    /// user-activity, challenge-stats, file-stats or api-usage.
    report: String,
    range: DashboardRange,
    /// hour or day.
    interval: String,
    /// One per interval of the range, oldest first, each with its `start`.
    buckets: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Over the whole range: a count for user-activity, an object otherwise.
    total: serde_json::Value,
    /// More rows than dashboards.max_rows: the buckets are cut.
    truncated: bool,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct DashboardRange {
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(ingest, user_activity, challenge_stats, file_stats, api_usage))]
pub struct Api;
