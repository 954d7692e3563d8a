//! Resolves the API key of a request into a [`Principal`] before any handler
//! runs; requests without a valid key end here with 401.

use std::future::{ready, Ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};

use crate::auth::{AuthError, Principal};
use crate::http::error::ApiError;
use crate::startup::AppState;

pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let outcome = match presented_key(req.headers()) {
        None => Err(AuthError::MissingKey),
        Some(key) => match req.app_data::<web::Data<AppState>>() {
            Some(state) => state.api_keys.authenticate(&key).await,
            None => {
                return Ok(req
                    .error_response(ApiError::Internal("application state missing".into()))
                    .map_into_right_body())
            }
        },
    };
    match outcome {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(error) => Ok(req
            .error_response(ApiError::from(error))
            .map_into_right_body()),
    }
}

/// `Authorization: Bearer KEY` or `X-API-Key: KEY`.
pub fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, key) = value.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim().to_owned());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            req.extensions().get::<Principal>().cloned().ok_or_else(|| {
                ApiError::Internal("route is outside the authenticated scope".into())
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            actix_web::http::header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
        map
    }

    #[test]
    fn reads_bearer_and_x_api_key() {
        assert_eq!(
            presented_key(&headers("authorization", "Bearer abc")).as_deref(),
            Some("abc")
        );
        assert_eq!(
            presented_key(&headers("authorization", "bearer  abc ")).as_deref(),
            Some("abc")
        );
        assert_eq!(
            presented_key(&headers("x-api-key", "abc")).as_deref(),
            Some("abc")
        );
        assert_eq!(presented_key(&headers("authorization", "Basic abc")), None);
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }
}
