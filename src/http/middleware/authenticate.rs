//! Resolves the API key of a request into a [`Principal`] before any handler
//! runs; requests without a valid key end here with 401.

use std::future::{ready, Ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};

use crate::auth::{AuthError, Principal, Scope};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::links::{LinkError, LinkGrant};

pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req
            .error_response(ApiError::Internal("application state missing".into()))
            .map_into_right_body());
    };
    // OPTIONS describes what a path can do (tus asks it); it reads nothing.
    if req.method() == actix_web::http::Method::OPTIONS {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let outcome = match presented_key(req.headers()) {
        Some(key) => state
            .api_keys
            .authenticate(&key)
            .await
            .map(|principal| (principal, None))
            .map_err(ApiError::from),
        None => match presented_link(&req, &state) {
            Ok(Some(grant)) => Ok((link_principal(&grant, req.query_string()), Some(grant))),
            Ok(None) => Err(ApiError::from(AuthError::MissingKey)),
            Err(error) => Err(ApiError::LinkRefused(error.to_string())),
        },
    };
    match outcome {
        Ok((principal, grant)) => {
            req.extensions_mut().insert(principal);
            if let Some(grant) = grant {
                req.extensions_mut().insert(grant);
            }
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(error) => Ok(req.error_response(error).map_into_right_body()),
    }
}

/// The grant of a signed link in the query, checked against this request.
fn presented_link(req: &ServiceRequest, state: &AppState) -> Result<Option<LinkGrant>, LinkError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    state
        .links
        .verify(req.method().as_str(), req.path(), req.query_string(), now)
}

/// A link acts for its tenant with the one scope its methods need. Its
/// signature names it in rate limits, so each link has a budget of its own.
fn link_principal(grant: &LinkGrant, query: &str) -> Principal {
    let signature: String = url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "sgw_sig")
        .map(|(_, value)| value.chars().take(16).collect())
        .unwrap_or_default();
    let scope = if grant.opens("GET") {
        Scope::FilesRead
    } else {
        Scope::FilesWrite
    };
    Principal {
        tenant: grant.tenant.clone(),
        key_id: format!("link:{signature}"),
        scopes: vec![scope],
    }
}

impl FromRequest for LinkGrant {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<LinkGrant>()
                .cloned()
                .ok_or_else(|| ApiError::Internal("no link grant on this request".into())),
        )
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
