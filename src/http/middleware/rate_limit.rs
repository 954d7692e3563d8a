//! Rate limits every authenticated request per API key with the gateway
//! policy, so one noisy caller cannot starve the rest; Pinning Service
//! status polls excepted.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};

use crate::auth::Principal;
use crate::http::error::ApiError;
use crate::http::AppState;

pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let principal = req.extensions().get::<Principal>().cloned();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    // Pinning clients poll a pin's status until it is pinned; those reads
    // are cheap (the Cluster is asked at most every
    // pinning.status_check_interval_ms per CID) and must not use up the
    // budget of the requests that do work.
    let exempt = crate::http::routes::psa::is_status_poll(&req);
    if let (Some(principal), Some(state), false) = (principal, state, exempt) {
        if let Some(policy) = state.rate_limiter.gateway_policy() {
            let admission = state
                .rate_limiter
                .admit(&principal.tenant, policy, &principal.key_id)
                .await;
            let refusal = match admission {
                Ok(None) => None,
                Ok(Some(denial)) => Some(ApiError::QuotaExceeded(Box::new(denial))),
                Err(error) => Some(ApiError::from(error)),
            };
            if let Some(refusal) = refusal {
                return Ok(req.error_response(refusal).map_into_right_body());
            }
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
