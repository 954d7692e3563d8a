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
