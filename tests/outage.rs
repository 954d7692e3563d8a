//! A backend taken away for real: `/ready` and the API answer 503 naming it,
//! and recover when it is back. These tests stop shared services, so they
//! take turns (cargo runs test binaries one after another, so no other test
//! runs beside them).

mod common;

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use common::{json, ref_count, spawn_app, stack, TestApp};
use futures_util::FutureExt;
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Stops `service`, runs `check`, and always starts it again.
async fn with_service_stopped<F, Fut>(service: &str, check: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    stack(&["stop", service]);
    let outcome = AssertUnwindSafe(check()).catch_unwind().await;
    stack(&["start", service]);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Polls `/ready` until it answers 200, so the next test starts on a whole stack.
async fn wait_until_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let response = app.http.get(app.url("/ready")).send().await.unwrap();
        if response.status() == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again: {}",
            json(response).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn assert_ready_names(app: &TestApp, backend: &str) {
    let response = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body = json(response).await;
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["backends"][backend]["status"], "down", "{body}");
    assert!(
        body["backends"][backend]["error"]
            .as_str()
            .unwrap()
            .contains(backend),
        "{body}"
    );
    let others_up = body["backends"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.as_str() != backend)
        .all(|(_, entry)| entry["status"] == "up");
    assert!(others_up, "only {backend} should be down: {body}");
}

#[tokio::test]
async fn postgres_down_gives_503_naming_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app().await;
    with_service_stopped("postgres", || async {
        assert_ready_names(&app, "postgres").await;
        // Authentication needs Postgres: the API answers 503, not 401.
        let response = app.get("/auth/whoami").await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "5");
        let body = json(response).await;
        assert_eq!(body["error"]["code"], "backend_unavailable");
        assert_eq!(body["error"]["backend"], "postgres");
        // Liveness does not depend on any backend.
        let health = app.http.get(app.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    })
    .await;
    wait_until_ready(&app).await;
    assert_eq!(app.get("/auth/whoami").await.status(), 200);
}

#[tokio::test]
async fn redis_down_gives_503_naming_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app().await;
    with_service_stopped("redis", || assert_ready_names(&app, "redis")).await;
    wait_until_ready(&app).await;
}

#[tokio::test]
async fn clickhouse_down_gives_503_naming_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app().await;
    with_service_stopped("clickhouse", || assert_ready_names(&app, "clickhouse")).await;
    wait_until_ready(&app).await;
}

#[tokio::test]
async fn kubo_down_gives_503_naming_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app().await;
    with_service_stopped("kubo1", || assert_ready_names(&app, "kubo")).await;
    wait_until_ready(&app).await;
}

#[tokio::test]
async fn cluster_down_gives_503_naming_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app().await;
    with_service_stopped("cluster1", || assert_ready_names(&app, "cluster")).await;
    wait_until_ready(&app).await;
}

async fn upload(app: &TestApp, body: &'static str) -> reqwest::Response {
    app.upload(&[("name", "outage.txt")], body).await
}

/// Uploads once the stack accepts uploads again: after a restart the Cluster
/// needs a moment to hear from its peers before it can place a pin.
async fn upload_when_accepted(app: &TestApp, body: &'static str) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let response = upload(app, body).await;
        if response.status() != 503 || Instant::now() > deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn assert_unavailable(response: reqwest::Response, backend: &str) {
    assert_eq!(response.status(), 503);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "backend_unavailable");
    assert_eq!(body["error"]["backend"], backend, "{body}");
}

#[tokio::test]
async fn an_upload_with_kubo_down_is_503_and_writes_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app().await;
    let stored = upload_when_accepted(&app, "stored before kubo went away").await;
    let cid = json(stored).await["cid"].as_str().unwrap().to_owned();
    with_service_stopped("kubo1", || async {
        assert_unavailable(upload(&app, "kubo is away").await, "kubo").await;
        assert_eq!(app.file_rows().await, 1, "only the earlier file remains");
        let download = app.get(&format!("/files/{cid}/download")).await;
        assert_unavailable(download, "kubo").await;
    })
    .await;
    wait_until_ready(&app).await;
    assert_eq!(
        upload_when_accepted(&app, "kubo is back").await.status(),
        201
    );
}

#[tokio::test]
async fn an_upload_with_the_cluster_down_is_503_and_counts_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app().await;
    let body = Box::leak(format!("cluster outage {}", uuid::Uuid::new_v4()).into_boxed_str());
    with_service_stopped("cluster1", || async {
        assert_unavailable(upload(&app, body).await, "cluster").await;
        assert_eq!(app.file_rows().await, 0);
    })
    .await;
    wait_until_ready(&app).await;
    let response = upload_when_accepted(&app, body).await;
    assert_eq!(response.status(), 201);
    let cid = json(response).await["cid"].as_str().unwrap().to_owned();
    assert_eq!(
        ref_count(&cid).await,
        1,
        "the failed attempt took no reference"
    );
}

