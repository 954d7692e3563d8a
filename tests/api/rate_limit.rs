//! Rate limits against the real Redis, single and clustered.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{
    json, settings_for, spawn_app_for, spawn_app_with, unique, RedisMode, TestApp,
};
use reqwest::StatusCode;
use serde_json::json;
use storage_gateway::auth::TenantId;
use storage_gateway::config::{LimitSettings, PolicySettings, RedisDownMode, Settings};

in_both_redis_modes!(
    concurrent_checks_allow_exactly_the_limit,
    the_boundary_is_exact,
    a_denial_explains_itself,
    status_does_not_consume,
    all_limits_are_consumed_together,
    shadow_policies_never_deny,
    tenants_have_their_own_counts_and_overrides,
    the_gateway_limits_each_api_key,
    bad_checks_are_refused,
);

fn policy(limits: &[(&str, u64, &str, Option<u64>)]) -> PolicySettings {
    PolicySettings {
        limits: limits
            .iter()
            .map(|(name, limit, window, burst)| LimitSettings {
                name: (*name).into(),
                limit: *limit,
                window: (*window).into(),
                burst: *burst,
            })
            .collect(),
        shadow: false,
        on_redis_down: RedisDownMode::Open,
    }
}

fn with_policies(mode: RedisMode, policies: Vec<(&str, PolicySettings)>) -> Settings {
    let mut settings = settings_for(mode);
    for (name, policy) in policies {
        settings.rate_limit.policies.insert(name.into(), policy);
    }
    settings
}

async fn check(app: &TestApp, key: &str, policy: &str) -> reqwest::Response {
    app.post_json("/rate-limit/check", &json!({"key": key, "policy": policy}))
        .await
}

async fn concurrent_checks_allow_exactly_the_limit(mode: RedisMode) {
    let settings = with_policies(mode, vec![("ten", policy(&[("minute", 10, "1m", None)]))]);
    let app = spawn_app_with(settings).await;
    let key = unique("user");
    let checks = (0..40).map(|_| {
        let app = &app;
        let key = key.clone();
        async move { check(app, &key, "ten").await.status() }
    });
    let statuses = futures_util::future::join_all(checks).await;
    let allowed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let denied = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((allowed, denied), (10, 30), "{statuses:?}");
}

