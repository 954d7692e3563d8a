//! The OpenAPI document, generated from the handlers' annotations, served at
//! `/openapi.json` (and read by the page at `/docs`).
//!
//! What every operation shares is added here rather than on each handler:
//! the API key schemes, and the error responses of the one error type.

use std::sync::OnceLock;

use actix_web::{web, HttpResponse};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::resource;
use super::routes;
use crate::config::Settings;
use crate::error_code::ErrorCode;

/// Paths anyone may call; every other one needs an API key.
pub const OPEN_PATHS: &[&str] = &["/health", "/ready", "/metrics", "/openapi.json"];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "storage-gateway",
        description = "One gateway in front of IPFS (Kubo and IPFS Cluster), PostgreSQL, Redis and ClickHouse: files, sessions, rate limits, a key/value cache, analytics events and dashboards, challenges and leaderboards."
    ),
    paths(openapi_json),
    components(schemas(ErrorResponse, ErrorDetail)),
    modifiers(&Shared)
)]
struct Root;

/// Every error answer: `{"error": {...}}`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ErrorResponse {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    #[schema(schema_with = error_code_schema)]
    code: String,
    /// What was wrong, for a person.
    message: String,
    /// With 503: the store that is down (postgres, redis, clickhouse, kubo, cluster).
    backend: Option<String>,
    /// With 400 invalid_events: each bad event by index and why.
    events: Option<Vec<serde_json::Value>>,
}

/// The error-code table as a string enum, its description one line per
/// code: code, status, meaning.
fn error_code_schema() -> Object {
    let mut description =
        String::from("Stable and machine-readable; one HTTP status per code:\n\n");
    for code in ErrorCode::ALL {
        description.push_str(&format!(
            "- `{}` ({}): {}\n",
            code.as_str(),
            code.status(),
            code.description()
        ));
    }
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.as_str())))
        .description(Some(description))
        .build()
}

/// The whole document, built once.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = Root::openapi();
        for part in [
            routes::health::Api::openapi(),
            routes::metrics::Api::openapi(),
            routes::api_keys::Api::openapi(),
            routes::tus::Api::openapi(),
            routes::files::Api::openapi(),
            routes::psa::Api::openapi(),
            routes::links::Api::openapi(),
            routes::analytics::Api::openapi(),
            routes::sessions::Api::openapi(),
            routes::rate_limit::Api::openapi(),
            routes::cache::Api::openapi(),
            routes::challenges::Api::openapi(),
        ] {
            document.merge(part);
        }
        Shared.modify(&mut document);
        document
    })
}

/// The methods the document gives a path, as an `Allow` header value,
/// keyed by the path as actix spells it (`{key:.+}` is `{key}` there).
pub fn allowed_methods(actix_path: &str) -> Option<&'static str> {
    static ALLOW: OnceLock<std::collections::HashMap<String, String>> = OnceLock::new();
    ALLOW
        .get_or_init(|| {
            document()
                .paths
                .paths
                .iter()
                .map(|(path, item)| {
                    let methods: Vec<&str> = [
                        ("GET", item.get.is_some()),
                        ("HEAD", item.head.is_some()),
                        ("POST", item.post.is_some()),
                        ("PUT", item.put.is_some()),
                        ("PATCH", item.patch.is_some()),
                        ("DELETE", item.delete.is_some()),
                    ]
                    .into_iter()
                    .filter_map(|(name, present)| present.then_some(name))
                    .collect();
                    (path.clone(), methods.join(", "))
                })
                .collect()
        })
        .get(&document_path(actix_path))
        .map(String::as_str)
}

/// `/cache/get/{key:.+}` as the document writes it: `/cache/get/{key}`.
fn document_path(actix_path: &str) -> String {
    let mut out = String::with_capacity(actix_path.len());
    // Inside `{...}`: whether the name has ended and its pattern is skipped.
    let mut brace: Option<bool> = None;
    for c in actix_path.chars() {
        match (brace, c) {
            (None, '{') => {
                brace = Some(false);
                out.push(c);
            }
            (Some(_), '}') => {
                brace = None;
                out.push(c);
            }
            (Some(false), ':') => brace = Some(true),
            (Some(true), _) => {}
            _ => out.push(c),
        }
    }
    out
}

