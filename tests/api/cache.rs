//! The key/value cache against the real Redis, single and clustered.

use std::time::Duration;

use crate::common::{json, settings_for, spawn_app_with, RedisMode, TestApp};
use reqwest::StatusCode;
use serde_json::json;

in_both_redis_modes!(
    set_get_delete,
    values_expire,
    keys_may_hold_any_characters,
    limits_are_enforced,
    tenants_see_only_their_keys,
);

async fn app(mode: RedisMode) -> TestApp {
    spawn_app_with(settings_for(mode)).await
}

async fn set(app: &TestApp, key: &str, value: serde_json::Value, ttl: u64) -> reqwest::Response {
    app.post_json(
        "/cache/set",
        &json!({"key": key, "value": value, "ttl_seconds": ttl}),
    )
    .await
}

/// Percent-encodes every byte but unreserved ones, as a client would for a
/// path segment holding any text.
fn encoded(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn set_get_delete(mode: RedisMode) {
    let app = app(mode).await;
    let value = json!({"rows": [1, 2, 3], "label": "ü"});
    let stored = set(&app, "report:42", value.clone(), 120).await;
    assert_eq!(stored.status(), StatusCode::OK);
    assert_eq!(json(stored).await["ttl_seconds"], 120);

    let read = json(app.get("/cache/get/report:42").await).await;
    assert_eq!(read["value"], value);
    let ttl = read["ttl_seconds"].as_u64().unwrap();
    assert!((118..=120).contains(&ttl), "{ttl}");

    // A set replaces the value.
    set(&app, "report:42", json!("new"), 60).await;
    assert_eq!(
        json(app.get("/cache/get/report:42").await).await["value"],
        "new"
    );

    assert_eq!(
        app.delete("/cache/report:42").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/cache/get/report:42").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete("/cache/report:42").await.status(),
        StatusCode::NOT_FOUND
    );

    let metrics = app.metrics_text().await;
    for line in [
        "gateway_cache_operations_total{operation=\"get\",outcome=\"hit\"} 2",
        "gateway_cache_operations_total{operation=\"get\",outcome=\"miss\"} 1",
        "gateway_cache_operations_total{operation=\"set\",outcome=\"stored\"} 2",
        "gateway_cache_operations_total{operation=\"delete\",outcome=\"deleted\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

async fn values_expire(mode: RedisMode) {
    let app = app(mode).await;
    set(&app, "short", json!(1), 1).await;
    assert_eq!(app.get("/cache/get/short").await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        app.get("/cache/get/short").await.status(),
        StatusCode::NOT_FOUND
    );
    // Without a TTL, the configured default applies.
    let stored = app
        .post_json("/cache/set", &json!({"key": "default-ttl", "value": true}))
        .await;
    assert_eq!(json(stored).await["ttl_seconds"], 300);
}

async fn keys_may_hold_any_characters(mode: RedisMode) {
    let app = app(mode).await;
    for key in ["a/b/c", "with space?&=#", "ключ", "get/inner", "{braces}"] {
        assert_eq!(
            set(&app, key, json!(key), 60).await.status(),
            StatusCode::OK,
            "{key}"
        );
        let read = app.get(&format!("/cache/get/{}", encoded(key))).await;
        assert_eq!(read.status(), StatusCode::OK, "{key}");
        assert_eq!(json(read).await["value"], json!(key));
    }
    for key in ["a/b/c", "with space?&=#", "ключ", "get/inner", "{braces}"] {
        let deleted = app.delete(&format!("/cache/{}", encoded(key))).await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT, "{key}");
    }
}

async fn limits_are_enforced(mode: RedisMode) {
    let mut settings = settings_for(mode);
    settings.cache.max_key_bytes = 16;
    settings.cache.max_value_bytes = 64;
    settings.cache.max_ttl_secs = 3600;
    let app = spawn_app_with(settings).await;

    let long_key = set(&app, &"k".repeat(17), json!(1), 60).await;
    assert_eq!(long_key.status(), StatusCode::BAD_REQUEST);
    assert!(json(long_key).await["error"]["message"]
        .to_string()
        .contains("16 bytes"));

    let big = set(&app, "big", json!("x".repeat(100)), 60).await;
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json(big).await["error"]["message"]
        .to_string()
        .contains("64"));

    // Far over the value limit: refused before the body is read whole.
    let huge = set(&app, "huge", json!("x".repeat(100_000)), 60).await;
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);

    for ttl in [0, 3601] {
        let response = set(&app, "ttl", json!(1), ttl).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{ttl}");
    }
    for key in ["big", "huge", "ttl"] {
        assert_eq!(
            app.get(&format!("/cache/get/{key}")).await.status(),
            StatusCode::NOT_FOUND
        );
    }
}

async fn tenants_see_only_their_keys(mode: RedisMode) {
    let app = app(mode).await;
    let other = app.other_tenant_key().await;
    set(&app, "profile", json!("mine"), 60).await;
    assert_eq!(
        app.get_as("/cache/get/profile", &other).await.status(),
        StatusCode::NOT_FOUND
    );
    let theirs = app
        .http
        .post(app.url("/cache/set"))
        .bearer_auth(&other)
        .json(&json!({"key": "profile", "value": "theirs", "ttl_seconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::OK);
    assert_eq!(
        json(app.get("/cache/get/profile").await).await["value"],
        "mine"
    );
    let deleted = app
        .http
        .delete(app.url("/cache/profile"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        json(app.get("/cache/get/profile").await).await["value"],
        "mine"
    );
    let narrow = app
        .key_with(&[storage_gateway::auth::Scope::Sessions])
        .await;
    assert_eq!(
        app.get_as("/cache/get/profile", &narrow).await.status(),
        StatusCode::FORBIDDEN
    );
}
