//! The monitoring setup, proven against a real Prometheus: the stack's
//! Prometheus (the repository's prometheus.yml and alert rules) scrapes a
//! gateway under test and the Kubo and Cluster nodes; after some traffic,
//! every expression of every Grafana panel must be valid and return series.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{json, spawn_app_with, stack_settings, unique, TestApp};
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every panel expression of every dashboard, with the dashboard and panel
/// it belongs to.
fn panel_expressions() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let folder = repo().join("grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .expect("grafana/dashboards exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "dashboards: {files:?}");
    for file in files {
        let board: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for panel in board["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("an expression");
                found.push((
                    format!("{} / {}", board["title"], panel["title"]),
                    expr.to_owned(),
                ));
            }
        }
    }
    found
}

/// Registers the gateway with the stack's Prometheus (file-based service
/// discovery) for as long as it lives.
struct Scraped(PathBuf);

impl Scraped {
    fn register(app: &TestApp) -> Self {
        let stack = std::env::var("STACK_DIR").expect("stack env");
        let address = app.base.trim_start_matches("http://").to_owned();
        let path = Path::new(&stack)
            .join("prometheus/gateways")
            .join(format!("{}.json", unique("test")));
        let targets = json!([{"targets": [address], "labels": {"gateway": "under-test"}}]);
        std::fs::write(&path, targets.to_string()).expect("target file written");
        Self(path)
    }
}

impl Drop for Scraped {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Asks Prometheus to evaluate `expr` now: Err with its message when it is
/// invalid, else the series it returns.
async fn evaluate(http: &reqwest::Client, expr: &str) -> Result<Vec<Value>, String> {
    let url = format!("{}/api/v1/query", std::env::var("PROMETHEUS_URL").unwrap());
    let response = http
        .post(url)
        .form(&[("query", expr)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Grafana's `$__rate_interval` is at least four scrape intervals; the
/// stack scrapes every 2 s.
fn as_grafana_would(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
}

/// Traffic that touches every family of metrics the dashboards read.
async fn drive_traffic(app: &TestApp) {
    let content: Vec<u8> = (0..5000).map(|_| rand_byte()).collect();
    let upload = app.upload(&[("name", "m.bin")], content).await;
    assert_eq!(upload.status(), 201);
    let cid = json(upload).await["cid"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/files/{cid}/download")).await.status(),
        200
    );
    assert_eq!(app.get("/files?limit=0").await.status(), 400);
    let session = json(
        app.post_json("/session/create", &json!({"user_id": "u"}))
            .await,
    )
    .await;
    let id = session["session_id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/session/{id}")).await.status(), 200);
    let check = json!({"key": "k", "policy": "default"});
    assert_eq!(
        app.post_json("/rate-limit/check", &check).await.status(),
        200
    );
    let set = json!({"key": "k", "value": 1});
    assert_eq!(app.post_json("/cache/set", &set).await.status(), 200);
    assert_eq!(app.get("/cache/get/k").await.status(), 200);
    assert_eq!(app.get("/cache/get/absent").await.status(), 404);
    let events = json!([{"event_type": "view"}, {"event_type": "click"}]);
    assert_eq!(
        app.post_json("/analytics/events", &events).await.status(),
        202
    );
    for _ in 0..2 {
        assert_eq!(app.get("/analytics/file-stats").await.status(), 200);
    }
}

fn rand_byte() -> u8 {
    let mut byte = [0u8];
    getrandom::fill(&mut byte).unwrap();
    byte[0]
}

#[tokio::test]
async fn every_dashboard_panel_returns_series_from_a_real_prometheus() {
    let mut settings = stack_settings();
    settings.files.reconcile_interval_secs = 1;
    settings.server.backend_probe_interval_secs = 1;
    let app = spawn_app_with(settings).await;
    let _scraped = Scraped::register(&app);
    let http = reqwest::Client::new();
    let expressions = panel_expressions();
    // Invalid expressions fail at once, before any traffic.
    for (panel, expr) in &expressions {
        if let Err(error) = evaluate(&http, &as_grafana_would(expr)).await {
            panic!("{panel}: invalid expression {expr:?}: {error}");
        }
    }
    let instance = app.base.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut empty: Vec<&(String, String)>;
    loop {
        drive_traffic(&app).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let scraped = evaluate(&http, &format!("up{{instance=\"{instance}\"}} == 1")).await;
        empty = Vec::new();
        for entry in &expressions {
            let series = evaluate(&http, &as_grafana_would(&entry.1)).await.unwrap();
            if series.is_empty() {
                empty.push(entry);
            }
        }
        if empty.is_empty() && scraped.is_ok_and(|s| !s.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "panels without series after 90 s of traffic: {empty:#?}"
        );
    }
}

#[tokio::test]
async fn alert_rules_pass_promtool_and_evaluate() {
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "rules", "prometheus/alerts.yml"],
        vec!["test", "rules", "prometheus/alerts_test.yml"],
    ] {
        let output = Command::new("promtool")
            .args(&args)
            .current_dir(repo())
            .output()
            .expect("promtool runs (scripts/stack installs it)");
        assert!(
            output.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The running Prometheus loads the same rules, and each evaluates.
    let http = reqwest::Client::new();
    let prometheus = std::env::var("PROMETHEUS_URL").unwrap();
    let reload = http
        .post(format!("{prometheus}/-/reload"))
        .send()
        .await
        .unwrap();
    assert!(
        reload.status().is_success(),
        "Prometheus did not reload its configuration"
    );
    // Each rule is evaluated every 2 s; wait for an evaluation after the reload.
    let deadline = Instant::now() + Duration::from_secs(30);
    let loaded = loop {
        let rules: Value = http
            .get(format!("{prometheus}/api/v1/rules"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let loaded: Vec<Value> = rules["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        let evaluated = !loaded.is_empty() && loaded.iter().all(|r| r["health"] != "unknown");
        if evaluated || Instant::now() > deadline {
            break loaded;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let names: Vec<&str> = loaded.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, alert_names(&repo().join("prometheus/alerts.yml")));
    for rule in loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
        let query = rule["query"].as_str().unwrap();
        evaluate(&http, query)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", rule["name"]));
    }
}

/// The alert names of a rules file, in order.
fn alert_names(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let documents = yaml_rust2::YamlLoader::load_from_str(&text).expect("the rules are YAML");
    documents[0]["groups"]
        .as_vec()
        .expect("rule groups")
        .iter()
        .flat_map(|group| group["rules"].as_vec().expect("rules").clone())
        .map(|rule| rule["alert"].as_str().expect("an alert name").to_owned())
        .collect()
}
