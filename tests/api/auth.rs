//! API keys: 401 without a valid key, 403 without the scope, tenants apart.

use crate::common::{json, postgres, spawn_app};
use storage_gateway::auth::Scope;

#[tokio::test]
async fn a_request_without_a_key_is_refused() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/auth/whoami")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("API key"));
}

#[tokio::test]
async fn unknown_malformed_and_forged_keys_are_refused() {
    let app = spawn_app().await;
    let (_, secret) = app.key[4..].split_once('_').unwrap();
    let forged_secret = format!(
        "{}{}",
        &secret[..63],
        if secret.ends_with('0') { '1' } else { '0' }
    );
    let id = &app.key[4..20];
    for key in [
        format!("sgw_{}_{}", "0".repeat(16), "1".repeat(64)),
        "not-a-key".to_owned(),
        format!("sgw_{id}_{forged_secret}"),
    ] {
        let response = app.get_as("/auth/whoami", &key).await;
        assert_eq!(response.status(), 401, "{key}");
    }
}

#[tokio::test]
async fn both_headers_carry_a_key() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/auth/whoami"))
        .header("x-api-key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["tenant"], app.tenant.as_str());
    assert_eq!(body["scopes"].as_array().unwrap().len(), Scope::ALL.len());
    let response = app.get("/auth/whoami").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_key_without_the_scope_gets_403() {
    let app = spawn_app().await;
    let narrow = app.key_with(&[Scope::FilesRead]).await;
    let response = app.get_as("/admin/keys", &narrow).await;
    assert_eq!(response.status(), 403);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body["error"]["message"].as_str().unwrap().contains("admin"));
}

#[tokio::test]
async fn a_revoked_key_stops_working() {
    let app = spawn_app().await;
    let created = app
        .post_json(
            "/admin/keys",
            &serde_json::json!({"name": "ci", "scopes": ["cache", "sessions"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created = json(created).await;
    let new_key = created["key"].as_str().unwrap().to_owned();
    let whoami = app.get_as("/auth/whoami", &new_key).await;
    assert_eq!(whoami.status(), 200);
    assert_eq!(
        json(whoami).await["scopes"],
        serde_json::json!(["cache", "sessions"])
    );

    let id = created["id"].as_str().unwrap();
    let revoked = app.delete(&format!("/admin/keys/{id}")).await;
    assert_eq!(revoked.status(), 204);
    let after = app.get_as("/auth/whoami", &new_key).await;
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn keys_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let client = postgres(&std::env::var("DATABASE_URL").unwrap()).await;
    let id = &app.key[4..20];
    let row = client
        .query_one(
            "SELECT row_to_json(k)::text FROM api_keys k WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let stored: String = row.get(0);
    let secret = &app.key[21..];
    assert!(
        !stored.contains(secret),
        "the secret is stored in clear: {stored}"
    );
}

#[tokio::test]
async fn tenants_cannot_see_or_revoke_each_others_keys() {
    let alice = spawn_app().await;
    let bob = spawn_app().await;
    let bob_key_id = &bob.key[4..20];
    let response = alice.delete(&format!("/admin/keys/{bob_key_id}")).await;
    assert_eq!(response.status(), 404);
    let bob_still = bob.get("/auth/whoami").await;
    assert_eq!(bob_still.status(), 200);

    let listing = json(alice.get("/admin/keys").await).await;
    let keys = listing["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| k["tenant"] == alice.tenant.as_str()));
    assert!(keys
        .iter()
        .all(|k| k.get("key").is_none() && k.get("secret_hash").is_none()));
}

#[tokio::test]
async fn bad_key_requests_say_what_is_wrong() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/admin/keys",
            &serde_json::json!({"scopes": ["files:delete"]}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "invalid_scopes");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("files:delete"));

    let response = app
        .http
        .post(app.url("/admin/keys"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body("{\"scopes\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(json(response).await["error"]["code"], "invalid_json");
}
