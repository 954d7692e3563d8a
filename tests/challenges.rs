//! Users, challenges and submissions across Postgres, IPFS, ClickHouse and
//! Redis.

mod common;

use std::time::Duration;

use common::{json, settings_for, spawn_app, spawn_app_with, wait_for_count, RedisMode, TestApp};

// A board and its mark must share a Redis Cluster slot.
in_both_redis_modes!(a_lost_leaderboard_is_rebuilt_from_postgres);
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
