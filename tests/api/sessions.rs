//! Sessions against the real Redis, single and clustered.

use std::time::Duration;

use crate::common::{json, settings_for, spawn_app_with, RedisMode, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;
use storage_gateway::auth::Scope;

in_both_redis_modes!(
    lifecycle,
    sliding_and_idle_expiry,
    absolute_expiry_caps_sliding,
    updates_need_the_current_version,
    rotation_moves_the_session,
    revoking_all_of_a_users_sessions,
    the_per_user_cap_ends_the_oldest,
    bad_input_is_refused,
    tenants_and_scopes_are_enforced,
    a_tenant_holds_at_most_its_budget_of_sessions,
);

async fn app(mode: RedisMode) -> TestApp {
    spawn_app_with(settings_for(mode)).await
}

async fn create(app: &TestApp, user: &str, data: serde_json::Value, ttl: u64) -> serde_json::Value {
    let response = app
        .post_json(
            "/session/create",
            &json!({"user_id": user, "data": data, "ttl_seconds": ttl}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    json(response).await
}

fn id(session: &serde_json::Value) -> String {
    session["session_id"]
        .as_str()
        .expect("a session id")
        .to_owned()
}

async fn status_of(app: &TestApp, path: &str) -> StatusCode {
    app.get(path).await.status()
}

async fn user_session_ids(app: &TestApp, user: &str) -> Vec<String> {
    let listed = json(app.get(&format!("/users/{user}/sessions")).await).await;
    let mut ids: Vec<String> = listed["sessions"]
        .as_array()
        .expect("a list")
        .iter()
        .map(id)
        .collect();
    ids.sort();
    ids
}

async fn lifecycle(mode: RedisMode) {
    let app = app(mode).await;
    let created = create(&app, "alice", json!({"role": "reader", "n": 1}), 600).await;
    let sid = id(&created);
    assert_eq!(sid.len(), 64);
    assert!(sid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(created["user_id"], "alice");
    assert_eq!(created["version"], 1);
    assert_eq!(created["idle_ttl_seconds"], 600);

    let read = app.get(&format!("/session/{sid}")).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["etag"], "\"1\"");
    let read = json(read).await;
    assert_eq!(read["data"], json!({"role": "reader", "n": 1}));
    assert_eq!(read["user_id"], "alice");
    for field in ["created_at", "expires_at", "absolute_expires_at"] {
        assert!(read[field].is_string(), "{field}");
    }
    assert_eq!(user_session_ids(&app, "alice").await, vec![sid.clone()]);

    let revoked = app.delete(&format!("/session/{sid}")).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        status_of(&app, &format!("/session/{sid}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/session/{sid}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(user_session_ids(&app, "alice").await.is_empty());
}

async fn sliding_and_idle_expiry(mode: RedisMode) {
    let app = app(mode).await;
    let sid = id(&create(&app, "bob", json!({}), 2).await);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Reading slides the idle expiry to 2 s from now...
    let slid = app.get(&format!("/session/{sid}?slide=true")).await;
    assert_eq!(slid.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // ...so 2.6 s after creation, past the original 2 s, it is still alive.
    // This read does not slide.
    assert_eq!(
        status_of(&app, &format!("/session/{sid}?slide=false")).await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        status_of(&app, &format!("/session/{sid}")).await,
        StatusCode::NOT_FOUND
    );
    // The user's index forgets a session that expired on its own.
    assert!(user_session_ids(&app, "bob").await.is_empty());
}

async fn absolute_expiry_caps_sliding(mode: RedisMode) {
    let mut settings = settings_for(mode);
    settings.sessions.default_idle_ttl_secs = 2;
    settings.sessions.max_idle_ttl_secs = 2;
    settings.sessions.absolute_ttl_secs = 3;
    let app = spawn_app_with(settings).await;
    let created = create(&app, "carol", json!({}), 2).await;
    let sid = id(&created);
    let created_at = time::OffsetDateTime::parse(
        created["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let absolute = time::OffsetDateTime::parse(
        created["absolute_expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((absolute - created_at).whole_seconds(), 3);
    // Read often enough that the idle expiry alone would never come.
    let started = std::time::Instant::now();
    let mut last_ok = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(4500) {
        if status_of(&app, &format!("/session/{sid}?slide=true")).await == StatusCode::OK {
            last_ok = started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        last_ok >= Duration::from_millis(1500),
        "alive while read: {last_ok:?}"
    );
    assert!(
        last_ok < Duration::from_millis(3200),
        "outlived its absolute expiry: {last_ok:?}"
    );
    assert_eq!(
        status_of(&app, &format!("/session/{sid}")).await,
        StatusCode::NOT_FOUND
    );
}

async fn updates_need_the_current_version(mode: RedisMode) {
    let app = app(mode).await;
    let sid = id(&create(&app, "dave", json!({"cart": []}), 600).await);
    let path = format!("/session/{sid}");
    let put = |if_match: Option<&'static str>, data: serde_json::Value| {
        let mut request = app
            .request(Method::PUT, &path)
            .json(&json!({ "data": data }));
        if let Some(value) = if_match {
            request = request.header("if-match", value);
        }
        request.send()
    };

    let missing = put(None, json!({"cart": [1]})).await.unwrap();
    assert_eq!(missing.status(), StatusCode::PRECONDITION_REQUIRED);

    let first = put(Some("\"1\""), json!({"cart": [1]})).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["etag"], "\"2\"");
    assert_eq!(json(first).await["data"], json!({"cart": [1]}));

    // A second writer that read version 1 does not overwrite silently.
    let stale = put(Some("\"1\""), json!({"cart": [2]})).await.unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let body = json(stale).await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("version 2"));

    let any = put(Some("*"), json!({"cart": [3]})).await.unwrap();
    assert_eq!(any.status(), StatusCode::OK);
    assert_eq!(json(any).await["version"], 3);

    let malformed = put(Some("W/\"3\""), json!({})).await.unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    let read = json(app.get(&path).await).await;
    assert_eq!(read["data"], json!({"cart": [3]}));

    let unknown = format!("/session/{}", "0".repeat(64));
    let response = app
        .request(Method::PUT, &unknown)
        .header("if-match", "*")
        .json(&json!({"data": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn rotation_moves_the_session(mode: RedisMode) {
    let app = app(mode).await;
    let old = id(&create(&app, "erin", json!({"k": "v"}), 600).await);
    let rotated = app
        .request(Method::POST, &format!("/session/{old}/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated = json(rotated).await;
    let new = id(&rotated);
    assert_ne!(new, old);
    assert_eq!(rotated["data"], json!({"k": "v"}));
    assert_eq!(rotated["user_id"], "erin");
    assert_eq!(
        status_of(&app, &format!("/session/{old}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_of(&app, &format!("/session/{new}")).await,
        StatusCode::OK
    );
    assert_eq!(user_session_ids(&app, "erin").await, vec![new.clone()]);
    let again = app
        .request(Method::POST, &format!("/session/{old}/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

async fn revoking_all_of_a_users_sessions(mode: RedisMode) {
    let app = app(mode).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id(&create(&app, "frank", json!({}), 600).await));
    }
    let other_user = id(&create(&app, "grace", json!({}), 600).await);

    let response = app
        .delete(&format!("/users/frank/sessions?except={}", ids[1]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await["revoked"], 2);
    assert_eq!(
        status_of(&app, &format!("/session/{}", ids[0])).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_of(&app, &format!("/session/{}", ids[1])).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&app, &format!("/session/{}", ids[2])).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_of(&app, &format!("/session/{other_user}")).await,
        StatusCode::OK
    );
    assert_eq!(user_session_ids(&app, "frank").await, vec![ids[1].clone()]);

    let response = app.delete("/users/frank/sessions").await;
    assert_eq!(json(response).await["revoked"], 1);
    assert!(user_session_ids(&app, "frank").await.is_empty());
    assert_eq!(user_session_ids(&app, "grace").await, vec![other_user]);
}

async fn the_per_user_cap_ends_the_oldest(mode: RedisMode) {
    let mut settings = settings_for(mode);
    settings.sessions.max_sessions_per_user = 2;
    let app = spawn_app_with(settings).await;
    let first = id(&create(&app, "heidi", json!({}), 600).await);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = id(&create(&app, "heidi", json!({}), 600).await);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let third = id(&create(&app, "heidi", json!({}), 600).await);
    assert_eq!(
        status_of(&app, &format!("/session/{first}")).await,
        StatusCode::NOT_FOUND
    );
    let mut expected = vec![second.clone(), third.clone()];
    expected.sort();
    assert_eq!(user_session_ids(&app, "heidi").await, expected);

    // A session that ended on its own frees its place before a live one is
    // ended to make room.
    let short = id(&create(&app, "judy", json!({}), 1).await);
    let long = id(&create(&app, "judy", json!({}), 600).await);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let newest = id(&create(&app, "judy", json!({}), 600).await);
    assert_eq!(
        status_of(&app, &format!("/session/{short}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_of(&app, &format!("/session/{long}")).await,
        StatusCode::OK
    );
    let mut expected = vec![long, newest];
    expected.sort();
    assert_eq!(user_session_ids(&app, "judy").await, expected);
}

async fn bad_input_is_refused(mode: RedisMode) {
    let mut settings = settings_for(mode);
    settings.sessions.max_data_bytes = 100;
    let app = spawn_app_with(settings).await;
    let cases = [
        (
            json!({"user_id": "", "data": {}}),
            StatusCode::BAD_REQUEST,
            "user_id",
        ),
        (
            json!({"user_id": "u".repeat(300), "data": {}}),
            StatusCode::BAD_REQUEST,
            "user_id",
        ),
        (
            json!({"user_id": "u", "data": [1, 2]}),
            StatusCode::BAD_REQUEST,
            "object",
        ),
        (
            json!({"user_id": "u", "data": {"x": "y".repeat(200)}}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "100",
        ),
        (
            json!({"user_id": "u", "ttl_seconds": 0}),
            StatusCode::BAD_REQUEST,
            "ttl_seconds",
        ),
        (
            json!({"user_id": "u", "ttl_seconds": 10_000_000}),
            StatusCode::BAD_REQUEST,
            "ttl_seconds",
        ),
        (
            json!({"user_id": "u", "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (json!({"data": {}}), StatusCode::BAD_REQUEST, "user_id"),
    ];
    for (body, status, mentions) in cases {
        let response = app.post_json("/session/create", &body).await;
        assert_eq!(response.status(), status, "{body}");
        let message = json(response).await["error"]["message"].to_string();
        assert!(message.contains(mentions), "{body}: {message}");
    }
    for bad in ["abc", &"g".repeat(64), &"A".repeat(64)] {
        let response = app.get(&format!("/session/{bad}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

async fn tenants_and_scopes_are_enforced(mode: RedisMode) {
    let app = app(mode).await;
    let sid = id(&create(&app, "ivan", json!({"secret": 1}), 600).await);
    let other = app.other_tenant_key().await;
    let path = format!("/session/{sid}");
    assert_eq!(
        app.get_as(&path, &other).await.status(),
        StatusCode::NOT_FOUND
    );
    let listed = json(app.get_as("/users/ivan/sessions", &other).await).await;
    assert_eq!(listed["sessions"], json!([]));
    let revoke = app
        .http
        .delete(app.url(&path))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NOT_FOUND);
    let revoke_all = app
        .http
        .delete(app.url("/users/ivan/sessions"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(json(revoke_all).await["revoked"], 0);
    assert_eq!(status_of(&app, &path).await, StatusCode::OK);

    let narrow = app.key_with(&[Scope::Cache]).await;
    assert_eq!(
        app.get_as(&path, &narrow).await.status(),
        StatusCode::FORBIDDEN
    );
    let anonymous = app.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn a_tenant_holds_at_most_its_budget_of_sessions(mode: RedisMode) {
    let mut settings = settings_for(mode);
    settings.sessions.max_sessions_per_tenant = 3;
    let app = spawn_app_with(settings).await;
    let other = app.other_tenant_key().await;
    let attempt = |user: &str, key: &str| {
        let body = json!({"user_id": user, "ttl_seconds": 60});
        let key = key.to_owned();
        let app = &app;
        async move {
            app.post_json_as("/session/create", &key, &body)
                .await
                .status()
        }
    };
    let a = create(&app, "a", json!({}), 60).await;
    let b = create(&app, "b", json!({}), 60).await;
    create(&app, "c", json!({}), 1).await;
    let refused = app
        .post_json("/session/create", &json!({"user_id": "d"}))
        .await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json(refused).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_sessions_per_tenant"));
    // Another tenant has a budget of its own.
    assert_eq!(attempt("d", &other).await, StatusCode::CREATED);
    // A revoked session makes room; a rotated one still counts once.
    assert_eq!(
        app.delete(&format!("/session/{}", id(&a))).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(attempt("d", &app.key).await, StatusCode::CREATED);
    let rotated = app
        .request(Method::POST, &format!("/session/{}/rotate", id(&b)))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    assert_eq!(attempt("e", &app.key).await, StatusCode::PAYLOAD_TOO_LARGE);
    // A session that ended on its own (idle expiry) is found gone and
    // stops counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(attempt("e", &app.key).await, StatusCode::CREATED);
    assert_eq!(attempt("f", &app.key).await, StatusCode::PAYLOAD_TOO_LARGE);
}
