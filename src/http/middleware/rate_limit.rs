//! Rate limits every authenticated request per API key with the gateway
//! policy, so one noisy caller cannot starve the rest.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};

use crate::auth::Principal;
use crate::http::error::ApiError;
use crate::startup::AppState;

pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let principal = req.extensions().get::<Principal>().cloned();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    if let (Some(principal), Some(state)) = (principal, state) {
        if let Some(policy) = state.rate_limiter.gateway_policy() {
            let decision = state
                .rate_limiter
                .check(&principal.tenant, policy, &principal.key_id, 1)
                .await;
            let refusal = match decision {
                Ok(decision) if decision.allowed => None,
                Ok(decision) => Some(ApiError::QuotaExceeded(Box::new(decision))),
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
