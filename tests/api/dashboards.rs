//! The dashboard queries over the real ClickHouse, through the read-through
//! Redis cache.

use std::time::Duration;

use crate::common::{
    json, metric_value, settings_for, spawn_app, spawn_app_for, spawn_app_with, stack_settings,
    wait_for_count, RedisMode, TestApp,
};
use storage_gateway::auth::TenantId;

// The cache's entry and lock must share a Redis Cluster slot.
in_both_redis_modes!(a_cold_key_is_computed_once_for_a_hundred_callers_on_two_gateways);
use reqwest::StatusCode;
use serde_json::{json, Value};

const DAY: &str = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";

fn events(n: usize, event_type: &str, user: &str, at: &str) -> Vec<Value> {
    (0..n)
        .map(|_| {
            json!({
                "event_id": uuid::Uuid::new_v4().to_string(),
                "event_type": event_type,
                "user_id": user,
                "timestamp": at,
            })
        })
        .collect()
}

/// GETs `path`, expecting 200; answers the body and the X-Cache header.
async fn dashboard(app: &TestApp, path: &str) -> (Value, String) {
    let response = app.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    assert!(response.headers().contains_key("age"));
    (json(response).await, cache)
}

/// Waits until the hourly id sets the dashboards count from hold
/// `expected` distinct events of the tenant. ClickHouse shows an insert's
/// rows in `user_activity` a moment before the insert's view has counted
/// them, and a dashboard asked in that moment answers without them.
async fn wait_for_counted_activity(tenant: &TenantId, expected: u64) {
    wait_for_count(
        "SELECT uniqExactMerge(ids) FROM user_activity_hourly_ids WHERE tenant_id = ?",
        tenant,
        expected,
        Duration::from_secs(30),
    )
    .await
}

/// Waits until the hourly row counts of `table` (the dashboards read them
/// to know which hours to count again) cover every row the table holds for
/// the tenant, and at least `at_least` rows, for the same reason. (Merges
/// may shrink a table's count of replayed rows; the floor still holds.)
async fn wait_for_hourly_writes(table: &str, tenant: &TenantId, at_least: u64) {
    let clickhouse = crate::common::clickhouse();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        // The table first: its rows are stored before their view runs.
        let stored = clickhouse
            .query(&format!("SELECT count() FROM {table} WHERE tenant_id = ?"))
            .bind(tenant.as_str())
            .fetch_one::<u64>()
            .await
            .unwrap();
        let counted = clickhouse
            .query("SELECT sum(rows) FROM hourly_writes WHERE rollup = ? AND tenant_id = ?")
            .bind(table)
            .bind(tenant.as_str())
            .fetch_one::<u64>()
            .await
            .unwrap();
        if counted >= stored.max(at_least) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{table}: {counted} rows counted of {stored} stored for {tenant}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn bucket<'a>(answer: &'a Value, start: &str) -> &'a Value {
    answer["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["start"] == start)
        .unwrap_or_else(|| panic!("no bucket {start} in {answer}"))
}

