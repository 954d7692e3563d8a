//! Event ingestion into the real ClickHouse, through the gateway's spool.

use std::time::Duration;

use crate::common::{json, spawn_app, spawn_app_with, stack_settings, wait_for_user_activity};
use reqwest::StatusCode;
use serde_json::{json, Value};
use storage_gateway::auth::Scope;

fn batch(n: usize, event_type: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "event_id": uuid::Uuid::new_v4().to_string(),
                "event_type": event_type,
                "user_id": format!("user-{}", i % 7),
                "timestamp": "2026-11-20T10:00:00Z",
                "properties": {"i": i},
            })
        })
        .collect()
}

#[tokio::test]
async fn accepted_events_reach_clickhouse_once_each() {
    let app = spawn_app().await;
    let events = batch(50, "click");
    let response = app.post_json("/analytics/events", &json!(events)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body = json(response).await;
    assert_eq!(body["accepted"], 50);
    assert_eq!(body["event_ids"][0], events[0]["event_id"]);

    // NDJSON, and events without ids or times: the gateway fills them in.
    let ndjson: String = (0..20)
        .map(|i| format!("{{\"event_type\": \"view\", \"properties\": {{\"n\": {i}}}}}\n"))
        .collect();
    let response = app
        .request(reqwest::Method::POST, "/analytics/events")
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let ids = json(response).await["event_ids"].as_array().unwrap().len();
    assert_eq!(ids, 20);

    // One object alone is a batch of one.
    let single = app
        .post_json(
            "/analytics/events",
            &json!({"event_type": "login", "user_id": "u"}),
        )
        .await;
    assert_eq!(single.status(), StatusCode::ACCEPTED);
    wait_for_user_activity(&app.tenant, 71, Duration::from_secs(30)).await;
    // Every id differs, so no merge can have folded rows away: a shipper
    // that inserted a batch twice would show here.
    assert_eq!(raw_user_activity_rows(&app.tenant).await, 71);

    // The same batch again (a client's retry) is counted once.
    let again = app.post_json("/analytics/events", &json!(events)).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let marker = app
        .post_json("/analytics/events", &json!({"event_type": "marker"}))
        .await;
    assert_eq!(marker.status(), StatusCode::ACCEPTED);
    wait_for_user_activity(&app.tenant, 72, Duration::from_secs(30)).await;
    // The retry's 50 rows are stored until a merge folds them into their
    // twins; never more than that.
    let raw = raw_user_activity_rows(&app.tenant).await;
    assert!((72..=122).contains(&raw), "{raw} raw rows");

    // Everything accepted (the activity rows of the gateway's own too) was
    // acknowledged by ClickHouse exactly once, and nothing waits.
    let (accepted, inserted) = wait_until_nothing_pending(&app).await;
    assert!(accepted >= 122, "{accepted} accepted");
    assert_eq!(inserted, accepted);
    let metrics = app.metrics_text().await;
    assert!(
        crate::common::metric_value(
            &metrics,
            "gateway_analytics_events_total{outcome=\"inserted\"}"
        ) >= inserted as f64,
        "{metrics}"
    );
}

/// Rows of the tenant in `user_activity` as stored, before any merge
/// folds duplicates.
async fn raw_user_activity_rows(tenant: &storage_gateway::auth::TenantId) -> u64 {
    crate::common::clickhouse()
        .query("SELECT count() FROM user_activity WHERE tenant_id = ?")
        .bind(tenant.as_str())
        .fetch_one::<u64>()
        .await
        .expect("ClickHouse answers")
}

/// Waits until the app's spool is empty, and answers its accepted and
/// inserted event counts then.
async fn wait_until_nothing_pending(app: &crate::common::TestApp) -> (u64, u64) {
    let metrics = &app.state.metrics;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let accepted = metrics
            .analytics_events
            .with_label_values(&["accepted"])
            .get();
        let inserted = metrics
            .analytics_events
            .with_label_values(&["inserted"])
            .get();
        let pending = metrics.analytics_spool_events.get();
        if pending == 0 && accepted == inserted {
            return (accepted, inserted);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 30 s: {accepted} accepted, {inserted} inserted, {pending} pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_batch_with_a_bad_event_is_refused_whole() {
    let app = spawn_app().await;
    let mut events = batch(3, "click");
    events[1]["timestamp"] = json!("last tuesday");
    events.push(json!({"event_type": "has space"}));
    let response = app.post_json("/analytics/events", &json!(events)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "invalid_events");
    let named: Vec<u64> = body["error"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(named, vec![1, 3]);
    assert!(body["error"]["events"][0]["error"]
        .as_str()
        .unwrap()
        .contains("RFC 3339"));

    for (content_type, body, mentions) in [
        ("application/json", "{oops", "not JSON"),
        ("application/json", "[]", "no events"),
        ("application/json", "42", "object"),
        (
            "application/x-ndjson",
            "{\"event_type\": \"a\"}\nnope\n",
            "line 2",
        ),
    ] {
        let response = app
            .request(reqwest::Method::POST, "/analytics/events")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let message = json(response).await["error"]["message"].to_string();
        assert!(message.contains(mentions), "{body}: {message}");
    }

    // Events are shipped in the order accepted: once a later one is in
    // ClickHouse, the refused ones would be too, had they been taken.
    let later = app
        .post_json("/analytics/events", &json!({"event_type": "later"}))
        .await;
    assert_eq!(later.status(), StatusCode::ACCEPTED);
    wait_for_user_activity(&app.tenant, 1, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn sizes_and_scopes_are_bounded() {
    let mut settings = stack_settings();
    settings.analytics.max_body_bytes = 2_000;
    settings.analytics.max_events_per_request = 5;
    let app = spawn_app_with(settings).await;
    let too_many = app
        .post_json("/analytics/events", &json!(batch(6, "a")))
        .await;
    assert_eq!(too_many.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json(too_many).await["error"]["message"]
        .to_string()
        .contains("max_events_per_request"));
    let too_big = app
        .post_json(
            "/analytics/events",
            &json!({"event_type": "a", "properties": {"x": "y".repeat(3_000)}}),
        )
        .await;
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let reader = app.key_with(&[Scope::AnalyticsRead]).await;
    let forbidden = app
        .http
        .post(app.url("/analytics/events"))
        .bearer_auth(&reader)
        .json(&json!({"event_type": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    // Events are shipped in the order accepted: once the marker is in
    // ClickHouse, any refused event taken before it would be too.
    let marker = app
        .post_json("/analytics/events", &json!({"event_type": "marker"}))
        .await;
    assert_eq!(marker.status(), StatusCode::ACCEPTED);
    wait_for_user_activity(&app.tenant, 1, Duration::from_secs(30)).await;
    assert_eq!(raw_user_activity_rows(&app.tenant).await, 1);
}

#[tokio::test]
async fn rows_clickhouse_keeps_refusing_are_set_aside_and_replayed_later() {
    let mut settings = stack_settings();
    let database = crate::common::unique("refusing").replace('-', "_");
    settings.clickhouse.database = database.clone();
    let spool = settings.analytics.spool_dir.clone();
    let app = spawn_app_with(settings).await;
    let clickhouse = crate::common::clickhouse().with_database(&database);
    // A schema that no longer fits the rows: every user_activity insert fails.
    clickhouse
        .query("ALTER TABLE user_activity DROP COLUMN properties")
        .execute()
        .await
        .unwrap();
    let events = batch(3, "refused");
    let response = app.post_json("/analytics/events", &json!(events)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    // The refused events are set aside, and the request's own api_usage row,
    // queued behind them, still reaches ClickHouse.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let usage = clickhouse
            .query("SELECT count() FROM api_usage WHERE route = '/analytics/events'")
            .fetch_one::<u64>()
            .await
            .unwrap();
        let metrics = app.metrics_text().await;
        let quarantined = crate::common::metric_value(
            &metrics,
            "gateway_analytics_events_total{outcome=\"quarantined\"}",
        );
        assert!(quarantined <= 3.0, "{metrics}");
        if usage >= 1 && quarantined == 3.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 60 s: {usage} api_usage rows, {quarantined} events set aside"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rejected = spool.join("rejected");
    let files = || -> Vec<String> {
        std::fs::read_dir(&rejected)
            .expect("a rejected folder")
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
            .collect()
    };
    assert_eq!(files().len(), 1);
    for event in &events {
        assert!(files()[0].contains(event["event_id"].as_str().unwrap()));
    }

    // An operator replays them: refused while the schema is still wrong
    // (the file stays), inserted once it is fixed (the file goes).
    let replay = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_storage-gateway"))
            .args(["events", "replay-rejected"])
            .env("CLICKHOUSE_DB", &database)
            .env("GATEWAY__ANALYTICS__SPOOL_DIR", &spool)
            .env("RUST_LOG", "warn")
            .output()
            .expect("the binary runs")
    };
    let refused = replay();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("user_activity.jsonl"), "{stderr}");
    assert_eq!(files().len(), 1);
    clickhouse
        .query("ALTER TABLE user_activity ADD COLUMN properties String")
        .execute()
        .await
        .unwrap();
    let replayed = replay();
    let stdout = String::from_utf8_lossy(&replayed.stdout);
    assert!(
        replayed.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    assert!(stdout.contains("1 file(s) replayed"), "{stdout}");
    assert!(files().is_empty());
    let arrived = clickhouse
        .query("SELECT count() FROM user_activity FINAL WHERE tenant_id = ?")
        .bind(app.tenant.as_str())
        .fetch_one::<u64>()
        .await
        .unwrap();
    assert_eq!(arrived, 3);
    app.state.stores.clickhouse.drop_database().await.unwrap();
}
