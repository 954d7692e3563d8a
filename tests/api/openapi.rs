//! The OpenAPI document: served, browsable, and complete: a route the
//! gateway answers that the document lacks fails this test.

use crate::common::{json, spawn_app};
use reqwest::Method;
use serde_json::Value;

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// A concrete path for an actix path pattern: each `{name}` or
/// `{name:regex}` segment becomes `a1`, which the patterns in use (any
/// text, hex digits) all match.
fn concrete(pattern: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in pattern.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    out.push_str("a1");
                }
                depth += 1;
            }
            '}' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Parameters that may span slashes (cache and rate-limit keys, a path
/// under a CID): those the gateway's own routes match with `.+` or `.*`.
fn catch_all_parameters() -> std::collections::HashSet<String> {
    storage_gateway::http::registered_paths()
        .iter()
        .flat_map(|pattern| {
            pattern
                .split('{')
                .skip(1)
                .filter_map(|part| part.split_once('}').map(|(param, _)| param.to_owned()))
                .filter_map(|param| {
                    let (name, regex) = param.split_once(':')?;
                    matches!(regex, ".+" | ".*").then(|| name.to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether a documented path template (`/cache/{key}`) covers `path`: a
/// parameter stands for one segment, a catch-all one for one or more.
fn covers(template: &str, path: &str) -> bool {
    covers_with(template, path, &catch_all_parameters())
}

fn covers_with(template: &str, path: &str, catch_all: &std::collections::HashSet<String>) -> bool {
    enum Token {
        Literal(char),
        Segment,
        Any,
    }
    let mut tokens = Vec::new();
    for (i, part) in template.split('{').enumerate() {
        let literal = if i == 0 {
            part
        } else {
            part.split_once('}').map_or(part, |(name, rest)| {
                tokens.push(if catch_all.contains(name) {
                    Token::Any
                } else {
                    Token::Segment
                });
                rest
            })
        };
        tokens.extend(literal.chars().map(Token::Literal));
    }
    fn go(p: &[Token], t: &[char]) -> bool {
        match p {
            [] => t.is_empty(),
            [Token::Literal(c), rest @ ..] => t.first() == Some(c) && go(rest, &t[1..]),
            [Token::Segment, rest @ ..] => (1..=t.len())
                .take_while(|n| t[n - 1] != '/')
                .any(|n| go(rest, &t[n..])),
            [Token::Any, rest @ ..] => (1..=t.len()).any(|n| go(rest, &t[n..])),
        }
    }
    let text: Vec<char> = path.chars().collect();
    go(&tokens, &text)
}

fn documented(document: &Value, method: &str, path: &str) -> bool {
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .any(|(template, item)| {
            covers(template, path) && !item[method.to_ascii_lowercase()].is_null()
        })
}

#[tokio::test]
async fn every_route_is_in_the_document() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let document = json(response).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));

    let paths = storage_gateway::http::registered_paths();
    assert!(paths.len() > 30, "{paths:?}");
    let mut missing = Vec::new();
    let mut silent = Vec::new();
    for pattern in &paths {
        let path = concrete(pattern);
        let mut answered = 0;
        for method in METHODS {
            let response = app
                .request(Method::from_bytes(method.as_bytes()).unwrap(), &path)
                .send()
                .await
                .unwrap();
            // A resource answers 405 for the methods it has no route for.
            if response.status() == 405 {
                continue;
            }
            answered += 1;
            if !documented(&document, method, &path) {
                missing.push(format!("{method} {pattern}"));
            }
        }
        if answered == 0 {
            silent.push(pattern.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:#?}"
    );
    assert!(
        silent.is_empty(),
        "paths that answer no method: {silent:#?}"
    );
}

#[tokio::test]
async fn the_error_code_table_is_in_the_document() {
    let app = spawn_app().await;
    let document = json(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    let code = &document["components"]["schemas"]["ErrorDetail"]["properties"]["code"];
    let listed: Vec<&str> = code["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no enum: {code}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let table = storage_gateway::error_code::ErrorCode::ALL;
    assert_eq!(
        listed,
        table.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "{code}"
    );
    let description = code["description"].as_str().unwrap();
    for entry in table {
        let line = format!("`{}` ({}): ", entry.as_str(), entry.status());
        assert!(
            description.contains(&line),
            "{line} missing from {description}"
        );
    }
}

#[tokio::test]
async fn operations_carry_auth_errors_and_schemas() {
    let app = spawn_app().await;
    let document = json(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    let open = storage_gateway::http::openapi::OPEN_PATHS;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = &operation["responses"];
            assert!(!responses["503"].is_null(), "{method} {path}: no 503");
            if open.contains(&path.as_str()) {
                assert!(operation["security"].is_null(), "{method} {path} is open");
                continue;
            }
            assert!(
                operation["security"].is_array(),
                "{method} {path}: no security"
            );
            assert!(!responses["429"].is_null(), "{method} {path}: no 429");
            // The Pinning Service routes fail in that specification's shape.
            let error_schema = if path.starts_with("/psa/") {
                "#/components/schemas/PinFailure"
            } else {
                "#/components/schemas/ErrorResponse"
            };
            for status in ["400", "401", "403", "503"] {
                assert_eq!(
                    responses[status]["content"]["application/json"]["schema"]["$ref"],
                    error_schema,
                    "{method} {path}: {status}"
                );
            }
        }
    }
    // Request bodies are described by their schemas.
    let create = &document["paths"]["/session/create"]["post"]["requestBody"];
    let schema = create["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let properties = &document["components"]["schemas"][&schema]["properties"];
    assert!(properties["user_id"].is_object(), "{properties}");

    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("openapi"));
}

/// The property names of schema `name` in the document's components.
fn properties(document: &Value, name: &str) -> std::collections::BTreeSet<String> {
    document["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {name}"))
        .keys()
        .cloned()
        .collect()
}

fn keys(value: &Value) -> std::collections::BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn documented_response_schemas_match_real_answers() {
    let app = spawn_app().await;
    let document = json(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    let dashboard = json(app.get("/analytics/file-stats").await).await;
    assert_eq!(keys(&dashboard), properties(&document, "DashboardAnswer"));
    let events = serde_json::json!([{"event_type": "x"}]);
    let accepted = json(app.post_json("/analytics/events", &events).await).await;
    assert_eq!(keys(&accepted), properties(&document, "Accepted"));
    let whoami = json(app.get("/auth/whoami").await).await;
    assert_eq!(keys(&whoami), properties(&document, "WhoAmI"));
    let set = serde_json::json!({"key": "k", "value": [1]});
    let stored = json(app.post_json("/cache/set", &set).await).await;
    assert_eq!(keys(&stored), properties(&document, "Stored"));
    let entry = json(app.get("/cache/get/k").await).await;
    assert_eq!(keys(&entry), properties(&document, "Entry"));
    let user = json(
        app.post_json("/users", &serde_json::json!({"external_id": "u"}))
            .await,
    )
    .await;
    assert_eq!(keys(&user), properties(&document, "UserResponse"));
    let session = json(
        app.post_json("/session/create", &serde_json::json!({"user_id": "u"}))
            .await,
    )
    .await;
    assert_eq!(keys(&session), properties(&document, "Session"));
    let file = json(app.upload(&[("name", "f.txt")], "openapi").await).await;
    assert_eq!(keys(&file), properties(&document, "FileResponse"));
    assert_eq!(keys(&file["pin"]), properties(&document, "PinResponse"));

    let check = serde_json::json!({"key": "openapi"});
    let decision = json(app.post_json("/rate-limit/check", &check).await).await;
    assert_eq!(keys(&decision), properties(&document, "RateLimitAnswer"));
    assert_eq!(
        keys(&decision["limits"][0]),
        properties(&document, "LimitAnswer")
    );
    let status = json(app.get("/rate-limit/status/openapi").await).await;
    assert_eq!(keys(&status), properties(&document, "RateLimitAnswer"));
    let alive = json(app.get("/health").await).await;
    assert_eq!(keys(&alive), properties(&document, "Alive"));

    // A backend's entry: the fields of both halves of its allOf, the
    // optional ones only where they apply.
    let ready = json(app.get("/ready").await).await;
    assert_eq!(keys(&ready), properties(&document, "Readiness"));
    let mut backend_fields = properties(&document, "HealthDetail");
    let own = &document["components"]["schemas"]["BackendReadiness"]["allOf"][1]["properties"];
    backend_fields.extend(keys(own));
    for (name, backend) in ready["backends"].as_object().unwrap() {
        let fields = keys(backend);
        assert!(fields.is_subset(&backend_fields), "{name}: {fields:?}");
        assert!(fields.contains("status") && fields.contains("latency_ms"));
    }
}

#[tokio::test]
async fn templates_cover_their_paths() {
    // The routes are known once an app has been built.
    let _app = spawn_app().await;
    let catch_all = catch_all_parameters();
    assert!(catch_all.contains("key") && catch_all.contains("path"));
    assert!(!catch_all.contains("cid"));
    assert!(covers("/cache/{key}", "/cache/get/a1"));
    assert!(covers("/files/{cid}/download", "/files/a1/download"));
    assert!(!covers("/session/{id}/rotate", "/session/a1"));
    // A one-segment parameter does not swallow a sub-route.
    assert!(!covers("/files/{cid}", "/files/a1/download"));
    assert!(covers("/ipfs/{cid}/{path}", "/ipfs/a1/docs/a.txt"));
    assert!(!covers("/ipfs/{cid}", "/ipfs/a1/docs"));
    assert_eq!(concrete("/cache/get/{key:.+}"), "/cache/get/a1");
    assert_eq!(concrete("/files/tus/{id:[0-9a-fA-F-]+}"), "/files/tus/a1");
}

/// Requests generated from the served document itself (schemathesis,
/// installed by the project's scripts): every request the document allows
/// is accepted, and every answer matches the document, status, content type
/// and schema. `tests/schemathesis.toml` lists the few rules no schema can
/// state. Two things are left out: revoking API keys (the generated calls
/// would revoke the key the run uses), and the check that requests the
/// document forbids are refused (the document states ASCII text where the
/// server also takes other characters within a byte limit).
#[tokio::test]
async fn requests_generated_from_the_document_are_accepted_and_answered_as_documented() {
    let st = std::env::var("SCHEMATHESIS")
        .expect("SCHEMATHESIS names schemathesis's `st`: run through scripts/test");
    let mut settings = crate::common::stack_settings();
    // The document states what this stack can do: three Cluster peers.
    settings.files.replication_max_allowed = 3;
    // `wait=pinned` answers 202 once this passes, well inside the request
    // timeout of tests/schemathesis.toml.
    settings.files.pin_wait_max_secs = 5;
    // Links are on, so their operations answer as documented rather than 501.
    settings.links.keys = [(
        "k1".to_owned(),
        "a-signing-secret-of-at-least-32-bytes".to_owned().into(),
    )]
    .into();
    settings.links.signing_key = "k1".into();
    let app = crate::common::spawn_app_with(settings).await;
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let mut command = std::process::Command::new(&st);
    command
        // Its cache of found failures stays with the tests' scratch files.
        .current_dir(std::env::temp_dir())
        .env(
            "SCHEMATHESIS_HOOKS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis_hooks.py"),
        )
        .args(["--no-color", "--config-file", config, "run"])
        .arg(app.url("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {}", app.key)])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "negative_data_rejection",
        ])
        .args(["--exclude-path", "/admin/keys/{id}"])
        .args([
            "--max-examples",
            "25",
            "--seed",
            "20261201",
            "--workers",
            "1",
        ]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found requests the document allows that the gateway refused, \
         or answers the document does not describe:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains(" passed"), "{report}");
}