#[tokio::test]
async fn user_activity_counts_each_event_sent_once() {
    let app = spawn_app().await;
    let mut batch = events(5, "click", "user-1", "2026-11-20T10:15:00Z");
    batch.extend(events(3, "view", "user-2", "2026-11-20T10:40:00Z"));
    batch.extend(events(4, "click", "user-1", "2026-11-20T13:05:00Z"));
    for _ in 0..2 {
        // The second time is a client's retry: the same ids again.
        let response = app.post_json("/analytics/events", &json!(batch)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let outside = events(1, "click", "user-1", "2026-11-21T00:00:00Z");
    app.post_json("/analytics/events", &json!(outside)).await;
    wait_for_counted_activity(&app.tenant, 13).await;

    let path = format!("/analytics/user-activity?{DAY}&interval=hour");
    let (answer, cache) = dashboard(&app, &path).await;
    assert_eq!(cache, "MISS");
    assert_eq!(answer["total"], 12, "{answer}");
    assert_eq!(answer["interval"], "hour");
    assert_eq!(answer["range"]["from"], "2026-11-20T00:00:00Z");
    assert_eq!(answer["buckets"].as_array().unwrap().len(), 24);
    let ten = bucket(&answer, "2026-11-20T10:00:00Z");
    assert_eq!(ten["events"], json!({"click": 5, "view": 3}));
    assert_eq!(ten["total"], 8);
    assert_eq!(
        bucket(&answer, "2026-11-20T13:00:00Z")["events"],
        json!({"click": 4})
    );
    assert_eq!(bucket(&answer, "2026-11-20T11:00:00Z")["total"], 0);

    let (again, cache) = dashboard(&app, &path).await;
    assert_eq!(cache, "HIT");
    assert_eq!(again, answer);

    let (one_user, _) = dashboard(&app, &format!("{path}&user_id=user-1")).await;
    assert_eq!(one_user["total"], 9);
    assert_eq!(one_user["user_id"], "user-1");
    let (daily, _) = dashboard(&app, &format!("/analytics/user-activity?{DAY}")).await;
    assert_eq!(daily["buckets"][0]["total"], 12);

    // Another tenant asking the same question sees none of it.
    let other = app.other_tenant_key().await;
    let response = app.get_as(&path, &other).await;
    assert_eq!(json(response).await["total"], 0);
}

/// Hours of the tenant stamped in the hourly user-activity table.
async fn stamped_hours(database: &str, tenant: &str) -> u64 {
    crate::common::clickhouse()
        .with_database(database)
        .query(
            "SELECT uniqExact(hour) FROM hourly_marks \
             WHERE rollup = 'user_activity' AND tenant_id = ?",
        )
        .bind(tenant)
        .fetch_one::<u64>()
        .await
        .unwrap()
}

#[tokio::test]
async fn hourly_counts_follow_new_events_and_replays_exactly() {
    let settings = stack_settings();
    let database = settings.clickhouse.database.clone();
    let app = spawn_app_with(settings).await;
    let mut first = events(5, "click", "user-1", "2026-11-20T10:15:00Z");
    first.extend(events(2, "view", "user-2", "2026-11-20T11:30:00Z"));
    let response = app.post_json("/analytics/events", &json!(first)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    wait_for_counted_activity(&app.tenant, 7).await;
    let (answer, _) = dashboard(
        &app,
        &format!("/analytics/user-activity?{DAY}&interval=hour"),
    )
    .await;
    assert_eq!(answer["total"], 7, "{answer}");
    assert_eq!(
        bucket(&answer, "2026-11-20T10:00:00Z")["events"],
        json!({"click": 5})
    );
    // The answer came from the hourly table: both hours are stamped.
    assert_eq!(stamped_hours(&database, app.tenant.as_str()).await, 2);

    // A client's replay of the first batch, new events in a counted hour,
    // and an hour not seen before.
    let mut second = first.clone();
    second.extend(events(3, "click", "user-3", "2026-11-20T10:50:00Z"));
    second.extend(events(1, "login", "user-1", "2026-11-20T13:00:00Z"));
    let response = app.post_json("/analytics/events", &json!(second)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    wait_for_counted_activity(&app.tenant, 11).await;
    // Another range, so another cache entry: answered from ClickHouse.
    let (answer, cache) = dashboard(
        &app,
        "/analytics/user-activity?from=2026-11-19T23:00:00Z&to=2026-11-21T00:00:00Z&interval=hour",
    )
    .await;
    assert_eq!(cache, "MISS");
    assert_eq!(answer["total"], 11, "{answer}");
    assert_eq!(
        bucket(&answer, "2026-11-20T10:00:00Z")["events"],
        json!({"click": 8})
    );
    assert_eq!(
        bucket(&answer, "2026-11-20T11:00:00Z")["events"],
        json!({"view": 2})
    );
    assert_eq!(
        bucket(&answer, "2026-11-20T13:00:00Z")["events"],
        json!({"login": 1})
    );
    assert_eq!(stamped_hours(&database, app.tenant.as_str()).await, 3);
    let (daily, _) = dashboard(&app, &format!("/analytics/user-activity?{DAY}")).await;
    assert_eq!(
        bucket(&daily, "2026-11-20T00:00:00Z")["events"],
        json!({"click": 8, "view": 2, "login": 1})
    );
    assert_eq!(daily["total"], 11);
}

#[tokio::test]
async fn events_stored_before_the_hourly_tables_existed_are_counted() {
    let mut settings = stack_settings();
    let database = crate::common::unique("hourly").replace('-', "_");
    settings.clickhouse.database = database.clone();
    let app = spawn_app_with(settings.clone()).await;
    let clickhouse = crate::common::clickhouse().with_database(&database);
    // The database as it was before the hourly tables: events only.
    let added: Vec<String> = clickhouse
        .query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() \
             AND name NOT IN ('user_activity', 'challenge_completions', 'api_usage', \
             'file_uploads', 'file_downloads') ORDER BY engine = 'MaterializedView' DESC",
        )
        .fetch_all()
        .await
        .unwrap();
    assert!(added.contains(&"user_activity_hourly_ids_view".to_owned()));
    for table in added {
        clickhouse
            .query(&format!("DROP TABLE {table}"))
            .execute()
            .await
            .unwrap();
    }
    clickhouse
        .query(
            "INSERT INTO user_activity (event_id, tenant_id, user_id, event_type, timestamp, properties) \
             SELECT generateUUIDv4(), ?, 'u', 'click', toDateTime(1795168800 + number * 60), '{}' \
             FROM system.numbers LIMIT 90",
        )
        .bind(app.tenant.as_str())
        .execute()
        .await
        .unwrap();
    clickhouse
        .query(
            "INSERT INTO file_uploads (event_id, tenant_id, owner_id, cid, size_bytes, \
             content_type, timestamp) \
             SELECT generateUUIDv4(), ?, 'u', 'cid', 1000, 'text/plain', \
             toDateTime(1795168800 + number * 3600) FROM system.numbers LIMIT 2",
        )
        .bind(app.tenant.as_str())
        .execute()
        .await
        .unwrap();
    // A gateway starting on it adds the tables and counts what is there.
    let gateway = |mut settings: storage_gateway::config::Settings| {
        settings.analytics.spool_dir = crate::common::temp_dir("spool");
        crate::common::spawn_app_for(settings, app.tenant.clone())
    };
    let upgraded = gateway(settings.clone()).await;
    let (answer, _) = dashboard(
        &upgraded,
        &format!("/analytics/user-activity?{DAY}&interval=hour"),
    )
    .await;
    // 10:00 to 11:30 on 2026-11-20.
    assert_eq!(answer["total"], 90, "{answer}");
    assert_eq!(
        bucket(&answer, "2026-11-20T10:00:00Z")["events"],
        json!({"click": 60})
    );
    assert_eq!(
        bucket(&answer, "2026-11-20T11:00:00Z")["events"],
        json!({"click": 30})
    );
    let (files, _) = dashboard(&upgraded, &format!("/analytics/file-stats?{DAY}")).await;
    assert_eq!(files["total"]["uploads"], 2, "{files}");
    assert_eq!(files["total"]["upload_bytes"], 2000, "{files}");
    // Starting again counts nothing twice.
    let again = gateway(settings).await;
    let rows: u64 = clickhouse
        .query("SELECT sumMerge(rows) FROM user_activity_hourly_ids WHERE tenant_id = ?")
        .bind(again.tenant.as_str())
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, 90);
    let rows: u64 = clickhouse
        .query(
            "SELECT sum(rows) FROM hourly_writes WHERE rollup = 'file_uploads' AND tenant_id = ?",
        )
        .bind(again.tenant.as_str())
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn bad_dashboard_queries_are_refused_with_the_reason() {
    let app = spawn_app().await;
    for (query, expected) in [
        ("/analytics/user-activity?interval=week", "interval"),
        ("/analytics/user-activity?from=yesterday", "RFC 3339"),
        (
            "/analytics/user-activity?from=2026-11-21T00:00:00Z&to=2026-11-20T00:00:00Z",
            "before",
        ),
        (
            "/analytics/file-stats?from=2020-01-01T00:00:00Z",
            "max_range_days",
        ),
        ("/analytics/file-stats?user_id=u", "takes no user_id"),
        ("/analytics/api-usage?verbose=1", "verbose"),
    ] {
        let response = app.get(query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let message = json(response).await["error"]["message"].to_string();
        assert!(message.contains(expected), "{query}: {message}");
    }
    let writer = app
        .key_with(&[storage_gateway::auth::Scope::AnalyticsWrite])
        .await;
    let response = app.get_as("/analytics/file-stats", &writer).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn file_stats_and_api_usage_report_the_gateways_own_activity() {
    let app = spawn_app().await;
    let first = app.upload(&[("name", "a.bin")], vec![7u8; 3000]).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let cid = json(first).await["cid"].as_str().unwrap().to_owned();
    let second = app.upload(&[("name", "b.bin")], vec![9u8; 5000]).await;
    assert_eq!(second.status(), StatusCode::CREATED);
    let download = app.get(&format!("/files/{cid}/download")).await;
    assert_eq!(download.bytes().await.unwrap().len(), 3000);
    for i in 0..7 {
        let response = app.get(&format!("/cache/get/missing-{i}")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    for i in 0..3 {
        let set = json!({"key": format!("k{i}"), "value": i});
        assert_eq!(
            app.post_json("/cache/set", &set).await.status(),
            StatusCode::OK
        );
    }
    let within = Duration::from_secs(30);
    let count = |table: &str| format!("SELECT count() FROM {table} FINAL WHERE tenant_id = ?");
    wait_for_count(&count("file_uploads"), &app.tenant, 2, within).await;
    wait_for_count(&count("file_downloads"), &app.tenant, 1, within).await;
    let route_count =
        "SELECT count() FROM api_usage FINAL WHERE tenant_id = ? AND route = '/cache/get/{key:.+}'";
    wait_for_count(route_count, &app.tenant, 7, within).await;
    wait_for_count(
        "SELECT count() FROM api_usage FINAL WHERE tenant_id = ? AND route = '/cache/set'",
        &app.tenant,
        3,
        within,
    )
    .await;
    // Two uploads, a download, and at least the ten cache calls.
    wait_for_hourly_writes("file_uploads", &app.tenant, 2).await;
    wait_for_hourly_writes("file_downloads", &app.tenant, 1).await;
    wait_for_hourly_writes("api_usage", &app.tenant, 10).await;

    let (files, _) = dashboard(&app, "/analytics/file-stats").await;
    assert_eq!(
        files["total"],
        json!({"uploads": 2, "upload_bytes": 8000, "downloads": 1, "download_bytes": 3000}),
        "{files}"
    );
    assert_eq!(files["buckets"].as_array().unwrap().len(), 7);

    let (usage, _) = dashboard(
        &app,
        "/analytics/api-usage?route=/cache/get/%7Bkey:.%2B%7D&interval=hour",
    )
    .await;
    let total = &usage["total"];
    assert_eq!(total["requests"], 7, "{usage}");
    assert_eq!(total["client_errors"], 7);
    assert_eq!(total["errors"], 0);
    assert_eq!(total["tenant"], app.tenant.as_str());
    assert!(total["duration_ms_p99"].as_f64().unwrap() >= 1.0);
    let (all_routes, _) = dashboard(&app, "/analytics/api-usage?interval=hour").await;
    let routes: Vec<&Value> = all_routes["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["routes"].as_array().unwrap())
        .collect();
    let sets = routes
        .iter()
        .filter(|r| r["route"] == "/cache/set" && r["method"] == "POST")
        .map(|r| r["requests"].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(sets, 3, "{all_routes}");

    // After those answers: a replay of every upload row, one more upload
    // and three more reads. Queries of other ranges (other cache entries)
    // count the new ones once and the replayed ones not at all.
    crate::common::clickhouse()
        .query("INSERT INTO file_uploads SELECT * FROM file_uploads WHERE tenant_id = ?")
        .bind(app.tenant.as_str())
        .execute()
        .await
        .unwrap();
    let third = app.upload(&[("name", "c.bin")], vec![1u8; 1000]).await;
    assert_eq!(third.status(), StatusCode::CREATED);
    for i in 7..10 {
        let response = app.get(&format!("/cache/get/missing-{i}")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    wait_for_count(&count("file_uploads"), &app.tenant, 3, within).await;
    wait_for_count(route_count, &app.tenant, 10, within).await;
    // The two replayed rows and the third upload; three more reads.
    wait_for_hourly_writes("file_uploads", &app.tenant, 5).await;
    wait_for_hourly_writes("api_usage", &app.tenant, 13).await;
    let (files, cache) = dashboard(&app, "/analytics/file-stats?interval=hour").await;
    assert_eq!(cache, "MISS");
    assert_eq!(
        files["total"],
        json!({"uploads": 3, "upload_bytes": 9000, "downloads": 1, "download_bytes": 3000}),
        "{files}"
    );
    let (usage, cache) =
        dashboard(&app, "/analytics/api-usage?route=/cache/get/%7Bkey:.%2B%7D").await;
    assert_eq!(cache, "MISS");
    assert_eq!(usage["total"]["requests"], 10, "{usage}");
}

async fn a_cold_key_is_computed_once_for_a_hundred_callers_on_two_gateways(mode: RedisMode) {
    let first = spawn_app_with(settings_for(mode)).await;
    let second = spawn_app_for(settings_for(mode), first.tenant.clone()).await;
    let path = format!("/analytics/user-activity?{DAY}&interval=hour");
    let requests = (0..100).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        let path = path.clone();
        async move { app.get(&path).await }
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        bodies.push(json(response).await);
    }
    assert!(bodies.iter().all(|body| *body == bodies[0]));
    let sample = "gateway_dashboard_queries_total{report=\"user-activity\"}";
    let queries = metric_value(&first.metrics_text().await, sample)
        + metric_value(&second.metrics_text().await, sample);
    assert_eq!(queries, 1.0, "ClickHouse ran the query {queries} times");
}

#[tokio::test]
async fn a_stale_answer_is_served_while_one_refresh_runs() {
    let mut settings = stack_settings();
    settings.dashboards.user_activity_ttl_secs = 1;
    settings.dashboards.stale_while_revalidate_secs = 60;
    let app = spawn_app_with(settings).await;
    let path = format!("/analytics/user-activity?{DAY}");
    let (first, cache) = dashboard(&app, &path).await;
    assert_eq!(cache, "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (stale, cache) = dashboard(&app, &path).await;
    assert_eq!(cache, "STALE");
    assert_eq!(stale, first);
    // The refresh runs in the background; its answer is fresh again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.get(&path).await;
        let cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
        if cache == "HIT" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never refreshed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queries = metric_value(
        &app.metrics_text().await,
        "gateway_dashboard_queries_total{report=\"user-activity\"}",
    );
    assert_eq!(queries, 2.0);
}
