//! Liveness, readiness, metrics and the request id, against the real stack.

use crate::common::{json, spawn_app};

#[tokio::test]
async fn health_needs_no_key_and_calls_no_backend() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["status"], "ok");
}

#[tokio::test]
async fn ready_reports_every_backend_up() {
    let app = spawn_app().await;
    let response = app.get("/ready").await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    for backend in ["postgres", "redis", "clickhouse", "kubo", "cluster"] {
        let entry = &body["backends"][backend];
        assert_eq!(entry["status"], "up", "{backend}: {body}");
        assert!(entry["latency_ms"].as_f64().unwrap() >= 0.0);
        assert!(
            entry["version"].as_str().is_some_and(|v| !v.is_empty()),
            "{backend}"
        );
    }
    // Replication needs at least the minimum factor (2) of live peers.
    assert!(
        body["backends"]["cluster"]["peers"].as_u64().unwrap() >= 2,
        "{body}"
    );
}

#[tokio::test]
async fn metrics_label_requests_by_route_template() {
    let app = spawn_app().await;
    let raw_id = "f00dfeedf00dfeed";
    let response = app.delete(&format!("/admin/keys/{raw_id}")).await;
    assert_eq!(response.status(), 404);
    let text = app.metrics_text().await;
    assert!(
        text.contains(r#"gateway_http_requests_total{method="DELETE",route="/admin/keys/{id}",status="404"} 1"#),
        "{text}"
    );
    assert!(!text.contains(raw_id));
    assert!(text.contains("gateway_http_request_duration_seconds_bucket"));
    assert!(text.contains(
        r#"gateway_store_calls_total{operation="find_api_key",outcome="ok",store="postgres"}"#
    ));
    assert!(text.contains(
        r#"gateway_store_call_duration_seconds_count{operation="find_api_key",store="postgres"}"#
    ));
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/health"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-42");
    let response = app.http.get(app.url("/health")).send().await.unwrap();
    let made = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
    // An id that could forge log lines is replaced, not echoed.
    let response = app
        .http
        .get(app.url("/health"))
        .header("x-request-id", "a b")
        .send()
        .await
        .unwrap();
    assert_ne!(response.headers()["x-request-id"], "a b");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let response = app.get("/no/such/thing").await;
    assert_eq!(response.status(), 404);
    assert_eq!(json(response).await["error"]["code"], "not_found");
    let response = app.http.put(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(json(response).await["error"]["code"], "method_not_allowed");
}