/// The document as this gateway serves it: with the bounds its settings
/// enforce.
pub fn document_for(settings: &Settings) -> serde_json::Value {
    let mut document =
        serde_json::to_value(document()).expect("the OpenAPI document serialises to JSON");
    super::bounds::apply(&mut document, settings);
    document
}

pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    let document = web::Data::new(ServedDocument(document_for(settings)));
    cfg.service(
        resource("/openapi.json")
            .app_data(document.clone())
            .route(web::get().to(openapi_json)),
    );
    routes::pages::configure(cfg, settings.browser.console);
}

/// The document with this gateway's bounds, built once at start-up.
struct ServedDocument(serde_json::Value);

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value)))]
async fn openapi_json(document: web::Data<ServedDocument>) -> HttpResponse {
    HttpResponse::Ok().json(&document.0)
}

/// Adds the security schemes, and to each operation its key requirement
/// and the error responses it can give.
struct Shared;

impl Modify for Shared {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sgw_<id>_<secret>")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        for (path, item) in document.paths.paths.iter_mut() {
            let open = OPEN_PATHS.contains(&path.as_str());
            // The Pinning Service routes answer failures in its own shape.
            let schema = if path.starts_with("/psa/") {
                "PinFailure"
            } else {
                "ErrorResponse"
            };
            let error = |description: &str| -> RefOr<Response> {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name(schema)))
                            .build(),
                    )
                    .into()
            };
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.head,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let responses = &mut operation.responses.responses;
                if !open {
                    operation.security = Some(vec![
                        utoipa::openapi::security::SecurityRequirement::new(
                            "bearer",
                            Vec::<String>::new(),
                        ),
                        utoipa::openapi::security::SecurityRequirement::new(
                            "api_key",
                            Vec::<String>::new(),
                        ),
                    ]);
                    responses.entry("400".into()).or_insert_with(|| {
                        error("Malformed input; the message says what is wrong")
                    });
                    responses
                        .entry("401".into())
                        .or_insert_with(|| error("No valid API key"));
                    responses
                        .entry("403".into())
                        .or_insert_with(|| error("The key lacks the scope"));
                    responses
                        .entry("404".into())
                        .or_insert_with(|| error("Nothing of that name in this tenant"));
                    responses
                        .entry("413".into())
                        .or_insert_with(|| error("A body or value over its limit"));
                    let takes_json = operation
                        .request_body
                        .as_ref()
                        .is_some_and(|body| body.content.contains_key("application/json"));
                    if takes_json {
                        responses.entry("415".into()).or_insert_with(|| {
                            error("The body is not sent as Content-Type: application/json")
                        });
                    }
                    responses.entry("429".into()).or_insert_with(|| {
                        error(
                            "The key's gateway rate limit is exhausted (application/problem+json)",
                        )
                    });
                }
                responses.entry("503".into()).or_insert_with(|| {
                    error("A backend is down or did not answer in time; backend names it")
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actix_patterns_map_to_document_paths() {
        assert_eq!(document_path("/cache/get/{key:.+}"), "/cache/get/{key}");
        assert_eq!(
            document_path("/files/{cid}/download"),
            "/files/{cid}/download"
        );
        assert_eq!(document_path("/a:b/{x:[0-9]+}/c"), "/a:b/{x}/c");
    }

    #[test]
    fn the_default_bounds_apply_to_the_document() {
        let settings = Settings::load(None).unwrap();
        let served = document_for(&settings);
        let key = &served["components"]["schemas"]["Set"]["properties"]["key"];
        assert_eq!(key["pattern"], "^[\\x20-\\x7e]{1,512}$");
        let id = &served["paths"]["/session/{id}"]["get"]["parameters"][0]["schema"];
        assert_eq!(id["pattern"], "^[0-9a-f]{64}$");
    }

    #[test]
    fn allow_lists_the_documented_methods() {
        assert_eq!(allowed_methods("/files/{cid}"), Some("GET, DELETE"));
        assert_eq!(allowed_methods("/files/{cid}/download"), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/no/such/path"), None);
    }
}
