//! Hostile callers and noisy tenants, against the real stack: each case is
//! something a caller controls that once cost the gateway memory, storage,
//! metric series or another tenant's service, and the bound that stops it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{json, metric_value, postgres, spawn_app, spawn_app_with, stack_settings};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Method;

/// Series of the gateway's HTTP metrics in a `/metrics` text.
fn http_series(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|line| line.starts_with("gateway_http_"))
        .count()
}

#[tokio::test]
async fn invented_methods_do_not_grow_the_metric_series() {
    let app = spawn_app().await;
    let invented = |i: usize| Method::from_bytes(format!("M{i}X").as_bytes()).unwrap();
    // The first invented method makes the OTHER series; no later one may
    // add any.
    let first = app
        .http
        .request(invented(0), app.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 405);
    assert_eq!(first.headers()["allow"], "GET");
    assert_eq!(json(first).await["error"]["code"], "method_not_allowed");
    // The first scrape makes the series of /metrics itself.
    app.metrics_text().await;
    let before = http_series(&app.metrics_text().await);

    let sent = futures_util::stream::iter(1..=5_000)
        .map(|i| {
            let request = app.http.request(invented(i), app.url("/health"));
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(16)
        .collect::<Vec<u16>>()
        .await;
    assert!(sent.iter().all(|status| *status == 405), "every one is 405");

    let metrics = app.metrics_text().await;
    assert_eq!(http_series(&metrics), before, "no new series");
    assert!(!metrics.contains("M17X"), "no invented method is a label");
    assert!(
        metric_value(
            &metrics,
            "gateway_http_requests_total{method=\"OTHER\",route=\"/health\",status=\"405\"}"
        ) >= 5_001.0
    );
}

#[tokio::test]
async fn requests_are_labelled_by_route_template_whatever_the_path() {
    let app = spawn_app().await;
    // Served (400 from the handler: no session id), refused before
    // routing (401), a wrong method (405) and no route at all (404): each
    // path is one the caller invents, and none may become a label.
    let ids: Vec<String> = (0..3).map(|i| format!("sess_invented{i}")).collect();
    for id in &ids {
        assert_eq!(app.get(&format!("/session/{id}")).await.status(), 400);
        let anonymous = app.http.get(app.url(&format!("/session/{id}")));
        assert_eq!(anonymous.send().await.unwrap().status(), 401);
        let wrong = app.request(Method::PUT, &format!("/session/{id}/rotate"));
        assert_eq!(wrong.send().await.unwrap().status(), 405);
        assert_eq!(app.get(&format!("/nowhere/{id}")).await.status(), 404);
    }
    let metrics = app.metrics_text().await;
    for sample in [
        "gateway_http_requests_total{method=\"GET\",route=\"/session/{id}\",status=\"400\"}",
        "gateway_http_requests_total{method=\"GET\",route=\"/session/{id}\",status=\"401\"}",
        "gateway_http_requests_total{method=\"PUT\",route=\"/session/{id}/rotate\",status=\"405\"}",
        "gateway_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
    ] {
        assert!(
            metric_value(&metrics, sample) >= 3.0,
            "{sample} counted each time:\n{}",
            metrics
                .lines()
                .filter(|line| line.starts_with("gateway_http_requests_total"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(!ids.iter().any(|id| metrics.contains(id.as_str())));
    assert!(!metrics.contains("/nowhere"));
}

#[tokio::test]
async fn every_405_names_the_methods_the_path_has() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (Method::PUT, "/files/upload", "POST"),
        (Method::POST, "/files/x", "GET, DELETE"),
        (Method::DELETE, "/files/x/download", "GET, HEAD"),
        (Method::PATCH, "/cache/get/a/b", "GET"),
        (Method::GET, "/session/create", "POST"),
    ] {
        let response = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
    }
}

#[tokio::test]
async fn a_refused_upload_leaves_no_pin_and_no_row() {
    let app = spawn_app().await;
    let content = format!("refused {}", uuid::Uuid::new_v4());
    let cid = crate::common::cid_of(content.as_bytes()).await;
    let form = reqwest::multipart::Form::new()
        .text("metadata", r#"{"x":"\u0000"}"#)
        .part(
            "file",
            reqwest::multipart::Part::bytes(content.into_bytes()).file_name("nul.txt"),
        );
    let response = app.upload_form(form).await;
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "invalid_metadata", "{body}");
    assert_eq!(app.file_rows().await, 0, "no row, pending or committed");
    assert!(!crate::common::cluster_holds(&cid).await, "no pin of {cid}");
}

#[tokio::test]
async fn an_upload_that_outlives_its_pending_row_is_rolled_back_whole() {
    let app = spawn_app().await;
    let content = format!("slow {}", uuid::Uuid::new_v4());
    let cid = crate::common::cid_of(content.as_bytes()).await;
    // The body's last byte arrives only after the pending row is gone, as
    // the reconciler leaves it once files.pending_expiry_secs has passed
    // (done here by hand, for this tenant alone: every gateway's reconciler
    // sweeps every tenant, and other tests upload meanwhile).
    let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
    let body = futures_util::stream::once(async move {
        let _ = receiver.await;
        Ok::<_, std::io::Error>(Bytes::from(content))
    });
    let upload = app.upload(&[("name", "slow.txt")], reqwest::Body::wrap_stream(body));
    let expire = async {
        let client = postgres(&std::env::var("DATABASE_URL").unwrap()).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let expired = client
                .execute(
                    "DELETE FROM file_metadata WHERE tenant_id = $1 AND state = 'writing'",
                    &[&app.tenant.as_str()],
                )
                .await
                .unwrap();
            if expired == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "the upload never began");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sender.send(()).unwrap();
    };
    let (response, ()) = futures_util::future::join(upload, expire).await;
    assert_eq!(response.status(), 408);
    assert_eq!(json(response).await["error"]["code"], "upload_expired");
    assert_eq!(app.file_rows().await, 0);
    assert!(!crate::common::cluster_holds(&cid).await, "no pin of {cid}");
}

#[tokio::test]
async fn gateway_pins_no_file_owns_are_removed_after_the_grace() {
    let mut settings = stack_settings();
    settings.files.orphan_pin_grace_secs = 0;
    settings.files.reconcile_interval_secs = 1;
    let app = spawn_app_with(settings).await;
    // A file the gateway stores: its pin stays.
    let owned = format!("owned {}", uuid::Uuid::new_v4());
    let response = app.upload(&[("name", "owned.txt")], owned.clone()).await;
    assert_eq!(response.status(), 201);
    let owned_cid = json(response).await["cid"].as_str().unwrap().to_owned();
    // Pins made straight in the Cluster: one named as the gateway names
    // its pins (as a pin whose commit was lost would be), one not.
    let add = |name: String, content: String| async move {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::text(content).file_name("f"),
        );
        let body = reqwest::Client::new()
            .post(format!("{}/add", crate::common::cluster_url()))
            .query(&[("name", name.as_str()), ("cid-version", "1")])
            .multipart(form)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let added: serde_json::Value = serde_json::from_str(body.lines().last().unwrap()).unwrap();
        added["cid"].as_str().unwrap().to_owned()
    };
    let orphan = add(
        format!("storage-gateway:orphan-{}", uuid::Uuid::new_v4()),
        format!("orphan {}", uuid::Uuid::new_v4()),
    )
    .await;
    let foreign = add(
        format!("someone-else-{}", uuid::Uuid::new_v4()),
        format!("foreign {}", uuid::Uuid::new_v4()),
    )
    .await;
    assert!(crate::common::cluster_holds(&orphan).await);

    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::common::cluster_holds(&orphan).await {
        assert!(Instant::now() < deadline, "the orphan pin {orphan} stayed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        crate::common::cluster_holds(&foreign).await,
        "another system's pin stays"
    );
    assert!(
        crate::common::cluster_holds(&owned_cid).await,
        "a stored file's pin stays"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metric_value(
            &metrics,
            "gateway_file_reconciler_actions_total{action=\"orphan_pin_removed\"}"
        ) >= 1.0
    );
    reqwest::Client::new()
        .delete(format!("{}/pins/{foreign}", crate::common::cluster_url()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn parallel_uploads_never_exceed_the_quota() {
    const SIZE: usize = 4096;
    let mut settings = stack_settings();
    settings.files.tenant_quota_bytes = (SIZE * 5) as u64;
    let app = spawn_app_with(settings).await;
    let statuses = futures_util::future::join_all((0..20).map(|i| {
        let mut body = format!("{i:04}-{}", uuid::Uuid::new_v4()).into_bytes();
        body.resize(SIZE, b'.');
        let name = format!("q{i}.bin");
        let app = &app;
        async move {
            app.upload(&[("name", name.as_str())], body)
                .await
                .status()
                .as_u16()
        }
    }))
    .await;
    let stored = statuses.iter().filter(|s| **s == 201).count();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 413),
        "{statuses:?}"
    );
    assert_eq!(stored, 5, "exactly the quota's worth: {statuses:?}");
    let client = postgres(&std::env::var("DATABASE_URL").unwrap()).await;
    let row = client
        .query_one(
            "SELECT coalesce(sum(size_bytes), 0)::bigint, \
               count(*) FILTER (WHERE state = 'writing') \
             FROM file_metadata WHERE tenant_id = $1",
            &[&app.tenant.as_str()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), (SIZE * 5) as i64);
    assert_eq!(row.get::<_, i64>(1), 0, "no reservation left behind");
}

#[tokio::test]
async fn uploads_and_deletes_of_one_content_race_without_deadlock_or_loss() {
    let app = spawn_app().await;
    let other = app.other_tenant_key().await;
    let content = format!("race {}", uuid::Uuid::new_v4());
    for round in 0..25 {
        let upload = |key: String| {
            let app = &app;
            let content = content.clone();
            async move {
                app.http
                    .post(app.url("/files/upload"))
                    // Waiting for the pin polls the Cluster while the
                    // delete's unpin may have taken the pin out of its set.
                    .query(&[("name", "race.txt"), ("wait", "pinned")])
                    .bearer_auth(key)
                    .body(content)
                    .send()
                    .await
                    .unwrap()
            }
        };
        let first = upload(app.key.clone()).await;
        assert_eq!(first.status(), 201, "round {round}");
        let cid = json(first).await["cid"].as_str().unwrap().to_owned();
        let delete = async {
            app.http
                .delete(app.url(&format!("/files/{cid}")))
                .bearer_auth(&app.key)
                .send()
                .await
                .unwrap()
        };
        let (deleted, again, theirs) = tokio::time::timeout(
            Duration::from_secs(30),
            futures_util::future::join3(delete, upload(app.key.clone()), upload(other.clone())),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round} did not finish: a deadlock"));
        assert_eq!(deleted.status(), 204, "round {round}: delete");
        assert_eq!(again.status(), 201, "round {round}");
        assert_eq!(theirs.status(), 201, "round {round}");
        // The other tenant's file exists, so the content is pinned. The
        // first tenant's delete and upload ran together: either order is
        // a fair outcome, and its file exists exactly when the delete went
        // first.
        assert!(
            crate::common::cluster_holds(&cid).await,
            "round {round}: {cid} unpinned"
        );
        let delete_as = |key: &str| {
            app.http
                .delete(app.url(&format!("/files/{cid}")))
                .bearer_auth(key)
                .send()
        };
        let first = delete_as(&app.key).await.unwrap().status().as_u16();
        assert!([204, 404].contains(&first), "round {round}: {first}");
        assert_eq!(
            delete_as(&other).await.unwrap().status(),
            204,
            "round {round}"
        );
        assert!(
            !crate::common::cluster_holds(&cid).await,
            "round {round}: left pinned"
        );
    }
}

#[tokio::test]
async fn out_of_range_cursors_and_nul_bytes_are_400() {
    let app = spawn_app().await;
    // A cursor the API could have given, but for a time Postgres cannot hold.
    let far = hex::encode(format!(
        "{}:{}",
        -200_000_000_000_000_000_000i128,
        uuid::Uuid::new_v4().simple()
    ));
    let response = app.get(&format!("/files?cursor={far}")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(json(response).await["error"]["code"], "invalid_cursor");

    let (user, submit) = crate::common::user_and_challenge(&app).await;
    for body in [
        serde_json::json!({"user_id": user, "language": "rust", "code": "fn\u{0}"}),
        serde_json::json!({"user_id": user, "language": "rust", "output": "a\u{0}b"}),
    ] {
        let response = app.post_json(&submit, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(json(response).await["error"]["code"], "invalid_field");
    }
}

#[tokio::test]
async fn readiness_detail_is_for_admins_only() {
    let app = spawn_app().await;
    let anonymous = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(anonymous.status(), 200);
    assert_eq!(
        json(anonymous).await,
        serde_json::json!({"status": "ready"})
    );
    let reader = app
        .key_with(&[storage_gateway::auth::Scope::FilesRead])
        .await;
    let not_admin = json(app.get_as("/ready", &reader).await).await;
    assert!(not_admin.get("backends").is_none(), "{not_admin}");
    let admin = json(app.get("/ready").await).await;
    assert_eq!(admin["backends"]["postgres"]["status"], "up", "{admin}");
}

#[tokio::test]
async fn a_repeated_unknown_key_costs_one_postgres_lookup() {
    let app = spawn_app().await;
    let lookups = |metrics: &str| {
        metric_value(
            metrics,
            "gateway_store_calls_total{operation=\"find_api_key\",outcome=\"ok\",store=\"postgres\"}",
        )
    };
    let before = lookups(&app.metrics_text().await);
    let unknown = format!("sgw_{}_{}", "ab".repeat(8), "cd".repeat(32));
    for _ in 0..50 {
        let response = app.get_as("/auth/whoami", &unknown).await;
        assert_eq!(response.status(), 401);
    }
    let after = lookups(&app.metrics_text().await);
    assert_eq!(after - before, 1.0, "one lookup, then remembered");
}

/// Sends `head` a byte at a time, slower than the server lets headers take,
/// and answers how long until the server closed the connection.
fn trickle_headers(port: u16, head: &[u8], pause: Duration) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    for byte in head {
        if stream.write_all(&[*byte]).is_err() {
            return started.elapsed();
        }
        let mut buffer = [0u8; 512];
        match stream.read(&mut buffer) {
            Ok(0) => return started.elapsed(),
            // The server answered (408) and will close.
            Ok(_) => return started.elapsed(),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return started.elapsed(),
        }
        std::thread::sleep(pause);
    }
    panic!(
        "the server took every header byte, slowly, for {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_loris_is_dropped_within_the_header_timeout() {
    let mut settings = stack_settings();
    settings.server.request_header_timeout_ms = 1000;
    let app = spawn_app_with(settings).await;
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let took = tokio::task::spawn_blocking(move || {
        trickle_headers(port, head, Duration::from_millis(100))
    })
    .await
    .unwrap();
    // 1 s allowed; the whole head at this pace would take over 8 s.
    assert!(took < Duration::from_secs(4), "dropped after {took:?}");
}

#[tokio::test]
async fn a_stalled_upload_body_is_dropped_and_rolled_back() {
    let mut settings = stack_settings();
    settings.server.idle_timeout_secs = 1;
    let app = spawn_app_with(settings).await;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    sender
        .send(Ok(Bytes::from_static(b"the start")))
        .await
        .unwrap();
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    let started = Instant::now();
    let response = app
        .upload(&[("name", "stalled.txt")], reqwest::Body::wrap_stream(body))
        .await;
    let took = started.elapsed();
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "incomplete_body", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("idle_timeout_secs"));
    assert!(took < Duration::from_secs(10), "dropped after {took:?}");
    assert_eq!(app.file_rows().await, 0, "the pending upload is gone");
    drop(sender);
}

/// An NDJSON body of about `total` bytes of valid events, made as it is
/// sent, and its exact length.
fn event_body(total: usize) -> (reqwest::Body, usize) {
    let properties = format!("{{\"pad\":\"{}\"}}", "p".repeat(8000));
    let line = format!("{{\"event_type\":\"bulk\",\"properties\":{properties}}}\n");
    let chunk = Bytes::from(line.repeat(64));
    let chunks = total / chunk.len();
    let body = reqwest::Body::wrap_stream(
        futures_util::stream::iter(0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    (body, chunks * 64 * line.len())
}

#[tokio::test]
async fn eight_large_event_bodies_at_once_stay_within_memory_and_other_tenants_are_served() {
    let app = spawn_app().await;
    let other = app.other_tenant_key().await;
    let gateway = crate::common::GatewayProcess::start(&[]);
    gateway.wait_until_serving().await;
    let start_rss = gateway.peak_rss();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();

    let bodies = futures_util::future::join_all((0..8).map(|_| {
        let (body, length) = event_body(63 * 1024 * 1024);
        let request = client
            .post(format!("{}/analytics/events", gateway.base))
            .bearer_auth(&app.key)
            .header("content-type", "application/x-ndjson")
            .header("content-length", length)
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: serde_json::Value = response.json().await.unwrap();
            (status, retry_after, body)
        }
    }));
    // Meanwhile another tenant's small requests are answered.
    let others = async {
        let mut answered = Vec::new();
        for _ in 0..20 {
            let response = client
                .get(format!("{}/auth/whoami", gateway.base))
                .bearer_auth(&other)
                .send()
                .await
                .unwrap();
            answered.push(response.status().as_u16());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        answered
    };
    let (outcomes, answered) = futures_util::future::join(bodies, others).await;

    assert!(answered.iter().all(|s| *s == 200), "{answered:?}");
    let accepted = outcomes.iter().filter(|(s, _, _)| *s == 202).count();
    assert!(accepted >= 1, "{outcomes:?}");
    for (status, retry_after, body) in &outcomes {
        match status {
            202 => assert!(body["accepted"].as_u64().unwrap() > 7_000),
            503 => {
                assert!(retry_after);
                assert_eq!(body["error"]["code"], "overloaded", "{body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let peak = gateway.peak_rss();
    println!(
        "accepted {accepted} of 8 bodies; peak RSS {} MiB (at start {} MiB)",
        peak / (1024 * 1024),
        start_rss / (1024 * 1024)
    );
    assert!(
        peak < 256 * 1024 * 1024,
        "peak RSS {} MiB (at start {} MiB)",
        peak / (1024 * 1024),
        start_rss / (1024 * 1024)
    );
}

#[tokio::test]
async fn a_flood_of_empty_events_is_refused_early() {
    let app = spawn_app().await;
    let max = app.state.settings.analytics.max_events_per_request;
    // One event more than allowed, then a lot more bytes that are never read.
    let body = "{}\n".repeat(max + 1) + &"{}\n".repeat(1_000_000);
    let response = app
        .http
        .post(app.url("/analytics/events"))
        .bearer_auth(&app.key)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body = json(response).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_events_per_request"),
        "{body}"
    );
    let array = format!("[{}{{}}]", "{},".repeat(max));
    let response = app
        .http
        .post(app.url("/analytics/events"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(array)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

/// A Redis of its own with a tiny `maxmemory`, stopped when dropped.
struct SmallRedis {
    child: std::process::Child,
    url: String,
}

impl SmallRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (installed by scripts/stack) runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }
}

impl Drop for SmallRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_full_redis_is_503_naming_redis_not_500() {
    let redis = SmallRedis::start();
    let mut settings = stack_settings();
    settings.redis.url = redis.url.clone().into();
    let app = spawn_app_with(settings).await;
    let value = "v".repeat(200_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        assert!(Instant::now() < deadline, "Redis never filled up");
        let response = app
            .post_json(
                "/cache/set",
                &serde_json::json!({"key": uuid::Uuid::new_v4().to_string(), "value": value}),
            )
            .await;
        if !response.status().is_success() {
            break response;
        }
    };
    assert_eq!(refused.status(), 503);
    let body = json(refused).await;
    assert_eq!(body["error"]["code"], "backend_unavailable", "{body}");
    assert_eq!(body["error"]["backend"], "redis", "{body}");
}

#[tokio::test]
async fn a_tenant_at_its_cache_budget_is_refused_and_others_are_unaffected() {
    let mut settings = stack_settings();
    settings.cache.max_keys_per_tenant = 5;
    settings.cache.max_bytes_per_tenant = 64 * 1024;
    let app = spawn_app_with(settings).await;
    let other = app.other_tenant_key().await;
    let set = |key: &str, name: String, value: serde_json::Value| {
        let body = serde_json::json!({"key": name, "value": value});
        let key = key.to_owned();
        let app = &app;
        async move {
            app.post_json_as("/cache/set", &key, &body)
                .await
                .status()
                .as_u16()
        }
    };
    for i in 0..5 {
        assert_eq!(set(&app.key, format!("k{i}"), "v".into()).await, 200);
    }
    let refused = app
        .post_json(
            "/cache/set",
            &serde_json::json!({"key": "k5", "value": "v"}),
        )
        .await;
    assert_eq!(refused.status(), 413);
    assert!(json(refused).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_keys_per_tenant"));
    // A key it holds may be replaced; a deleted one makes room.
    assert_eq!(set(&app.key, "k0".into(), "w".into()).await, 200);
    assert_eq!(app.delete("/cache/k1").await.status(), 204);
    assert_eq!(set(&app.key, "k5".into(), "v".into()).await, 200);
    // Bytes are budgeted too.
    let big = serde_json::Value::String("b".repeat(70 * 1024));
    assert_eq!(set(&app.key, "k0".into(), big.clone()).await, 413);

    // The other tenant has its own budget, and its rate limits answer
    // exactly as ever: the default policy's burst of 20, then 429.
    assert_eq!(set(&other, "k0".into(), "v".into()).await, 200);
    let limited = format!("client-{}", uuid::Uuid::new_v4());
    let mut statuses = Vec::new();
    for _ in 0..21 {
        let response = app
            .post_json_as(
                "/rate-limit/check",
                &other,
                &serde_json::json!({"key": limited}),
            )
            .await;
        statuses.push(response.status().as_u16());
    }
    let mut expected = vec![200; 20];
    expected.push(429);
    assert_eq!(statuses, expected);
}

#[tokio::test]
async fn one_tenants_refused_rows_never_set_aside_another_tenants() {
    let mut settings = stack_settings();
    let database = crate::common::unique("tenants").replace('-', "_");
    settings.clickhouse.database = database.clone();
    // Both tenants' events land in one batch.
    settings.analytics.batch_max_delay_ms = 2000;
    let spool = settings.analytics.spool_dir.clone();
    let app = spawn_app_with(settings).await;
    let other = app.other_tenant_key().await;
    // A table that takes only the first tenant's rows: ClickHouse refuses
    // any other tenant id as not one of the Enum's values.
    let clickhouse = crate::common::clickhouse().with_database(&database);
    clickhouse
        .query("DROP TABLE user_activity")
        .execute()
        .await
        .unwrap();
    clickhouse
        .query(&format!(
            "CREATE TABLE user_activity (event_id UUID, tenant_id Enum8('{}' = 1), \
             user_id String, event_type String, timestamp DateTime, properties String, \
             inserted_at DateTime DEFAULT now()) \
             ENGINE = ReplacingMergeTree() ORDER BY (tenant_id, event_id)",
            app.tenant
        ))
        .execute()
        .await
        .unwrap();
    let events = |prefix: &str| -> Vec<serde_json::Value> {
        (0..3)
            .map(|_| serde_json::json!({"event_id": uuid::Uuid::new_v4(), "event_type": prefix}))
            .collect()
    };
    let (good, bad) = (events("good"), events("bad"));
    let (first, second) = futures_util::future::join(
        app.post_json("/analytics/events", &serde_json::json!(good)),
        app.post_json_as("/analytics/events", &other, &serde_json::json!(bad)),
    )
    .await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (202, 202)
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let arrived = clickhouse
            .query("SELECT count() FROM user_activity")
            .fetch_one::<u64>()
            .await
            .unwrap();
        let set_aside = metric_value(
            &app.metrics_text().await,
            "gateway_analytics_events_total{outcome=\"quarantined\"}",
        );
        if arrived == 3 && set_aside == 3.0 {
            break;
        }
        assert!(
            arrived <= 3 && set_aside <= 3.0 && Instant::now() < deadline,
            "{arrived} arrived, {set_aside} set aside"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let files: Vec<String> = std::fs::read_dir(spool.join("rejected"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    assert_eq!(files.len(), 1, "one file, of the refused tenant");
    for event in &bad {
        assert!(files[0].contains(event["event_id"].as_str().unwrap()));
    }
    for event in &good {
        assert!(!files[0].contains(event["event_id"].as_str().unwrap()));
    }
}

#[tokio::test]
async fn a_cold_board_of_many_users_is_rebuilt_once_in_parts() {
    let app = spawn_app().await;
    let (_, submit) = crate::common::user_and_challenge(&app).await;
    let challenge = submit.split('/').nth(2).unwrap().to_owned();
    // 2,500 users with a score each, written straight into Postgres.
    let client = postgres(&std::env::var("DATABASE_URL").unwrap()).await;
    let tenant = app.tenant.as_str();
    client
        .execute(
            "INSERT INTO users (id, tenant_id, external_id) \
             SELECT md5($1 || g::text)::uuid, $1, 'bulk-' || g FROM generate_series(1, 2500) g",
            &[&tenant],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO submissions (id, tenant_id, challenge_id, user_id, language, status, score) \
             SELECT md5('s' || $1 || g::text)::uuid, $1, $2::text::uuid, md5($1 || g::text)::uuid, \
               'rust', 'passed', g FROM generate_series(1, 2500) g",
            &[&tenant, &challenge],
        )
        .await
        .unwrap();
    let calls = |metrics: &str, operation: &str| {
        metric_value(
            metrics,
            &format!(
                "gateway_store_calls_total{{operation=\"{operation}\",outcome=\"ok\",store=\"{}\"}}",
                if operation == "best_scores" { "postgres" } else { "redis" }
            ),
        )
    };
    let before = app.metrics_text().await;
    let boards = futures_util::future::join_all((0..20).map(|_| async {
        json(
            app.get(&format!("/challenges/{challenge}/leaderboard?limit=3"))
                .await,
        )
        .await
    }))
    .await;
    for board in &boards {
        assert_eq!(board["ranked_users"], 2500, "{board}");
        assert_eq!(board["entries"][0]["score"], 2500.0, "{board}");
        assert_ne!(board["source"], "postgres", "{board}");
    }
    let after = app.metrics_text().await;
    assert_eq!(
        calls(&after, "best_scores") - calls(&before, "best_scores"),
        1.0,
        "one Postgres read for twenty readers"
    );
    assert_eq!(
        calls(&after, "leaderboard_rebuild") - calls(&before, "leaderboard_rebuild"),
        3.0,
        "merged in parts of 1,000 users"
    );
}
