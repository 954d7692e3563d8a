//! Cross-origin requests from browsers, allowed per tenant.
//!
//! A preflight carries no key, so it is answered for an origin that some
//! tenant allows (the tenant a signed link names, when it names one). The
//! real request is authenticated: its answer lets the page read it only
//! when the caller's own tenant allows the origin.

use std::collections::BTreeMap;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpResponse};

use crate::auth::{Principal, TenantId};
use crate::config::BrowserSettings;
use crate::http::error::ApiError;
use crate::http::AppState;

/// Headers a page may read from an answer.
const EXPOSED: &str = "ETag, Content-Range, Content-Length, Content-Disposition, Location, \
     Upload-Offset, Upload-Length, Upload-Defer-Length, Upload-Metadata, Upload-Expires, \
     Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, \
     X-Ipfs-Path, X-Request-Id, X-Cache, RateLimit, RateLimit-Policy, Retry-After";
const METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
/// Longest `Access-Control-Request-Headers` echoed back.
const MAX_REQUESTED_HEADERS: usize = 1024;

/// An allowed origin: exact, or `scheme://*.rest` for any one label before `rest`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginPattern {
    Exact(String),
    Subdomain { scheme: String, suffix: String },
}

impl OriginPattern {
    fn parse(raw: &str) -> Result<Self, String> {
        let lower = raw.to_ascii_lowercase();
        let (scheme, host) = lower
            .split_once("://")
            .filter(|(scheme, _)| *scheme == "http" || *scheme == "https")
            .ok_or_else(|| format!("{raw:?} is no origin: start it with https:// or http://"))?;
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "{raw:?} is no origin: scheme, host and port only, no path"
            ));
        }
        match host.strip_prefix("*.") {
            Some(rest) if !rest.is_empty() && !rest.contains('*') => Ok(Self::Subdomain {
                scheme: scheme.to_owned(),
                suffix: format!(".{rest}"),
            }),
            Some(_) => Err(format!("{raw:?}: a wildcard needs a domain after *.")),
            None if host.contains('*') => Err(format!(
                "{raw:?}: a wildcard may only be the first label (https://*.example.com)"
            )),
            None => Ok(Self::Exact(lower)),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        match self {
            Self::Exact(exact) => *exact == origin,
            Self::Subdomain { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|rest| rest.strip_prefix("://"))
                .and_then(|host| host.strip_suffix(suffix.as_str()))
                .is_some_and(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }),
        }
    }
}

/// Which origins each tenant allows.
#[derive(Debug, Clone, Default)]
pub struct CorsPolicy {
    tenants: BTreeMap<String, Vec<OriginPattern>>,
    max_age_secs: u64,
}

impl CorsPolicy {
    pub fn from_settings(settings: &BrowserSettings) -> Result<Self, String> {
        let mut tenants = BTreeMap::new();
        for (tenant, origins) in &settings.cors_origins {
            TenantId::parse(tenant).map_err(|e| format!("browser.cors_origins: {e}"))?;
            let patterns = origins
                .iter()
                .map(|o| OriginPattern::parse(o))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("browser.cors_origins.{tenant}: {e}"))?;
            tenants.insert(tenant.clone(), patterns);
        }
        Ok(Self {
            tenants,
            max_age_secs: settings.cors_max_age_secs,
        })
    }

    pub fn allows(&self, tenant: &str, origin: &str) -> bool {
        self.tenants
            .get(tenant)
            .is_some_and(|patterns| patterns.iter().any(|p| p.matches(origin)))
    }

    fn allows_any(&self, origin: &str) -> bool {
        self.tenants
            .values()
            .flatten()
            .any(|pattern| pattern.matches(origin))
    }

    /// With a tenant known, that tenant's list; otherwise any tenant's.
    fn allows_for(&self, tenant: Option<&str>, origin: &str) -> bool {
        match tenant {
            Some(tenant) => self.allows(tenant, origin),
            None => self.allows_any(origin),
        }
    }
}

/// The tenant a signed link in the query names (not yet verified: enough
/// to pick the list a preflight is answered from).
fn link_tenant(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "sgw_tenant")
        .map(|(_, value)| value.into_owned())
}

pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let policy = &state.cors;
    let named = link_tenant(req.query_string());
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        if !policy.allows_for(named.as_deref(), &origin) {
            let refused = ApiError::OriginNotAllowed(format!(
                "origin {origin} is not allowed; a tenant lists its origins in browser.cors_origins"
            ));
            return Ok(req.error_response(refused).map_into_right_body());
        }
        let mut answer = HttpResponse::NoContent();
        answer
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.as_str()))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, METHODS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, policy.max_age_secs))
            .insert_header((
                header::VARY,
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ));
        if let Some(requested) = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .filter(|v| v.len() <= MAX_REQUESTED_HEADERS)
        {
            answer.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone()));
        }
        return Ok(req.into_response(answer.finish()).map_into_right_body());
    }
    let mut response = next.call(req).await?;
    let tenant = response
        .request()
        .extensions()
        .get::<Principal>()
        .map(|p| p.tenant.as_str().to_owned())
        .or(named);
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if policy.allows_for(tenant.as_deref(), &origin) {
        if let Ok(value) = HeaderValue::from_str(&origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED),
            );
        }
    }
    Ok(response.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> CorsPolicy {
        CorsPolicy::from_settings(&BrowserSettings {
            cors_origins: [(
                "acme".to_owned(),
                origins.iter().map(|o| o.to_string()).collect(),
            )]
            .into(),
            cors_max_age_secs: 600,
            console: false,
        })
        .unwrap()
    }

    #[test]
    fn exact_origins_match_whole_and_case_blind() {
        let policy = policy(&["https://app.example.com"]);
        assert!(policy.allows("acme", "https://app.example.com"));
        assert!(policy.allows("acme", "HTTPS://App.Example.com"));
        assert!(!policy.allows("acme", "https://app.example.com:8443"));
        assert!(!policy.allows("acme", "http://app.example.com"));
        assert!(!policy.allows("acme", "https://app.example.com.evil.net"));
        assert!(!policy.allows("other", "https://app.example.com"));
    }

    #[test]
    fn a_wildcard_stands_for_one_label() {
        let policy = policy(&["https://*.example.com"]);
        assert!(policy.allows("acme", "https://app.example.com"));
        assert!(!policy.allows("acme", "https://example.com"));
        assert!(!policy.allows("acme", "https://a.b.example.com"));
        assert!(!policy.allows("acme", "https://evilexample.com"));
        assert!(!policy.allows("acme", "http://app.example.com"));
    }

    #[test]
    fn malformed_origins_are_configuration_errors() {
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "https://a.*.example.com",
            "https://*.",
            "ftp://x",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn preflights_use_the_tenant_a_link_names() {
        assert_eq!(
            link_tenant("sgw_kid=k&sgw_tenant=acme&x=1").as_deref(),
            Some("acme")
        );
        assert_eq!(link_tenant("x=1"), None);
    }
}