async fn the_boundary_is_exact(mode: RedisMode) {
    // Two per 2 s: both at once, then one each second.
    let settings = with_policies(mode, vec![("pair", policy(&[("w", 2, "2s", None)]))]);
    let app = spawn_app_with(settings).await;
    let key = unique("user");
    let first = json(check(&app, &key, "pair").await).await;
    assert_eq!(
        (first["allowed"].clone(), first["remaining"].clone()),
        (json!(true), json!(1))
    );
    let second = json(check(&app, &key, "pair").await).await;
    assert_eq!(second["remaining"], 0);
    let denied = check(&app, &key, "pair").await;
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(denied.headers()["retry-after"], "1");
    let body = json(denied).await;
    assert_eq!(body["retry_after_seconds"], 1);
    // Half the emission interval later, still nothing...
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        check(&app, &key, "pair").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...and once it has passed, exactly one more.
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(check(&app, &key, "pair").await.status(), StatusCode::OK);
    assert_eq!(
        check(&app, &key, "pair").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn a_denial_explains_itself(mode: RedisMode) {
    let settings = with_policies(
        mode,
        vec![(
            "tight",
            policy(&[("minute", 100, "1m", Some(2)), ("day", 1000, "1day", None)]),
        )],
    );
    let app = spawn_app_with(settings).await;
    let key = unique("user");
    let allowed = check(&app, &key, "tight").await;
    assert_eq!(allowed.status(), StatusCode::OK);
    let headers = allowed.headers();
    assert_eq!(
        headers["ratelimit-policy"],
        "\"minute\";q=100;w=60, \"day\";q=1000;w=86400"
    );
    assert!(headers["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"minute\";r=1;t="));
    assert_eq!(headers["x-ratelimit-limit"], "100");
    assert_eq!(headers["x-ratelimit-remaining"], "1");
    assert!(headers.contains_key("x-ratelimit-reset"));

    check(&app, &key, "tight").await;
    let denied = check(&app, &key, "tight").await;
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(denied.headers()["content-type"], "application/problem+json");
    assert_eq!(denied.headers()["x-ratelimit-remaining"], "0");
    assert!(denied.headers().contains_key("retry-after"));
    let body = json(denied).await;
    assert_eq!(
        body["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(body["status"], 429);
    assert_eq!(body["violated_policies"], json!(["minute"]));
    assert!(body["detail"].as_str().unwrap().contains("minute"));
    assert_eq!(body["allowed"], false);
    assert_eq!(body["limit"], 100);
}

async fn status_does_not_consume(mode: RedisMode) {
    let settings = with_policies(mode, vec![("five", policy(&[("m", 5, "1m", None)]))]);
    let app = spawn_app_with(settings).await;
    let key = unique("user");
    for _ in 0..4 {
        let status = app
            .get(&format!("/rate-limit/status/{key}?policy=five"))
            .await;
        assert_eq!(status.status(), StatusCode::OK);
        assert_eq!(status.headers()["x-ratelimit-remaining"], "5");
        let body = json(status).await;
        assert_eq!(
            (body["remaining"].clone(), body["allowed"].clone()),
            (json!(5), json!(true))
        );
    }
    assert_eq!(json(check(&app, &key, "five").await).await["remaining"], 4);
    let after = json(
        app.get(&format!("/rate-limit/status/{key}?policy=five"))
            .await,
    )
    .await;
    assert_eq!(after["remaining"], 4);
    // The default policy when none is named.
    let default = json(app.get(&format!("/rate-limit/status/{key}")).await).await;
    assert_eq!(default["policy"], "default");
}

async fn all_limits_are_consumed_together(mode: RedisMode) {
    let settings = with_policies(
        mode,
        vec![(
            "two",
            policy(&[("short", 3, "1m", None), ("long", 5, "1h", None)]),
        )],
    );
    let app = spawn_app_with(settings).await;
    let key = unique("user");
    for _ in 0..3 {
        assert_eq!(check(&app, &key, "two").await.status(), StatusCode::OK);
    }
    let denied = json(check(&app, &key, "two").await).await;
    assert_eq!(denied["violated_policies"], json!(["short"]));
    let long = &denied["limits"][1];
    assert_eq!(long["name"], "long");
    // The denied request took nothing from the limit that would have allowed it.
    assert_eq!(long["remaining"], 2);
    // A cost no limit can ever allow is refused outright.
    let too_big = app
        .post_json(
            "/rate-limit/check",
            &json!({"key": key, "policy": "two", "cost": 4}),
        )
        .await;
    assert_eq!(too_big.status(), StatusCode::BAD_REQUEST);
}

async fn shadow_policies_never_deny(mode: RedisMode) {
    let mut shadow = policy(&[("m", 1, "1m", None)]);
    shadow.shadow = true;
    let app = spawn_app_with(with_policies(mode, vec![("trial", shadow)])).await;
    let key = unique("user");
    let mut would_deny = 0;
    for _ in 0..3 {
        let response = check(&app, &key, "trial").await;
        assert_eq!(response.status(), StatusCode::OK);
        if json(response).await["would_deny"] == true {
            would_deny += 1;
        }
    }
    assert_eq!(would_deny, 2);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(
            "gateway_rate_limit_decisions_total{outcome=\"shadow_denied\",policy=\"trial\"} 2"
        ),
        "{metrics}"
    );
}

async fn tenants_have_their_own_counts_and_overrides(mode: RedisMode) {
    let tenant = TenantId::parse(&unique("t")).unwrap();
    let mut settings = with_policies(mode, vec![("api", policy(&[("m", 2, "1m", None)]))]);
    settings.rate_limit.tenants.insert(
        tenant.as_str().to_owned(),
        BTreeMap::from([("api".to_owned(), policy(&[("m", 4, "1m", None)]))]),
    );
    let app = spawn_app_for(settings, tenant).await;
    let other = app.other_tenant_key().await;
    let key = "shared-user-id";
    // The exact sequence: any other status (a 500 in place of a 429) fails.
    let (ok, denied) = (StatusCode::OK, StatusCode::TOO_MANY_REQUESTS);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(check(&app, key, "api").await.status());
    }
    assert_eq!(
        statuses,
        [ok, ok, ok, ok, denied, denied],
        "the tenant's override applies"
    );
    // The same key in another tenant is counted apart, under the shared policy.
    let mut other_statuses = Vec::new();
    for _ in 0..4 {
        let response = app
            .http
            .post(app.url("/rate-limit/check"))
            .bearer_auth(&other)
            .json(&json!({"key": key, "policy": "api"}))
            .send()
            .await
            .unwrap();
        other_statuses.push(response.status());
    }
    assert_eq!(other_statuses, [ok, ok, denied, denied]);
}

async fn the_gateway_limits_each_api_key(mode: RedisMode) {
    let mut settings = with_policies(mode, vec![("per-key", policy(&[("m", 3, "1m", None)]))]);
    settings.rate_limit.gateway_policy = "per-key".into();
    let app = spawn_app_with(settings).await;
    for _ in 0..3 {
        assert_eq!(app.get("/auth/whoami").await.status(), StatusCode::OK);
    }
    let limited = app.get("/auth/whoami").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(json(limited).await["violated_policies"], json!(["m"]));
    // Another key, even of the same tenant, has its own allowance; health
    // and metrics are not limited.
    let second = app.key_with(&storage_gateway::auth::Scope::ALL).await;
    assert_eq!(
        app.get_as("/auth/whoami", &second).await.status(),
        StatusCode::OK
    );
    let health = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // Its budgets are keyed by key id: no caller may spend or read them.
    let other_key_id = second.split('_').nth(1).unwrap();
    let spend = json!({"key": other_key_id, "policy": "per-key", "cost": 3});
    let response = app.post_json_as("/rate-limit/check", &second, &spend).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app
        .get_as(
            &format!("/rate-limit/status/{other_key_id}?policy=per-key"),
            &second,
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

async fn bad_checks_are_refused(mode: RedisMode) {
    let mut settings = settings_for(mode);
    settings.rate_limit.max_key_bytes = 20;
    let app = spawn_app_with(settings).await;
    let cases = [
        (json!({"key": "k", "policy": "nope"}), "nope"),
        (json!({"key": "k", "cost": 0}), "cost"),
        (json!({"key": ""}), "key"),
        (json!({"key": "k".repeat(21)}), "key"),
        (json!({"policy": "default"}), "key"),
        (json!({"key": "k", "extra": 1}), "extra"),
    ];
    for (body, mentions) in cases {
        let response = app.post_json("/rate-limit/check", &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let message = json(response).await["error"]["message"].to_string();
        assert!(message.contains(mentions), "{body}: {message}");
    }
    let narrow = app.key_with(&[storage_gateway::auth::Scope::Cache]).await;
    let forbidden = app
        .http
        .post(app.url("/rate-limit/check"))
        .bearer_auth(&narrow)
        .json(&json!({"key": "k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
}
