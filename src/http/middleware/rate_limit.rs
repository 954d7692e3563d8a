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
