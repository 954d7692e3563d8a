//! A backend taken away for real: `/ready` and the API answer 503 naming it,
//! and recover when it is back. These tests stop shared services, so each
//! holds the stack's turn lock while it runs: no two of them, in this
//! process or another, stop services at once.

mod common;

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use common::{json, ref_count, spawn_app, stack, stack_turn, TestApp};
use futures_util::FutureExt;

/// Stops `service`, runs `check`, and always starts it again.
async fn with_service_stopped<F, Fut, T>(service: &str, check: F) -> T
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    stack(&["stop", service]);
    let outcome = AssertUnwindSafe(check()).catch_unwind().await;
    stack(&["start", service]);
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
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

/// `/ready` with the admin key names `backend` as the one down.
async fn assert_ready_names(app: &TestApp, backend: &str) {
    let response = app.get("/ready").await;
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
    let _turn = stack_turn().await;
    let app = spawn_app().await;
    with_service_stopped("postgres", || async {
        // No key can be verified without Postgres, so no detail either:
        // the plain answer says not ready, the probe metric names it.
        let response = app.get("/ready").await;
        assert_eq!(response.status(), 503);
        let body = json(response).await;
        assert_eq!(body, serde_json::json!({"status": "unavailable"}));
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
    let _turn = stack_turn().await;
    let app = spawn_app().await;
    with_service_stopped("redis", || assert_ready_names(&app, "redis")).await;
    wait_until_ready(&app).await;
}

#[tokio::test]
async fn clickhouse_down_gives_503_naming_it() {
    let _turn = stack_turn().await;
    let app = spawn_app().await;
    with_service_stopped("clickhouse", || assert_ready_names(&app, "clickhouse")).await;
    wait_until_ready(&app).await;
}

#[tokio::test]
async fn kubo_down_gives_503_naming_it() {
    let _turn = stack_turn().await;
    let app = spawn_app().await;
    with_service_stopped("kubo1", || assert_ready_names(&app, "kubo")).await;
    wait_until_ready(&app).await;
}

#[tokio::test]
async fn cluster_down_gives_503_naming_it() {
    let _turn = stack_turn().await;
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
    let _turn = stack_turn().await;
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
    let _turn = stack_turn().await;
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

/// The stored pin state of a CID's blob row; `None` once the row is gone.
#[tokio::test]
async fn a_delete_with_the_cluster_down_commits_and_the_unpin_follows() {
    let _turn = stack_turn().await;
    let mut settings = common::stack_settings();
    settings.files.reconcile_interval_secs = 1;
    let app = common::spawn_app_with(settings).await;
    let body = Box::leak(format!("unpin later {}", uuid::Uuid::new_v4()).into_boxed_str());
    let response = upload_when_accepted(&app, body).await;
    assert_eq!(response.status(), 201);
    let cid = json(response).await["cid"].as_str().unwrap().to_owned();
    with_service_stopped("cluster1", || async {
        let deleted = app.delete(&format!("/files/{cid}")).await;
        assert_eq!(deleted.status(), 204, "the delete itself needs no Cluster");
        assert_eq!(app.get(&format!("/files/{cid}")).await.status(), 404);
        assert_eq!(common::blob_state(&cid).await.as_deref(), Some("unpinning"));
    })
    .await;
    wait_until_ready(&app).await;
    // Once the Cluster is back, the reconciler unpins and forgets the blob.
    let deadline = Instant::now() + Duration::from_secs(60);
    while common::blob_state(&cid).await.is_some() {
        assert!(Instant::now() < deadline, "the unpin never happened");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cluster = std::env::var("IPFS_CLUSTER_URL").expect("stack env");
    let pin: serde_json::Value = reqwest::get(format!("{cluster}/pins/{cid}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = pin["peer_map"]
        .as_object()
        .unwrap()
        .values()
        .map(|peer| peer["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == "unpinned"),
        "still pinned: {statuses:?}"
    );
}

#[tokio::test]
async fn downloads_with_postgres_down_are_503_not_404() {
    let _turn = stack_turn().await;
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
    let _turn = stack_turn().await;
    let app = spawn_app().await;
    // Uploads work before ClickHouse goes (an earlier test may have
    // restarted the Cluster), so the one below meets only its absence.
    let before = upload_when_accepted(&app, "analytics still up").await;
    assert_eq!(before.status(), 201);
    let cid = with_service_stopped("clickhouse", || async {
        // Analytics events are recorded on the side: losing one never fails the request.
        let response = upload(&app, "no analytics right now").await;
        assert_eq!(response.status(), 201);
        let cid = json(response).await["cid"].as_str().unwrap().to_owned();
        let download = app.get(&format!("/files/{cid}/download")).await;
        assert_eq!(download.status(), 200);
        assert_eq!(download.text().await.unwrap(), "no analytics right now");
        cid
    })
    .await;
    wait_until_ready(&app).await;
    // The events waited in the spool, and arrive once ClickHouse is back.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = common::clickhouse()
            .query("SELECT count() FROM file_uploads WHERE tenant_id = ? AND cid = ?")
            .bind(app.tenant.as_str())
            .bind(&cid)
            .fetch_one::<u64>()
            .await
            .unwrap();
        if found >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the upload event never arrived");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn events(n: usize, tag: usize) -> serde_json::Value {
    serde_json::Value::Array(
        (0..n)
            .map(|i| serde_json::json!({"event_type": "outage", "properties": {"batch": tag, "i": i}}))
            .collect(),
    )
}

#[tokio::test]
async fn events_accepted_while_clickhouse_is_down_all_arrive() {
    let _turn = stack_turn().await;
    let app = spawn_app().await;
    let accepted_before = app.post_json("/analytics/events", &events(100, 0)).await;
    assert_eq!(accepted_before.status(), 202);
    let mut accepted = 100;
    with_service_stopped("clickhouse", || async {
        for batch in 1..=20 {
            let response = app
                .post_json("/analytics/events", &events(100, batch))
                .await;
            assert_eq!(response.status(), 202);
            accepted += 100;
        }
        let metrics = app.metrics_text().await;
        let waiting = metrics
            .lines()
            .find_map(|l| l.strip_prefix("gateway_analytics_spool_events "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(waiting > 0.0, "{metrics}");
    })
    .await;
    wait_until_ready(&app).await;
    common::wait_for_user_activity(&app.tenant, accepted, Duration::from_secs(90)).await;
}

#[tokio::test]
async fn a_full_spool_answers_503_rather_than_dropping() {
    let _turn = stack_turn().await;
    let mut settings = common::stack_settings();
    settings.analytics.spool_max_bytes = 20_000;
    let app = common::spawn_app_with(settings).await;
    let accepted = with_service_stopped("clickhouse", || async {
        let mut accepted = 0;
        let mut refused = None;
        for batch in 0..20 {
            let response = app.post_json("/analytics/events", &events(10, batch)).await;
            match response.status().as_u16() {
                202 => accepted += 10,
                _ => {
                    refused = Some(response);
                    break;
                }
            }
        }
        assert!(accepted > 0);
        assert_unavailable(refused.expect("the bound was reached"), "clickhouse").await;
        accepted
    })
    .await;
    wait_until_ready(&app).await;
    // Every event the spool took before it was full arrives, exactly once.
    common::wait_for_user_activity(&app.tenant, accepted, Duration::from_secs(90)).await;
    let raw = common::clickhouse()
        .query("SELECT count() FROM user_activity WHERE tenant_id = ?")
        .bind(app.tenant.as_str())
        .fetch_one::<u64>()
        .await
        .unwrap();
    assert_eq!(raw, accepted);
}

/// A gateway binary of its own, for killing.
struct Child {
    process: std::process::Child,
    base: String,
    log: std::path::PathBuf,
}

impl Child {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn start_gateway_process(spool: &std::path::Path) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = spool.with_extension(format!("{port}.log"));
    let process = std::process::Command::new(env!("CARGO_BIN_EXE_storage-gateway"))
        .arg("serve")
        .env("PORT", port.to_string())
        .env("GATEWAY__ANALYTICS__SPOOL_DIR", spool)
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(&log).expect("a log file"))
        .spawn()
        .expect("the gateway binary starts");
    Child {
        process,
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

async fn wait_until_serving(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_killed_gateway_ships_every_acknowledged_event_after_restart() {
    let _turn = stack_turn().await;
    let app = spawn_app().await;
    let spool = common::temp_dir("killed-spool");
    let mut child = start_gateway_process(&spool);
    wait_until_serving(&app.http, &child.base).await;
    let mut acknowledged = 0;
    with_service_stopped("clickhouse", || async {
        // Ingest while ClickHouse is away, so the events are only in the spool.
        for batch in 0..10 {
            let response = app
                .http
                .post(format!("{}/analytics/events", child.base))
                .bearer_auth(&app.key)
                .json(&events(100, batch))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}; the gateway's log:\n{}", child.log()));
            assert_eq!(response.status(), 202, "{}", child.log());
            acknowledged += 100;
        }
        child.process.kill().unwrap();
        child.process.wait().unwrap();
    })
    .await;
    wait_until_ready(&app).await;
    let mut restarted = start_gateway_process(&spool);
    wait_until_serving(&app.http, &restarted.base).await;
    common::wait_for_user_activity(&app.tenant, acknowledged, Duration::from_secs(90)).await;
    restarted.process.kill().unwrap();
    restarted.process.wait().unwrap();
}

/// The stack's settings with two rate-limit policies of 100 a minute:
/// `open` allows when Redis is down, `closed` answers 503.
fn open_and_closed_policies() -> storage_gateway::config::Settings {
    use storage_gateway::config::{LimitSettings, PolicySettings, RedisDownMode};
    let mut settings = common::stack_settings();
    for (name, on_redis_down) in [
        ("open", RedisDownMode::Open),
        ("closed", RedisDownMode::Closed),
    ] {
        let limit = LimitSettings {
            name: "m".into(),
            limit: 100,
            window: "1m".into(),
            burst: None,
        };
        let policy = PolicySettings {
            limits: vec![limit],
            shadow: false,
            on_redis_down,
        };
        settings.rate_limit.policies.insert(name.into(), policy);
    }
    settings
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
    let _turn = stack_turn().await;
    let app = common::spawn_app_with(open_and_closed_policies()).await;
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

/// Freezes the stack's Redis (SIGSTOP), as an overloaded or hung server
/// looks from outside: connections stay open and nothing answers.
fn freeze_redis(frozen: bool) {
    let pid_file = std::path::PathBuf::from(std::env::var("STACK_DIR").expect("stack env"))
        .join("run/redis.pid");
    let pid = std::fs::read_to_string(pid_file).expect("Redis runs");
    let signal = if frozen { "-STOP" } else { "-CONT" };
    let status = std::process::Command::new("kill")
        .args([signal, pid.trim()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test]
async fn a_redis_that_does_not_answer_is_timed_out() {
    let _turn = stack_turn().await;
    let app = common::spawn_app_with(open_and_closed_policies()).await;
    let check = |policy: &str| {
        app.request(reqwest::Method::POST, "/rate-limit/check")
            .json(&serde_json::json!({"key": "u", "policy": policy}))
    };
    // Connected and warm before Redis stops answering.
    assert_eq!(check("closed").send().await.unwrap().status(), 200);
    freeze_redis(true);
    let outcome = AssertUnwindSafe(async {
        assert_unavailable(within_bound(check("closed")).await, "redis").await;
        let open = json(within_bound(check("open")).await).await;
        assert_eq!(open["checked"], false, "{open}");
        let cached = within_bound(app.request(reqwest::Method::GET, "/cache/get/k")).await;
        assert_unavailable(cached, "redis").await;
    })
    .catch_unwind()
    .await;
    freeze_redis(false);
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    wait_until_ready(&app).await;
    assert_eq!(check("closed").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_redis_cluster_that_is_down_gives_503_naming_redis() {
    let _turn = stack_turn().await;
    let app = common::spawn_app_with(common::settings_for(common::RedisMode::Cluster)).await;
    let set = || {
        app.request(reqwest::Method::POST, "/cache/set")
            .json(&serde_json::json!({"key": "k", "value": 1}))
    };
    assert_eq!(set().send().await.unwrap().status(), 200);
    with_service_stopped("redis-cluster", || async {
        assert_unavailable(within_bound(set()).await, "redis").await;
        let session = within_bound(
            app.request(reqwest::Method::POST, "/session/create")
                .json(&serde_json::json!({"user_id": "u"})),
        )
        .await;
        assert_unavailable(session, "redis").await;
    })
    .await;
    // Back without a restart of the gateway, once the cluster is whole again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = set().send().await.unwrap().status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster did not come back: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `/analytics/user-activity` over `day`, answering the X-Cache header and
/// the response.
async fn user_activity(app: &TestApp, day: &str) -> (String, reqwest::Response) {
    let path =
        format!("/analytics/user-activity?from={day}T00:00:00Z&to={day}T23:00:00Z&interval=hour");
    let response = app.get(&path).await;
    let cache = response
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (cache, response)
}

#[tokio::test]
async fn dashboards_serve_stale_answers_while_clickhouse_is_down() {
    let _turn = stack_turn().await;
    let mut settings = common::stack_settings();
    // Stale after a second, and no serving stale while refreshing: every
    // request past the second tries ClickHouse first.
    settings.dashboards.user_activity_ttl_secs = 1;
    settings.dashboards.stale_while_revalidate_secs = 0;
    let app = common::spawn_app_with(settings).await;
    let (cache, response) = user_activity(&app, "2026-11-01").await;
    assert_eq!(cache, "MISS");
    let before = json(response).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    with_service_stopped("clickhouse", || async {
        let (cache, response) = user_activity(&app, "2026-11-01").await;
        assert_eq!(response.status(), 200);
        assert_eq!(cache, "STALE");
        assert_eq!(json(response).await, before);
        // Nothing cached for this one: nothing to serve.
        let started = Instant::now();
        let (_, response) = user_activity(&app, "2026-11-02").await;
        assert_unavailable(response, "clickhouse").await;
        assert!(started.elapsed() < Duration::from_secs(10));
    })
    .await;
    wait_until_ready(&app).await;
    let (cache, response) = user_activity(&app, "2026-11-02").await;
    assert_eq!((cache.as_str(), response.status().as_u16()), ("MISS", 200));
}

#[tokio::test]
async fn with_redis_down_dashboards_and_leaderboards_answer_from_their_stores() {
    let _turn = stack_turn().await;
    let app = spawn_app().await;
    let (user, submit) = common::user_and_challenge(&app).await;
    let board = submit.replace("/submissions", "/leaderboard");
    let submission = serde_json::json!({"user_id": user, "language": "c", "score": 42.5});
    assert_eq!(app.post_json(&submit, &submission).await.status(), 201);
    with_service_stopped("redis", || async {
        let (cache, response) = user_activity(&app, "2026-11-03").await;
        assert_eq!(response.status(), 200);
        assert_eq!(cache, "MISS");
        let metrics = app.metrics_text().await;
        assert!(
            common::metric_value(
                &metrics,
                "gateway_dashboard_requests_total{cache=\"bypassed\",report=\"user-activity\"}"
            ) >= 1.0,
            "{metrics}"
        );
        let response = app.get(&board).await;
        assert_eq!(response.status(), 200);
        let standing = json(response).await;
        assert_eq!(standing["source"], "postgres");
        assert_eq!(standing["entries"][0]["score"], 42.5);
        // A submission is stored even though its leaderboard update is not.
        let submission = serde_json::json!({"user_id": user, "language": "c", "score": 50});
        assert_eq!(app.post_json(&submit, &submission).await.status(), 201);
    })
    .await;
    wait_until_ready(&app).await;
    let standing = json(app.get(&board).await).await;
    assert_eq!(standing["entries"][0]["score"], 50.0, "{standing}");
}

#[tokio::test]
async fn a_large_submission_with_kubo_down_is_503_and_stores_nothing() {
    let _turn = stack_turn().await;
    let app = spawn_app().await;
    let (user, submit) = common::user_and_challenge(&app).await;
    // Over the inline threshold: the output must go to IPFS first.
    let submission = serde_json::json!({
        "user_id": user, "language": "c", "score": 10, "output": "x".repeat(200_000),
    });
    // The same as a form, whose output part would stream straight to Kubo.
    let form = || {
        let meta = serde_json::json!({"user_id": user, "language": "c", "score": 10});
        reqwest::multipart::Form::new()
            .text("submission", meta.to_string())
            .part(
                "output",
                reqwest::multipart::Part::bytes(vec![b'x'; 3 << 20]),
            )
    };
    let post_form = || {
        app.request(reqwest::Method::POST, &submit)
            .multipart(form())
            .send()
    };
    with_service_stopped("kubo1", || async {
        assert_unavailable(app.post_json(&submit, &submission).await, "kubo").await;
        assert_unavailable(post_form().await.expect("form sent"), "kubo").await;
        let client = common::postgres(&std::env::var("DATABASE_URL").unwrap()).await;
        let rows: i64 = client
            .query_one(
                "SELECT count(*) FROM submissions WHERE tenant_id = $1",
                &[&app.tenant.as_str()],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "no submission without its output");
        assert_eq!(app.file_rows().await, 0, "no file left pending");
    })
    .await;
    wait_until_ready(&app).await;
    assert_eq!(app.post_json(&submit, &submission).await.status(), 201);
    assert_eq!(post_form().await.unwrap().status(), 201);
}

#[tokio::test]
async fn the_backend_probe_reports_a_stopped_store() {
    let _turn = stack_turn().await;
    let mut settings = common::stack_settings();
    settings.server.backend_probe_interval_secs = 1;
    let app = common::spawn_app_with(settings).await;
    let sample = |store: &str| format!("gateway_backend_up{{store=\"{store}\"}}");
    let until = |store: &'static str, value: f64| {
        let app = &app;
        let sample = sample(store);
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let metrics = app.metrics_text().await;
                if metrics.lines().any(|l| l.starts_with(&sample))
                    && common::metric_value(&metrics, &sample) == value
                {
                    return;
                }
                assert!(Instant::now() < deadline, "{sample} never became {value}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    until("clickhouse", 1.0).await;
    with_service_stopped("clickhouse", || async {
        until("clickhouse", 0.0).await;
        until("postgres", 1.0).await;
    })
    .await;
    until("clickhouse", 1.0).await;
    wait_until_ready(&app).await;
}

/// A tus request on `url` with the test's key.
fn tus(app: &TestApp, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
    app.http
        .request(method, url)
        .bearer_auth(&app.key)
        .header("Tus-Resumable", "1.0.0")
}

fn tus_patch(app: &TestApp, url: &str, offset: usize, body: Vec<u8>) -> reqwest::RequestBuilder {
    tus(app, reqwest::Method::PATCH, url)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(body)
}

#[tokio::test]
async fn a_resumable_upload_whose_last_part_meets_a_cluster_outage_finishes_after_it() {
    let _turn = stack_turn().await;
    let app = spawn_app().await;
    let content: Vec<u8> = format!("accepted parts are kept {}", uuid::Uuid::new_v4())
        .repeat(30_000)
        .into_bytes();
    let half = content.len() / 2;
    let created = tus(&app, reqwest::Method::POST, &app.url("/files/tus"))
        .header("Upload-Length", content.len().to_string())
        .header("Upload-Metadata", "filename a2VwdC5iaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let url = created.headers()["Location"].to_str().unwrap().to_owned();
    let first = tus_patch(&app, &url, 0, content[..half].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 204);
    with_service_stopped("cluster1", || async {
        let last = tus_patch(&app, &url, half, content[half..].to_vec())
            .send()
            .await
            .unwrap();
        assert_unavailable(last, "cluster").await;
        // Every byte is kept, the file is not made yet.
        let head = tus(&app, reqwest::Method::HEAD, &url).send().await.unwrap();
        assert_eq!(
            head.headers()["Upload-Offset"],
            content.len().to_string().as_str()
        );
        assert!(head.headers().get("X-Ipfs-Path").is_none());
        assert_eq!(app.get("/files").await.status(), 200);
        let listed = json(app.get("/files").await).await;
        assert_eq!(listed["files"].as_array().unwrap().len(), 0);
    })
    .await;
    wait_until_ready(&app).await;
    // The last PATCH again, at the end and with nothing more to send.
    let retried = tus_patch(&app, &url, content.len(), Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 204);
    let path = retried.headers()["X-Ipfs-Path"]
        .to_str()
        .unwrap()
        .to_owned();
    let cid = path.trim_start_matches("/ipfs/");
    let plain = common::spawn_app().await;
    let stored = json(plain.upload(&[("name", "plain")], content.clone()).await).await;
    assert_eq!(stored["cid"], cid);
    let file = json(app.get(&format!("/files/{cid}")).await).await;
    assert_eq!(file["size"], content.len());
    assert_eq!(ref_count(cid).await, 2, "one reference from each tenant");
}