#[tokio::test]
async fn downloads_with_postgres_down_are_503_not_404() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app().await;
    let response = upload_when_accepted(&app, "metadata lives in postgres").await;
    let cid = json(response).await["cid"].as_str().unwrap().to_owned();
    with_service_stopped("postgres", || async {
        assert_unavailable(app.get(&format!("/files/{cid}/download")).await, "postgres").await;
        assert_unavailable(upload(&app, "no postgres").await, "postgres").await;
    })
    .await;
    wait_until_ready(&app).await;
    assert_eq!(
        app.get(&format!("/files/{cid}/download")).await.status(),
        200
    );
}

#[tokio::test]
async fn files_keep_working_with_clickhouse_down() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app().await;
    with_service_stopped("clickhouse", || async {
        // Analytics events are recorded on the side: losing one never fails the request.
        let response = upload_when_accepted(&app, "no analytics right now").await;
        assert_eq!(response.status(), 201);
        let cid = json(response).await["cid"].as_str().unwrap().to_owned();
        let download = app.get(&format!("/files/{cid}/download")).await;
        assert_eq!(download.status(), 200);
        assert_eq!(download.text().await.unwrap(), "no analytics right now");
    })
    .await;
    wait_until_ready(&app).await;
}

/// Answers of the Redis-backed endpoints while Redis is stopped: each comes
/// back at once, well within this bound, rather than hanging.
const NO_HANG: Duration = Duration::from_secs(10);

async fn within_bound(request: reqwest::RequestBuilder) -> reqwest::Response {
    let started = Instant::now();
    let response = request.send().await.expect("an answer");
    assert!(started.elapsed() < NO_HANG, "took {:?}", started.elapsed());
    response
}

#[tokio::test]
async fn redis_down_fails_each_policy_its_own_way_and_recovers() {
    use storage_gateway::config::{LimitSettings, PolicySettings, RedisDownMode};
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut settings = common::stack_settings();
    for (name, on_redis_down) in [
        ("open", RedisDownMode::Open),
        ("closed", RedisDownMode::Closed),
    ] {
        settings.rate_limit.policies.insert(
            name.into(),
            PolicySettings {
                limits: vec![LimitSettings {
                    name: "m".into(),
                    limit: 100,
                    window: "1m".into(),
                    burst: None,
                }],
                shadow: false,
                on_redis_down,
            },
        );
    }
    let app = common::spawn_app_with(settings).await;
    let check = |policy: &str| {
        app.request(reqwest::Method::POST, "/rate-limit/check")
            .json(&serde_json::json!({"key": "u", "policy": policy}))
    };
    let created = app
        .post_json("/session/create", &serde_json::json!({"user_id": "u"}))
        .await;
    assert_eq!(created.status(), 201);
    let session = json(created).await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();

    with_service_stopped("redis", || async {
        let read =
            within_bound(app.request(reqwest::Method::GET, &format!("/session/{session}"))).await;
        assert_unavailable(read, "redis").await;
        let cached = within_bound(app.request(reqwest::Method::GET, "/cache/get/k")).await;
        assert_unavailable(cached, "redis").await;
        let set = within_bound(
            app.request(reqwest::Method::POST, "/cache/set")
                .json(&serde_json::json!({"key": "k", "value": 1})),
        )
        .await;
        assert_unavailable(set, "redis").await;

        // Fail closed: 503 naming Redis. Fail open: allowed, marked unchecked.
        assert_unavailable(within_bound(check("closed")).await, "redis").await;
        let open = within_bound(check("open")).await;
        assert_eq!(open.status(), 200);
        let open = json(open).await;
        assert_eq!(
            (open["allowed"].clone(), open["checked"].clone()),
            (true.into(), false.into())
        );
        // The gateway's own per-key policy fails open too.
        let whoami = within_bound(app.request(reqwest::Method::GET, "/auth/whoami")).await;
        assert_eq!(whoami.status(), 200);
    })
    .await;
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(
            "gateway_rate_limit_decisions_total{outcome=\"unchecked\",policy=\"open\"} 1"
        ),
        "{metrics}"
    );

    // Back without a restart of the gateway.
    wait_until_ready(&app).await;
    let created = app
        .post_json("/session/create", &serde_json::json!({"user_id": "u"}))
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(check("closed").send().await.unwrap().status(), 200);
}
