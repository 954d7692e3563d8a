//! Pages for people, served from the gateway itself so they work where no
//! other host is reachable: the API reference at `/docs` and, when
//! `browser.console` is on, an upload/download page at `/console`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const DOCS_HTML: &str = include_str!("../assets/docs.html");
const REDOC_JS: &str = include_str!("../assets/vendor/redoc/redoc.standalone.js");
const CONSOLE_HTML: &str = include_str!("../assets/console.html");
const CONSOLE_JS: &str = include_str!("../assets/console.js");
const CONSOLE_CSS: &str = include_str!("../assets/console.css");
const TUS_JS: &str = include_str!("../assets/vendor/tus-js-client/tus.min.js");
/// The vendored packages' licences, as their authors ask.
const LICENSES: &[(&str, &str)] = &[
    (
        include_str!("../assets/vendor/redoc/VERSION"),
        include_str!("../assets/vendor/redoc/LICENSE"),
    ),
    (
        "third-party code in redoc.standalone.js",
        include_str!("../assets/vendor/redoc/redoc.standalone.js.LICENSE.txt"),
    ),
    (
        include_str!("../assets/vendor/tus-js-client/VERSION"),
        include_str!("../assets/vendor/tus-js-client/LICENSE"),
    ),
];

/// Scripts and styles from this gateway only; Redoc styles inline and runs
/// its search in a worker made from a blob.
const PAGE_POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; \
     connect-src 'self'; frame-ancestors 'none'";

pub fn configure(cfg: &mut web::ServiceConfig, console: bool) {
    cfg.route("/docs", web::get().to(|| page(DOCS_HTML)))
        .route(
            "/docs/redoc.standalone.js",
            web::get().to(|| asset(REDOC_JS, "text/javascript")),
        )
        .route("/docs/licenses", web::get().to(licenses));
    if console {
        cfg.route("/console", web::get().to(|| page(CONSOLE_HTML)))
            .route(
                "/console/console.js",
                web::get().to(|| asset(CONSOLE_JS, "text/javascript")),
            )
            .route(
                "/console/console.css",
                web::get().to(|| asset(CONSOLE_CSS, "text/css")),
            )
            .route(
                "/console/tus.min.js",
                web::get().to(|| asset(TUS_JS, "text/javascript")),
            );
    }
}

async fn page(html: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(html)
}

async fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(format!("{content_type}; charset=utf-8"))
        // A new gateway version may bring new assets under the same name.
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

async fn licenses() -> HttpResponse {
    let text: String = LICENSES
        .iter()
        .map(|(what, licence)| format!("==== {}\n\n{licence}\n\n", what.trim()))
        .collect();
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text)
}
