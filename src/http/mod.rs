//! The HTTP layer: routes by resource, middleware and the error mapping.

mod bounds;
pub mod cors;
pub mod error;
mod form;
pub mod idle;
pub mod middleware;
pub mod openapi;
mod page_limit;
mod quota;
pub mod routes;
mod state;

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, App, HttpRequest, HttpResponse};

use error::{extractors, ApiError};
pub use state::AppState;

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
                // The router tries resources in this order, and other
                // services call these three on every request of theirs;
                // their paths share no prefix with the rest.
                .configure(routes::sessions::configure)
                .configure(routes::rate_limit::configure)
                .configure(|cfg| routes::cache::configure(cfg, &cache_settings))
                .configure(routes::api_keys::configure)
                .configure(routes::analytics::configure)
                // Before /files/{cid}, which would take /files/tus.
                .configure(routes::tus::configure)
                .configure(routes::links::configure)
                .configure(routes::files::configure)
                .configure(routes::psa::configure)
                .configure(|cfg| routes::challenges::configure(cfg, max_submission_bytes)),
        )
        .default_service(web::to(no_route))
}

/// A resource whose unsupported methods answer 405 in the common error shape.
/// Its path is remembered, so a test can hold the routes against the OpenAPI
/// document, and travels with every request it serves as a
/// [`RouteTemplate`].
pub fn resource(path: &str) -> actix_web::Resource {
    let template = {
        let mut paths = registered().lock().unwrap_or_else(|e| e.into_inner());
        match paths.get(path) {
            Some(known) => *known,
            // Once per distinct path, of which there are a few dozen.
            None => {
                let leaked: &'static str = Box::leak(path.to_owned().into_boxed_str());
                paths.insert(leaked);
                leaked
            }
        }
    };
    web::resource(path)
        .app_data(RouteTemplate(template))
        .default_service(web::to(method_not_allowed))
}

/// The route template of the resource that served a request, such as
/// `/session/{id}`.
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str);

/// The route template a request matched, for metric labels and logs: read
/// from the resource that served it, else (a request refused before routing,
/// a page) matched against the router again.
pub fn route_template(req: &HttpRequest) -> std::borrow::Cow<'static, str> {
    match req.app_data::<RouteTemplate>() {
        Some(template) => std::borrow::Cow::Borrowed(template.0),
        None => req
            .match_pattern()
            .filter(|pattern| !pattern.is_empty())
            .map_or(
                std::borrow::Cow::Borrowed(crate::metrics::UNMATCHED_ROUTE),
                std::borrow::Cow::Owned,
            ),
    }
}

fn registered() -> &'static std::sync::Mutex<std::collections::BTreeSet<&'static str>> {
    static PATHS: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<&'static str>>> =
        std::sync::OnceLock::new();
    PATHS.get_or_init(Default::default)
}

/// Every path given to [`resource`] in this process, as actix spells it.
pub fn registered_paths() -> Vec<String> {
    registered()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|path| path.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use actix_web::dev::ServiceResponse;
    use actix_web::middleware::{from_fn, Next};
    use actix_web::test;

    /// Answers with the template outer middleware reads off the request,
    /// and whether it came from the resource rather than the router.
    async fn report_template(
        req: ServiceRequest,
        next: Next<impl MessageBody + 'static>,
    ) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
        let response = next.call(req).await?;
        let from_resource = response.request().app_data::<RouteTemplate>().is_some();
        let text = format!("{} {from_resource}", route_template(response.request()));
        let (request, _) = response.into_parts();
        Ok(ServiceResponse::new(request, HttpResponse::Ok().body(text)))
    }

    #[actix_web::test]
    async fn outer_middleware_reads_the_template_from_the_resource() {
        let app =
            test::init_service(App::new().wrap(from_fn(report_template)).service(
                resource("/templates/{id}/x").route(web::get().to(HttpResponse::NoContent)),
            ))
            .await;
        let answer = |uri: &'static str, method: actix_web::http::Method| {
            test::TestRequest::default()
                .uri(uri)
                .method(method)
                .to_request()
        };
        for (request, expected) in [
            (
                answer("/templates/abc/x", actix_web::http::Method::GET),
                "/templates/{id}/x true",
            ),
            // A method the resource lacks is still served by it (405).
            (
                answer("/templates/abc/x", actix_web::http::Method::PUT),
                "/templates/{id}/x true",
            ),
            (
                answer("/elsewhere/abc", actix_web::http::Method::GET),
                "unmatched false",
            ),
        ] {
            let body = test::call_and_read_body(&app, request).await;
            assert_eq!(body, expected);
        }
        assert!(registered_paths().contains(&"/templates/{id}/x".to_owned()));
    }
}
