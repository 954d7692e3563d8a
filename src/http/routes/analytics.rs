//! `POST /analytics/events` (one event, a JSON array of them, or NDJSON)
//! and the dashboard queries.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;

use crate::auth::{Principal, Scope};
use crate::dashboards::{DashboardQuery, RawQuery, Report};
use crate::http::error::ApiError;
use crate::http::resource;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/analytics/events").route(web::post().to(ingest)));
    for report in [
        Report::UserActivity,
        Report::ChallengeStats,
        Report::FileStats,
        Report::ApiUsage,
    ] {
        cfg.service(
            resource(&format!("/analytics/{}", report.name())).route(
                web::get()
                    .to(move |principal, state, query| dashboard(report, principal, state, query)),
            ),
        );
    }
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
    .map_err(|message| ApiError::bad_request("invalid_query", message))?;
    let answer = state.dashboards.answer(&principal.tenant, query).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("X-Cache", answer.status.header_value()))
        .insert_header((header::AGE, answer.age_secs.to_string()))
        .body(answer.body))
}

/// Answers 202 with the events' ids once they are durable on the gateway;
/// they reach ClickHouse in the next batch.
async fn ingest(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::AnalyticsWrite)?;
    let limit = state.settings.analytics.max_body_bytes;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "the body is over the limit of {limit} bytes (analytics.max_body_bytes); send smaller batches"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let ndjson = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/x-ndjson") || v.starts_with("application/jsonl")
        });
    let ids = state
        .analytics
        .ingest(&principal.tenant, &body, ndjson)
        .await?;
    Ok(HttpResponse::Accepted().json(json!({
        "accepted": ids.len(),
        "event_ids": ids,
    })))
}
