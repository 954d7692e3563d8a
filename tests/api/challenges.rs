//! Users, challenges and submissions across Postgres, IPFS, ClickHouse and
//! Redis.

use std::time::Duration;

use crate::common::{
    json, settings_for, spawn_app, spawn_app_with, wait_for_count, RedisMode, TestApp,
};

// A board and its mark must share a Redis Cluster slot.
in_both_redis_modes!(a_lost_leaderboard_is_rebuilt_from_postgres);
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn created(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app.post_json(path, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{path} {body}");
    json(response).await
}

async fn new_user(app: &TestApp, name: &str) -> String {
    let user = created(
        app,
        "/users",
        json!({"external_id": name, "display_name": name}),
    )
    .await;
    user["id"].as_str().unwrap().to_owned()
}

async fn leaderboard(app: &TestApp, challenge: &str) -> Value {
    let response = app
        .get(&format!("/challenges/{challenge}/leaderboard?limit=10"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

fn ranking(board: &Value) -> Vec<(String, f64)> {
    board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["user_id"].as_str().unwrap().to_owned(),
                e["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_submission_lands_in_every_store() {
    let app = spawn_app().await;
    let ada = new_user(&app, "ada").await;
    let bob = new_user(&app, "bob").await;
    let challenge = created(
        &app,
        "/challenges",
        json!({"slug": "two-sum", "title": "Two sum", "difficulty": "easy"}),
    )
    .await;
    let challenge_id = challenge["id"].as_str().unwrap();
    let submit = format!("/challenges/{challenge_id}/submissions");

    let small = created(
        &app,
        &submit,
        json!({"user_id": ada, "language": "rust", "code": "fn main() {}",
               "status": "passed", "score": 50.0, "runtime_ms": 12, "output": "ok\n"}),
    )
    .await;
    assert_eq!(small["output"]["stored_in"], "inline");
    assert_eq!(small["output"]["text"], "ok\n");

    // Over the 100 KB threshold: the output goes to IPFS as a file.
    let big_output: String = (0..20_000).map(|i| format!("{i:05}\n")).collect();
    let big = created(
        &app,
        &submit,
        json!({"user_id": bob, "language": "python", "code": "print()",
               "status": "passed", "score": 80.0, "runtime_ms": 30, "output": big_output}),
    )
    .await;
    assert_eq!(big["output"]["stored_in"], "ipfs", "{big}");
    assert_eq!(big["output"]["size"], big_output.len());
    let cid = big["output"]["cid"].as_str().unwrap();
    let file = app.get(&format!("/files/{cid}")).await;
    assert_eq!(
        file.status(),
        StatusCode::OK,
        "the output is a file of the tenant"
    );
    let id = big["id"].as_str().unwrap();
    let read = json(app.get(&format!("/submissions/{id}")).await).await;
    assert_eq!(read["output"]["cid"], cid);
    assert_eq!(read["code"], "print()");
    let output = app.get(&format!("/submissions/{id}/output")).await;
    assert_eq!(output.status(), StatusCode::OK);
    assert_eq!(output.text().await.unwrap(), big_output);
    let small_output = app
        .get(&format!(
            "/submissions/{}/output",
            small["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(small_output.text().await.unwrap(), "ok\n");

    // Best score per user: a worse later score changes nothing.
    for (user, score, status) in [(&ada, 90.0, "passed"), (&ada, 10.0, "failed")] {
        created(
            &app,
            &submit,
            json!({"user_id": user, "language": "rust", "status": status,
                   "score": score, "runtime_ms": 20}),
        )
        .await;
    }
    let board = leaderboard(&app, challenge_id).await;
    assert_eq!(
        ranking(&board),
        vec![(ada.clone(), 90.0), (bob.clone(), 80.0)]
    );
    assert_eq!(board["ranked_users"], 2);

    // The challenge statistics see every submission once.
    wait_for_count(
        "SELECT count() FROM challenge_completions FINAL WHERE tenant_id = ?",
        &app.tenant,
        4,
        Duration::from_secs(30),
    )
    .await;
    let stats = json(
        app.get(&format!(
            "/analytics/challenge-stats?challenge_id={challenge_id}"
        ))
        .await,
    )
    .await;
    let total = &stats["total"];
    assert_eq!(total["attempts"], 4, "{stats}");
    assert_eq!(total["completions"], 3);
    assert_eq!(total["completion_rate"], 0.75);
    assert_eq!(total["unique_users"], 2);
    assert_eq!(total["runtime_ms_median"], 20.0);
    assert_eq!(total["runtime_ms_p90"], 30.0);
}

async fn a_lost_leaderboard_is_rebuilt_from_postgres(mode: RedisMode) {
    let app = spawn_app_with(settings_for(mode)).await;
    let users = [
        new_user(&app, "u1").await,
        new_user(&app, "u2").await,
        new_user(&app, "u3").await,
    ];
    let challenge = created(&app, "/challenges", json!({"slug": "c", "title": "C"})).await;
    let challenge_id = challenge["id"].as_str().unwrap();
    let submit = format!("/challenges/{challenge_id}/submissions");
    for (user, score) in users.iter().zip([30.0, 70.0, 50.0]) {
        created(
            &app,
            &submit,
            json!({"user_id": user, "language": "go", "status": "passed", "score": score}),
        )
        .await;
    }
    let first = leaderboard(&app, challenge_id).await;
    let expected = vec![
        (users[1].clone(), 70.0),
        (users[2].clone(), 50.0),
        (users[0].clone(), 30.0),
    ];
    assert_eq!(ranking(&first), expected);
    assert_eq!(leaderboard(&app, challenge_id).await["source"], "redis");

    // Redis loses the board (a flush, a failover to an empty replica).
    let board = format!("sgw:lb:{{{}:{challenge_id}}}", app.tenant);
    let delete = redis::cmd("DEL")
        .arg(&board)
        .arg(format!("{board}:built"))
        .clone();
    let removed: u64 = match mode {
        RedisMode::Single => {
            let redis = redis::Client::open(std::env::var("REDIS_URL").unwrap()).unwrap();
            let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
            delete.query_async(&mut connection).await.unwrap()
        }
        RedisMode::Cluster => {
            let nodes = std::env::var("STACK_REDIS_CLUSTER_NODES").unwrap();
            let redis =
                redis::cluster::ClusterClient::new(nodes.split(",").collect::<Vec<_>>()).unwrap();
            let mut connection = redis.get_async_connection().await.unwrap();
            delete.query_async(&mut connection).await.unwrap()
        }
    };
    assert_eq!(removed, 2);
    // A submission meanwhile must not make a board of one user look whole.
    created(
        &app,
        &submit,
        json!({"user_id": users[0], "language": "go", "status": "passed", "score": 60.0}),
    )
    .await;
    let rebuilt = leaderboard(&app, challenge_id).await;
    assert_eq!(rebuilt["source"], "rebuilt");
    assert_eq!(
        ranking(&rebuilt),
        vec![
            (users[1].clone(), 70.0),
            (users[0].clone(), 60.0),
            (users[2].clone(), 50.0),
        ]
    );
}

#[tokio::test]
async fn entities_are_checked_and_kept_per_tenant() {
    let app = spawn_app().await;
    let user = new_user(&app, "dup").await;
    let again = app
        .post_json("/users", &json!({"external_id": "dup"}))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let challenge = created(&app, "/challenges", json!({"slug": "s", "title": "S"})).await;
    let challenge_id = challenge["id"].as_str().unwrap();
    let submit = format!("/challenges/{challenge_id}/submissions");

    for (body, status, expected) in [
        (
            json!({"user_id": user, "language": "rust", "status": "won"}),
            StatusCode::BAD_REQUEST,
            "status must be",
        ),
        (
            json!({"user_id": user, "language": ""}),
            StatusCode::BAD_REQUEST,
            "language",
        ),
        (
            json!({"user_id": user, "language": "c", "code": "x".repeat(300_000)}),
            StatusCode::BAD_REQUEST,
            "max_code_bytes",
        ),
        (
            json!({"user_id": uuid::Uuid::new_v4(), "language": "c"}),
            StatusCode::NOT_FOUND,
            "no user",
        ),
        (json!({"language": "c"}), StatusCode::BAD_REQUEST, "user_id"),
    ] {
        let response = app.post_json(&submit, &body).await;
        assert_eq!(response.status(), status, "{body}");
        let message = json(response).await["error"]["message"].to_string();
        assert!(message.contains(expected), "{message}");
    }
    let bad_slug = app
        .post_json("/challenges", &json!({"slug": "Not A Slug", "title": "x"}))
        .await;
    assert_eq!(bad_slug.status(), StatusCode::BAD_REQUEST);

    let submission = created(&app, &submit, json!({"user_id": user, "language": "c"})).await;
    assert_eq!(submission["status"], "queued");
    let other = app.other_tenant_key().await;
    for path in [
        format!("/users/{user}"),
        format!("/challenges/{challenge_id}"),
        format!("/submissions/{}", submission["id"].as_str().unwrap()),
        format!("/challenges/{challenge_id}/leaderboard"),
    ] {
        assert_eq!(
            app.get_as(&path, &other).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let across = app
        .post_json_as(&submit, &other, &json!({"user_id": user, "language": "c"}))
        .await;
    assert_eq!(across.status(), StatusCode::NOT_FOUND);
    let limit = app
        .get(&format!(
            "/challenges/{challenge_id}/leaderboard?limit=1000"
        ))
        .await;
    assert_eq!(limit.status(), StatusCode::BAD_REQUEST);
}

async fn post_form(app: &TestApp, path: &str, form: Form) -> reqwest::Response {
    app.request(reqwest::Method::POST, path)
        .multipart(form)
        .send()
        .await
        .expect("request sent")
}

async fn submission_rows(app: &TestApp) -> i64 {
    let client = crate::common::postgres(&std::env::var("DATABASE_URL").unwrap()).await;
    let row = client
        .query_one(
            "SELECT count(*) FROM submissions WHERE tenant_id = $1",
            &[&app.tenant.as_str()],
        )
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test]
async fn a_form_submission_streams_its_output() {
    let app = spawn_app().await;
    let (user, submit) = crate::common::user_and_challenge(&app).await;
    let meta = json!({"user_id": user, "language": "go", "status": "passed", "score": 7.5});

    // About 2.4 MB: far past the inline threshold.
    let output: Vec<u8> = (0..300_000u32)
        .flat_map(|i| format!("{i:07}\n").into_bytes())
        .collect();
    let form = Form::new()
        .text("submission", meta.to_string())
        .part("output", Part::bytes(output.clone()).file_name("out.txt"));
    let response = post_form(&app, &submit, form).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let big = json(response).await;
    assert_eq!(big["output"]["stored_in"], "ipfs", "{big}");
    assert_eq!(big["output"]["size"], output.len());
    assert_eq!(big["score"], 7.5);
    let streamed = app
        .get(&format!(
            "/submissions/{}/output",
            big["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(streamed.status(), StatusCode::OK);
    assert!(
        streamed.bytes().await.unwrap() == output,
        "the output reads back whole"
    );

    let small = Form::new()
        .text("submission", meta.to_string())
        .text("output", "all tests passed");
    let small = json(post_form(&app, &submit, small).await).await;
    assert_eq!(small["output"]["stored_in"], "inline", "{small}");
    assert_eq!(small["output"]["text"], "all tests passed");

    let without = Form::new().text("submission", meta.to_string());
    let without = json(post_form(&app, &submit, without).await).await;
    assert_eq!(without["output"]["text"], Value::Null, "{without}");
    assert_eq!(without["output"]["size"], 0);
    assert_eq!(submission_rows(&app).await, 3);
    assert_eq!(app.file_rows().await, 1, "only the large output is a file");
}

#[tokio::test]
async fn a_bad_submission_form_leaves_nothing_behind() {
    let mut settings = crate::common::stack_settings();
    settings.files.max_upload_bytes = 1 << 20;
    let app = spawn_app_with(settings).await;
    let (user, submit) = crate::common::user_and_challenge(&app).await;
    let meta = json!({"user_id": user, "language": "go"}).to_string();
    let large = || Part::bytes(vec![b'x'; 300_000]);
    // The one output that reaches IPFS before its form is refused: content
    // of this test's own, so its CID names no one else's blob.
    let stored: Vec<u8> = crate::common::unique("stray-output")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(300_000)
        .collect();
    let stored_cid = crate::common::cid_of(&stored).await;

    let cases = [
        (
            Form::new()
                .part("output", large())
                .text("submission", meta.clone()),
            StatusCode::BAD_REQUEST,
            "\"submission\" part first",
        ),
        (
            Form::new().text(
                "submission",
                json!({"user_id": user, "language": "go", "output": "x"}).to_string(),
            ),
            StatusCode::BAD_REQUEST,
            "\"output\" part only",
        ),
        (
            Form::new().text("submission", "{not json"),
            StatusCode::BAD_REQUEST,
            "the submission part",
        ),
        (
            Form::new()
                .text(
                    "submission",
                    json!({"user_id": user, "language": "go", "status": "won"}).to_string(),
                )
                .part("output", large()),
            StatusCode::BAD_REQUEST,
            "status must be",
        ),
        (
            Form::new()
                .text(
                    "submission",
                    json!({"user_id": uuid::Uuid::new_v4(), "language": "go"}).to_string(),
                )
                .part("output", large()),
            StatusCode::NOT_FOUND,
            "no user",
        ),
        // The output reached IPFS before the stray part was seen: it is
        // removed again.
        (
            Form::new()
                .text("submission", meta.clone())
                .part("output", Part::bytes(stored.clone()))
                .text("comment", "stray"),
            StatusCode::BAD_REQUEST,
            "nothing after",
        ),
        (
            Form::new()
                .text("submission", meta.clone())
                .part("output", Part::bytes(vec![b'y'; 2 << 20])),
            StatusCode::PAYLOAD_TOO_LARGE,
            "over the limit of 1048576 bytes",
        ),
        (
            Form::new()
                .text("submission", meta.clone())
                .part("output", Part::bytes(vec![0xff, 0xfe, 0x00])),
            StatusCode::BAD_REQUEST,
            "UTF-8",
        ),
    ];
    for (form, status, expected) in cases {
        let response = post_form(&app, &submit, form).await;
        assert_eq!(response.status(), status, "expected {expected:?}");
        let body = json(response).await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{message}");
    }
    assert_eq!(submission_rows(&app).await, 0);
    assert_eq!(
        app.file_rows().await,
        0,
        "no file row, pending or committed"
    );
    assert_eq!(
        crate::common::blob_state(&stored_cid).await,
        None,
        "no blob row"
    );
    assert!(
        !crate::common::in_cluster_pinset(&stored_cid).await,
        "{stored_cid} left in the Cluster's pin set"
    );
    assert!(!crate::common::cluster_holds(&stored_cid).await);
}

#[tokio::test]
async fn an_output_in_use_is_kept() {
    let app = spawn_app().await;
    let (user, submit) = crate::common::user_and_challenge(&app).await;
    let meta = json!({"user_id": user, "language": "go"}).to_string();
    let output = vec![b'z'; 200_000];
    let form = |extra: bool| {
        let form = Form::new()
            .text("submission", meta.clone())
            .part("output", Part::bytes(output.clone()));
        if extra {
            form.text("comment", "stray")
        } else {
            form
        }
    };

    // The tenant has this content as an ordinary file: a failed submission
    // with the same output leaves it alone.
    let upload = app.upload(&[("name", "data.txt")], output.clone()).await;
    assert_eq!(upload.status(), StatusCode::CREATED);
    let cid = json(upload).await["cid"].as_str().unwrap().to_owned();
    let failed = post_form(&app, &submit, form(true)).await;
    assert_eq!(failed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.file_rows().await, 1);
    assert_eq!(
        app.get(&format!("/files/{cid}")).await.status(),
        StatusCode::OK
    );

    // Submissions with that output share the one file.
    let first = json(post_form(&app, &submit, form(false)).await).await;
    assert_eq!(first["output"]["cid"], cid.as_str(), "{first}");
    let id = first["id"].as_str().unwrap().to_owned();
    let second = json(post_form(&app, &submit, form(false)).await).await;
    assert_eq!(second["output"]["cid"], cid.as_str(), "{second}");
    assert_eq!(app.file_rows().await, 1);

    // Deleting it through /files is refused while a submission names it.
    let delete = app.delete(&format!("/files/{cid}")).await;
    assert_eq!(delete.status(), StatusCode::CONFLICT);
    let message = json(delete).await["error"]["message"].to_string();
    assert!(message.contains("is the output of submission"), "{message}");
    let read = app.get(&format!("/submissions/{id}/output")).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert!(read.bytes().await.unwrap() == output);
}
