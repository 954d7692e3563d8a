//! Counts and times every request by route template, never by raw path,
//! and records each authenticated one for the tenant's usage statistics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};

use crate::analytics::RequestRow;
use crate::auth::Principal;
use crate::http::route_template;
use crate::http::AppState;
use crate::metrics::method_label;

pub async fn http_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let response = next.call(req).await?;
    if let Some(state) = state {
        let route = route_template(response.request());
        let elapsed = started.elapsed();
        if let Some(principal) = response.request().extensions().get::<Principal>() {
            state.analytics.api_request(&RequestRow {
                tenant_id: principal.tenant.as_str(),
                route: &route,
                method,
                status: response.status().as_u16(),
                // Rounded up: a request that took any time took a millisecond.
                duration_ms: u32::try_from(elapsed.as_micros().div_ceil(1000)).unwrap_or(u32::MAX),
                api_key_id: &principal.key_id,
            });
        }
        let status = response.status();
        state
            .metrics
            .http_requests
            .with_label_values(&[&*route, method, status.as_str()])
            .inc();
        state
            .metrics
            .http_duration
            .with_label_values(&[&*route, method])
            .observe(elapsed.as_secs_f64());
    }
    Ok(response)
}
