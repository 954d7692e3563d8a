//! The HTTP layer: routes by resource, middleware and the error mapping.

mod bounds;
pub mod cors;
pub mod error;
mod form;
pub mod idle;
pub mod middleware;
pub mod openapi;
mod quota;
pub mod routes;

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, App, HttpRequest, HttpResponse};

use crate::startup::AppState;
use error::{extractors, ApiError};

/// The whole application; `main` and the tests serve the same one.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let json_limit = state.settings.server.json_body_limit_bytes;
    let cache_settings = state.settings.cache.clone();
    let max_submission_bytes = state.settings.challenges.max_submission_bytes;
    let settings = state.settings.clone();
    App::new()
        .app_data(state)
        .app_data(extractors::json_config(json_limit))
        .app_data(extractors::query_config())
        .app_data(extractors::path_config())
        // No answer may be sniffed into another type than it declares
        // (a file uploaded as text rendered as HTML, say).
        .wrap(from_fn(middleware::psa_errors::psa_errors))
        .wrap(DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")))
        .wrap(from_fn(middleware::http_metrics::http_metrics))
        .wrap(from_fn(middleware::request_id::request_id))
        // Outermost: even a refusal must carry the CORS headers, or the
        // page cannot read why it was refused.
        .wrap(from_fn(cors::cors))
        // Open to all: liveness, readiness and metrics.
        .configure(routes::health::configure)
        .configure(routes::metrics::configure)
        .configure(|cfg| openapi::configure(cfg, &settings))
        // Everything else needs an API key.
        .service(
            web::scope("")
                // The last wrap runs first: authenticate, then rate limit.
                .wrap(from_fn(middleware::rate_limit::rate_limit))
                .wrap(from_fn(middleware::authenticate::authenticate))
                .configure(routes::api_keys::configure)
                .configure(routes::analytics::configure)
                // Before /files/{cid}, which would take /files/tus.
                .configure(routes::tus::configure)
                .configure(routes::links::configure)
                .configure(routes::files::configure)
                .configure(routes::psa::configure)
                .configure(routes::sessions::configure)
                .configure(routes::rate_limit::configure)
                .configure(|cfg| routes::cache::configure(cfg, &cache_settings))
                .configure(|cfg| routes::challenges::configure(cfg, max_submission_bytes)),
        )
        .default_service(web::to(no_route))
}

/// A resource whose unsupported methods answer 405 in the common error shape.
/// Its path is remembered, so a test can hold the routes against the OpenAPI
/// document.
pub fn resource(path: &str) -> actix_web::Resource {
    registered()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.to_owned());
    web::resource(path).default_service(web::to(method_not_allowed))
}

fn registered() -> &'static std::sync::Mutex<std::collections::BTreeSet<String>> {
    static PATHS: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<String>>> =
        std::sync::OnceLock::new();
    PATHS.get_or_init(Default::default)
}

/// Every path given to [`resource`] in this process, as actix spells it.
pub fn registered_paths() -> Vec<String> {
    registered()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allow = req
        .match_pattern()
        .and_then(|pattern| openapi::allowed_methods(&pattern));
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        allow,
    })
}
