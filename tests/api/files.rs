//! Files on the real stack: streaming upload into Kubo, pins through the
//! Cluster, metadata in Postgres, downloads with HTTP caching semantics.

use std::time::{Duration, Instant};

use crate::common::{
    json, postgres, ref_count, spawn_app, spawn_app_with, stack_settings, TestApp,
};
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

const CHUNK: usize = 262_144;

/// Deterministic pseudo-random bytes, different per seed.
fn content(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..size)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

fn unique_content(size: usize) -> Vec<u8> {
    content(size, uuid::Uuid::new_v4().as_u128() as u64)
}

async fn upload_raw(app: &TestApp, name: &str, body: Vec<u8>) -> reqwest::Response {
    app.upload(&[("name", name)], body).await
}

async fn uploaded_cid(app: &TestApp, name: &str, body: Vec<u8>) -> String {
    let response = upload_raw(app, name, body).await;
    assert_eq!(response.status(), 201);
    json(response).await["cid"].as_str().unwrap().to_owned()
}

async fn download(app: &TestApp, cid: &str) -> reqwest::Response {
    app.get(&format!("/files/{cid}/download")).await
}

/// The content as Kubo node `node` serves it, straight from its RPC API.
async fn cat_from_kubo(node: u16, cid: &str) -> Vec<u8> {
    let offset: u16 = std::env::var("STACK_PORT_OFFSET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let port = 25000 + node + offset;
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v0/cat"))
        .query(&[("arg", cid)])
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    response.bytes().await.unwrap().to_vec()
}

/// The Cluster's own view of a pin: peers reporting it pinned, or None when unknown.
async fn cluster_pinned_peers(cid: &str) -> Option<usize> {
    let url = std::env::var("IPFS_CLUSTER_URL").unwrap();
    let response = reqwest::get(format!("{url}/pins/{cid}")).await.unwrap();
    if response.status() == 404 {
        return None;
    }
    let body: serde_json::Value = response.json().await.unwrap();
    let peers = body["peer_map"].as_object()?;
    if peers.values().all(|p| p["status"] == "unpinned") {
        return None;
    }
    Some(peers.values().filter(|p| p["status"] == "pinned").count())
}

async fn wait_for_pinned_peers(cid: &str, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let pinned = cluster_pinned_peers(cid).await.unwrap_or(0);
        if pinned >= at_least {
            return;
        }
        if Instant::now() > deadline {
            let url = std::env::var("IPFS_CLUSTER_URL").unwrap();
            let status = reqwest::get(format!("{url}/pins/{cid}")).await.unwrap();
            panic!(
                "{cid}: {pinned} peers pinned, want {at_least}: {}",
                status.text().await.unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The CID stays in the Cluster's pin set and pinned on two peers or more.
async fn assert_still_pinned(cid: &str, why: &str) {
    assert!(
        crate::common::in_cluster_pinset(cid).await,
        "{why}: {cid} left the pin set"
    );
    wait_for_pinned_peers(cid, 2).await;
}

#[tokio::test]
async fn byte_exact_round_trips_at_chunk_edges() {
    let app = spawn_app().await;
    for size in [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
        let body = unique_content(size);
        let response = upload_raw(&app, "edge.bin", body.clone()).await;
        assert_eq!(response.status(), 201, "size {size}");
        let meta = json(response).await;
        assert_eq!(meta["size"], size, "size {size}");
        assert_eq!(meta["sha256"], hex::encode(Sha256::digest(&body)));
        let cid = meta["cid"].as_str().unwrap();
        assert!(cid.starts_with("baf"), "CIDv1: {cid}");
        if size <= 32 {
            assert!(cid.starts_with("bafkqa"), "tiny content is inlined: {cid}");
        }
        assert!(meta["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/ipfs/{cid}")));

        let downloaded = download(&app, cid).await;
        assert_eq!(downloaded.status(), 200);
        assert_eq!(
            downloaded.headers()["content-length"],
            size.to_string().as_str()
        );
        assert_eq!(
            downloaded.bytes().await.unwrap().as_ref(),
            body.as_slice(),
            "size {size}"
        );
        // Another node gets it over bitswap, from the peers the Cluster pinned it on.
        assert_eq!(cat_from_kubo(2, cid).await, body, "size {size}");
    }
}

#[tokio::test]
async fn a_large_upload_streams_both_ways() {
    let app = spawn_app().await;
    const SIZE: usize = 100 * 1024 * 1024;
    let seed = uuid::Uuid::new_v4().as_u128() as u64;
    // The body is generated chunk by chunk, so neither side holds it whole.
    let chunks = futures_util::stream::iter(0..SIZE / (1 << 20))
        .map(move |i| Ok::<_, std::io::Error>(Bytes::from(content(1 << 20, seed + i as u64))));
    let mut expected = Sha256::new();
    for i in 0..SIZE / (1 << 20) {
        expected.update(content(1 << 20, seed + i as u64));
    }
    let expected = hex::encode(expected.finalize());
    let response = app
        .upload(&[("name", "large.bin")], reqwest::Body::wrap_stream(chunks))
        .await;
    assert_eq!(response.status(), 201);
    let meta = json(response).await;
    assert_eq!(meta["size"], SIZE);
    assert_eq!(meta["sha256"], expected.as_str());

    let response = download(&app, meta["cid"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    let mut received = Sha256::new();
    let mut length = 0;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        length += chunk.len();
        received.update(&chunk);
    }
    assert_eq!(length, SIZE);
    assert_eq!(hex::encode(received.finalize()), expected);
}

#[tokio::test]
async fn the_cluster_replicates_to_the_minimum() {
    let app = spawn_app().await;
    let cid = uploaded_cid(&app, "replicated.bin", unique_content(50_000)).await;
    wait_for_pinned_peers(&cid, 2).await;
    let meta = json(app.get(&format!("/files/{cid}")).await).await;
    assert_eq!(meta["pin"]["replication_min"], 2);
    assert_eq!(meta["pin"]["replication_max"], 3);
    assert!(meta["pin"]["pinned_peers"].as_u64().unwrap() >= 2, "{meta}");
    assert!(!meta["pin"]["allocations"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn multipart_uploads_take_their_fields_in_any_order() {
    let app = spawn_app().await;
    let body = unique_content(10_000);
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(body.clone())
                .file_name("report.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        )
        .text("metadata", r#"{"challenge": 7}"#)
        .text("owner", "user-1")
        .text("replication_min", "1")
        .text("replication_max", "2");
    let response = app.upload_form(form).await;
    assert_eq!(response.status(), 201);
    let meta = json(response).await;
    assert_eq!(meta["name"], "report.pdf");
    assert_eq!(meta["owner"], "user-1");
    assert_eq!(meta["metadata"]["challenge"], 7);
    assert_eq!(meta["content_type"], "application/pdf");
    assert_eq!(meta["pin"]["replication_min"], 1);
    assert_eq!(meta["pin"]["replication_max"], 2);
}

#[tokio::test]
async fn content_type_is_sniffed_from_the_bytes() {
    let app = spawn_app().await;
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    png.extend(unique_content(100));
    let response = app
        .http
        .post(app.url("/files/upload"))
        .query(&[("name", "picture.txt")])
        .bearer_auth(&app.key)
        .header("content-type", "text/plain")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await["content_type"], "image/png");
}

#[tokio::test]
async fn ranges_etags_and_head() {
    let app = spawn_app().await;
    let body = unique_content(1000);
    let cid = uploaded_cid(&app, "ranged.bin", body.clone()).await;
    let path = format!("/files/{cid}/download");
    let ranged = |range: &'static str| {
        let request = app
            .http
            .get(app.url(&path))
            .bearer_auth(&app.key)
            .header("range", range);
        async move { request.send().await.unwrap() }
    };

    for (range, start, end) in [
        ("bytes=0-0", 0, 0),
        ("bytes=999-", 999, 999),
        ("bytes=-10", 990, 999),
        ("bytes=100-199", 100, 199),
        ("bytes=900-5000", 900, 999),
    ] {
        let response = ranged(range).await;
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {start}-{end}/1000").as_str()
        );
        assert_eq!(
            response.bytes().await.unwrap().as_ref(),
            &body[start..=end],
            "{range}"
        );
    }
    let past_the_end = ranged("bytes=1000-").await;
    assert_eq!(past_the_end.status(), 416);
    assert_eq!(past_the_end.headers()["content-range"], "bytes */1000");
    let refusal = json(past_the_end).await;
    assert_eq!(
        refusal["error"]["code"], "range_not_satisfiable",
        "{refusal}"
    );
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1000")),
        "{refusal}"
    );
    for bad in ["bytes=0-1,5-6", "pages=1-2", "bytes=x-"] {
        let response = ranged(bad).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(json(response).await["error"]["code"], "invalid_range");
    }

    let full = download(&app, &cid).await;
    let etag = full.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{cid}\""));
    // A tenant's file: the client may keep it, no shared cache may.
    assert_eq!(
        full.headers()["cache-control"],
        "private, max-age=29030400, immutable"
    );
    assert_eq!(full.headers()["vary"], "Authorization, X-API-Key");
    assert_eq!(full.headers()["x-content-type-options"], "nosniff");
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    let not_modified = app
        .http
        .get(app.url(&path))
        .bearer_auth(&app.key)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert!(not_modified.bytes().await.unwrap().is_empty());

    let head = app
        .http
        .head(app.url(&path))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "1000");
    assert_eq!(head.headers()["etag"], etag.as_str());
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn any_file_name_downloads_under_its_own_name() {
    let app = spawn_app().await;
    let name = "résumé \"final\"/../ 履歴書.pdf";
    let cid = uploaded_cid(&app, name, unique_content(10)).await;
    let response = download(&app, &cid).await;
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\""),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename*=UTF-8''r%C3%A9sum%C3%A9"),
        "{disposition}"
    );
    assert!(!disposition.contains('\n'));
    let meta = json(app.get(&format!("/files/{cid}")).await).await;
    assert_eq!(meta["name"], name, "names are stored as given");
}

/// Right after a pin, a peer the Cluster allocated it to may not know it
/// yet, and the Cluster's status then reads `"allocations": null`. Uploads
/// on one peer, waiting for their pin, often poll just then; each must
/// still end pinned.
#[tokio::test]
async fn uploads_waiting_for_a_fresh_single_peer_pin_end_pinned() {
    let app = spawn_app().await;
    let statuses = futures_util::future::join_all((0..24).map(|i| {
        let app = &app;
        async move {
            let query = [
                ("name", "one-peer.txt"),
                ("replication_min", "1"),
                ("replication_max", "1"),
                ("wait", "pinned"),
            ];
            let response = app.upload(&query, unique_content(64 + i)).await;
            let status = response.status().as_u16();
            let body = json(response).await;
            (status, body["pin"]["status"].clone())
        }
    }))
    .await;
    for (status, pin) in &statuses {
        assert_eq!(*status, 201, "{statuses:?}");
        assert_eq!(pin, "pinned", "{statuses:?}");
    }
}

#[tokio::test]
async fn shared_content_is_pinned_once_and_unpinned_after_the_last_delete() {
    let alice = spawn_app().await;
    let bob = spawn_app().await;
    let body = unique_content(20_000);
    let cid = uploaded_cid(&alice, "shared.bin", body.clone()).await;
    assert_eq!(uploaded_cid(&bob, "mine.bin", body.clone()).await, cid);
    // The same tenant uploading it again updates its file, adding no reference.
    assert_eq!(uploaded_cid(&bob, "renamed.bin", body).await, cid);
    assert_eq!(
        json(bob.get(&format!("/files/{cid}")).await).await["name"],
        "renamed.bin"
    );
    wait_for_pinned_peers(&cid, 2).await;

    assert_eq!(ref_count(&cid).await, 2);

    assert_eq!(alice.delete(&format!("/files/{cid}")).await.status(), 204);
    assert_eq!(download(&alice, &cid).await.status(), 404);
    assert_still_pinned(&cid, "Bob still holds it").await;
    assert_eq!(download(&bob, &cid).await.status(), 200);

    assert_eq!(bob.delete(&format!("/files/{cid}")).await.status(), 204);
    assert!(
        !crate::common::in_cluster_pinset(&cid).await,
        "the last delete unpins"
    );
    assert_eq!(
        cluster_pinned_peers(&cid).await,
        None,
        "the last delete unpins"
    );
    assert_eq!(bob.delete(&format!("/files/{cid}")).await.status(), 404);
}

#[tokio::test]
async fn another_tenants_file_is_not_found() {
    let alice = spawn_app().await;
    let mallory = spawn_app().await;
    let cid = uploaded_cid(&alice, "private.bin", unique_content(100)).await;
    for path in [format!("/files/{cid}"), format!("/files/{cid}/download")] {
        let response = mallory.get(&path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(json(response).await["error"]["code"], "not_found");
    }
    assert_eq!(mallory.delete(&format!("/files/{cid}")).await.status(), 404);
    let listing = json(mallory.get("/files").await).await;
    assert!(listing["files"].as_array().unwrap().is_empty());
    assert_eq!(download(&alice, &cid).await.status(), 200);
}

#[tokio::test]
async fn listing_is_newest_first_with_keyset_pages() {
    let app = spawn_app().await;
    let mut cids = Vec::new();
    for i in 0..5 {
        let owner = if i % 2 == 0 { "even" } else { "odd" };
        let name = format!("f{i}");
        let response = app
            .upload(
                &[("name", name.as_str()), ("owner", owner)],
                unique_content(10),
            )
            .await;
        cids.push(json(response).await["cid"].as_str().unwrap().to_owned());
    }
    cids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/files?limit=2&cursor={c}"),
            None => "/files?limit=2".to_owned(),
        };
        let page = json(app.get(&path).await).await;
        let files = page["files"].as_array().unwrap();
        assert!(files.len() <= 2);
        seen.extend(files.iter().map(|f| f["cid"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, cids);
    let odd = json(app.get("/files?owner=odd").await).await;
    assert_eq!(odd["files"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/files?limit=0").await.status(), 400);
    assert_eq!(app.get("/files?cursor=zz").await.status(), 400);
}

#[tokio::test]
async fn bad_uploads_get_400_and_leave_nothing_behind() {
    let app = spawn_app().await;
    let assert_bad = |response: reqwest::Response, code: &'static str| async move {
        assert_eq!(response.status(), 400);
        let body = json(response).await;
        assert_eq!(body["error"]["code"], code, "{body}");
    };
    // Text that is no CID names no file, and the message says why.
    for path in ["/files/not-a-cid", "/files/not-a-cid/download"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body = json(response).await;
        assert_eq!(body["error"]["code"], "not_found");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a valid CID"));
    }

    let no_file = reqwest::multipart::Form::new().text("name", "x");
    let response = app.upload_form(no_file).await;
    assert_bad(response, "invalid_multipart").await;

    // Two files make a directory, which needs a name when no folder holds
    // them all.
    let two_files = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![1]).file_name("a"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![2]).file_name("b"),
        );
    let response = app
        .http
        .post(app.url("/files/upload"))
        .bearer_auth(&app.key)
        .multipart(two_files)
        .send()
        .await
        .unwrap();
    assert_bad(response, "missing_name").await;

    let truncated = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.bin\"\r\n\r\nsome bytes but no closing boundary";
    let response = app
        .http
        .post(app.url("/files/upload"))
        .bearer_auth(&app.key)
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(truncated)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let response = app
        .http
        .post(app.url("/files/upload"))
        .bearer_auth(&app.key)
        .body("no name")
        .send()
        .await
        .unwrap();
    assert_bad(response, "missing_name").await;
    let response = upload_raw(&app, &"n".repeat(300), vec![1]).await;
    assert_bad(response, "invalid_name").await;
    let response = app
        .upload(
            &[
                ("name", "x"),
                ("replication_min", "3"),
                ("replication_max", "2"),
            ],
            "x",
        )
        .await;
    assert_bad(response, "invalid_replication").await;
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![1]).file_name("a"),
        )
        .text("metadata", "[1, 2]");
    let response = app.upload_form(form).await;
    assert_bad(response, "invalid_metadata").await;

    assert_eq!(app.file_rows().await, 0, "a failed upload left rows behind");
}

#[tokio::test]
async fn an_upload_over_the_limit_is_cut_off_with_413() {
    let mut settings = stack_settings();
    settings.files.max_upload_bytes = 100_000;
    let app = spawn_app_with(settings).await;
    let response = upload_raw(&app, "big.bin", unique_content(100_001)).await;
    assert_eq!(response.status(), 413);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("100000"));
    assert_eq!(app.file_rows().await, 0, "a failed upload left rows behind");
    assert_eq!(
        upload_raw(&app, "fits.bin", unique_content(100_000))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn file_endpoints_need_the_file_scopes() {
    let app = spawn_app().await;
    let reader = app
        .key_with(&[storage_gateway::auth::Scope::FilesRead])
        .await;
    let response = app
        .http
        .post(app.url("/files/upload"))
        .query(&[("name", "x")])
        .bearer_auth(&reader)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let nothing = app.key_with(&[storage_gateway::auth::Scope::Cache]).await;
    assert_eq!(app.get_as("/files", &nothing).await.status(), 403);
    assert_eq!(app.get_as("/files", &reader).await.status(), 200);
}

#[tokio::test]
async fn wait_pinned_answers_once_the_minimum_holds_the_pin() {
    let app = spawn_app().await;
    let response = app
        .upload(
            &[("name", "waited.bin"), ("wait", "pinned")],
            unique_content(70_000),
        )
        .await;
    assert_eq!(response.status(), 201);
    let meta = json(response).await;
    assert_eq!(meta["pin"]["status"], "pinned");
    assert!(meta["pin"]["pinned_peers"].as_u64().unwrap() >= 2, "{meta}");
    let cid = meta["cid"].as_str().unwrap();
    assert!(cluster_pinned_peers(cid).await.unwrap() >= 2);

    let response = app.upload(&[("name", "x"), ("wait", "forever")], "x").await;
    assert_eq!(response.status(), 400);
    assert_eq!(json(response).await["error"]["code"], "invalid_wait");
}

#[tokio::test]
async fn a_tenant_quota_is_enforced_as_the_stream_crosses_it() {
    let mut settings = stack_settings();
    settings.files.tenant_quota_bytes = 50_000;
    let app = spawn_app_with(settings).await;
    assert_eq!(
        upload_raw(&app, "a.bin", unique_content(30_000))
            .await
            .status(),
        201
    );
    let response = upload_raw(&app, "b.bin", unique_content(30_000)).await;
    assert_eq!(response.status(), 413);
    let message = json(response).await["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("quota of 50000 bytes"), "{message}");
    assert_eq!(
        upload_raw(&app, "c.bin", unique_content(20_000))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn content_types_outside_the_allowed_list_are_refused() {
    let mut settings = stack_settings();
    settings.files.allowed_content_types = vec!["image/png".to_owned(), "text/plain".to_owned()];
    let app = spawn_app_with(settings).await;
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    png.extend(unique_content(64));
    assert_eq!(upload_raw(&app, "ok.png", png).await.status(), 201);
    // A client's word alone does not make bytes a PNG.
    let response = app
        .http
        .post(app.url("/files/upload"))
        .query(&[("name", "fake.png")])
        .bearer_auth(&app.key)
        .header("content-type", "image/png")
        .body(b"%PDF-1.4 not a picture".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(
        json(response).await["error"]["code"],
        "unsupported_content_type"
    );
    // Bytes of no recognisable type declared as a type that would have been
    // recognised: the declaration is not believed either.
    let declared = |name: &'static str, content_type: &'static str, body: String| {
        app.http
            .post(app.url("/files/upload"))
            .query(&[("name", name)])
            .bearer_auth(&app.key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let text = || format!("plain words {}", uuid::Uuid::new_v4());
    let response = declared("fake2.png", "image/png", text()).await.unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(app.file_rows().await, 1);
    // A type no bytes can show (text) is taken as declared.
    let response = declared("notes.txt", "text/plain", text()).await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(json(response).await["content_type"], "text/plain");
}

#[tokio::test]
async fn the_reconciler_rolls_back_stale_uploads_and_settles_pins() {
    // Every gateway's reconciler sweeps every tenant, and other tests start
    // gateways all the time. This one alone counts an upload stale after
    // ten minutes (the others wait two hours), so the row below is rolled
    // back by this gateway and no other.
    let mut settings = stack_settings();
    settings.files.pending_expiry_secs = 600;
    let app = spawn_app_with(settings).await;
    let client = postgres(&std::env::var("DATABASE_URL").unwrap()).await;
    // An upload a crashed gateway left pending half an hour ago.
    client
        .execute(
            "INSERT INTO file_metadata (id, tenant_id, name, created_at) \
             VALUES ($1, $2, 'lost', now() - interval '30 minutes')",
            &[&uuid::Uuid::new_v4(), &app.tenant.as_str()],
        )
        .await
        .unwrap();
    let cid = uploaded_cid(&app, "settles.bin", unique_content(40_000)).await;
    wait_for_pinned_peers(&cid, 2).await;

    // This gateway's background pass may have run first; either way the
    // pass here leaves nothing pending and the gateway counted the rollback.
    app.state.files.reconcile_once().await.unwrap();
    let pending: i64 = client
        .query_one(
            "SELECT count(*) FROM file_metadata WHERE tenant_id = $1 AND state = 'writing'",
            &[&app.tenant.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0);
    let meta = json(app.get(&format!("/files/{cid}")).await).await;
    assert_eq!(meta["pin"]["status"], "pinned", "{meta}");
    // At least one: uploads an earlier run left on this stack count too.
    let metrics = app.metrics_text().await;
    let abandoned: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("gateway_file_reconciler_actions_total{action=\"abandoned_upload\"} ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(abandoned >= 1.0, "{metrics}");
}

/// Events of `table` for this tenant and CID, as ClickHouse counts them.
async fn events(table: &str, app: &TestApp, cid: &str) -> u64 {
    crate::common::clickhouse()
        .query(&format!(
            "SELECT count() FROM {table} WHERE tenant_id = ? AND cid = ?"
        ))
        .bind(app.tenant.as_str())
        .bind(cid)
        .fetch_one::<u64>()
        .await
        .unwrap()
}

#[tokio::test]
async fn uploads_and_downloads_are_recorded_in_analytics() {
    let app = spawn_app().await;
    let cid = uploaded_cid(&app, "counted.bin", unique_content(2_000)).await;
    let response = download(&app, &cid).await;
    assert_eq!(response.bytes().await.unwrap().len(), 2_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    while events("file_uploads", &app, &cid).await < 1
        || events("file_downloads", &app, &cid).await < 1
    {
        assert!(Instant::now() < deadline, "events not recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_upload_racing_the_last_delete_keeps_its_pin() {
    let alice = spawn_app().await;
    let bob = spawn_app().await;
    for _ in 0..5 {
        let body = unique_content(5_000);
        let cid = uploaded_cid(&alice, "race.bin", body.clone()).await;
        let path = format!("/files/{cid}");
        let (deleted, uploaded) =
            tokio::join!(alice.delete(&path), upload_raw(&bob, "race.bin", body));
        assert_eq!(deleted.status(), 204);
        assert_eq!(uploaded.status(), 201);
        assert_eq!(ref_count(&cid).await, 1);
        assert_still_pinned(&cid, "the surviving file lost its pin").await;
        assert_eq!(bob.delete(&path).await.status(), 204);
    }
}

/// `ipfs` against a repository of its own, with no daemon and no network.
fn offline_ipfs(repo: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("ipfs")
        .args(args)
        .env("IPFS_PATH", repo)
        .output()
        .expect("the stack's ipfs CLI runs (scripts/stack env puts it on PATH)")
}

async fn bytes_of(response: reqwest::Response) -> Vec<u8> {
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn verifiable_answers_check_out_against_the_cid() {
    let app = spawn_app().await;
    let body = unique_content(700_000);
    let cid = uploaded_cid(&app, "verifiable.bin", body.clone()).await;
    let parsed: cid::Cid = cid.parse().unwrap();

    // The root block hashes to the CID.
    let raw = app.get(&format!("/files/{cid}/download?format=raw")).await;
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["Content-Type"], "application/vnd.ipld.raw");
    let disposition = raw.headers()["Content-Disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.contains(&format!("{cid}.bin")), "{disposition}");
    let block = bytes_of(raw).await;
    assert_eq!(parsed.hash().code(), 0x12);
    assert_eq!(Sha256::digest(&block).as_slice(), parsed.hash().digest());

    // A CAR of the whole DAG, imported into a repository that never saw the
    // file, gives back its bytes.
    let car = app
        .request(reqwest::Method::GET, &format!("/ipfs/{cid}"))
        .header("Accept", "application/vnd.ipld.car")
        .send()
        .await
        .unwrap();
    assert_eq!(car.status(), 200);
    assert!(car.headers()["Content-Type"]
        .to_str()
        .unwrap()
        .starts_with("application/vnd.ipld.car"));
    let etag = car.headers()["ETag"].to_str().unwrap().to_owned();
    let car = bytes_of(car).await;
    let repo = crate::common::temp_dir("offline-ipfs");
    let init = offline_ipfs(&repo, &["init", "--profile=test", "-e"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let car_file = repo.join("file.car");
    std::fs::write(&car_file, &car).unwrap();
    let imported = offline_ipfs(
        &repo,
        &[
            "dag",
            "import",
            "--pin-roots=false",
            car_file.to_str().unwrap(),
        ],
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let cat = offline_ipfs(&repo, &["cat", "--offline", &cid]);
    assert!(
        cat.status.success(),
        "{}",
        String::from_utf8_lossy(&cat.stderr)
    );
    assert!(cat.stdout == body, "the CAR's DAG gives back the file");

    // Narrower scopes give less; a known ETag gives 304.
    let block_only = bytes_of(
        app.get(&format!("/ipfs/{cid}?format=car&dag-scope=block"))
            .await,
    )
    .await;
    assert!(block_only.len() < 2000 && block_only.len() > block.len());
    let first_bytes = app
        .get(&format!(
            "/ipfs/{cid}?format=car&dag-scope=entity&entity-bytes=0:99"
        ))
        .await;
    assert_eq!(first_bytes.status(), 200);
    let first_bytes = bytes_of(first_bytes).await;
    assert!(
        first_bytes.len() < car.len() / 2,
        "{} of {}",
        first_bytes.len(),
        car.len()
    );
    let cached = app
        .request(reqwest::Method::GET, &format!("/ipfs/{cid}?format=car"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    // Without a format, the bytes, as an attachment that no browser runs;
    // only for the tenant's own files.
    let plain = app.get(&format!("/ipfs/{cid}")).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], "application/octet-stream");
    assert!(plain.bytes().await.unwrap() == body);
    let other = app.other_tenant_key().await;
    let foreign = app.get_as(&format!("/ipfs/{cid}"), &other).await;
    assert_eq!(foreign.status(), 404);
    let foreign = app.get_as(&format!("/ipfs/{cid}?format=raw"), &other).await;
    assert_eq!(foreign.status(), 404);
    let bad = app
        .get(&format!("/ipfs/{cid}?format=car&dag-scope=most"))
        .await;
    assert_eq!(bad.status(), 400);
    // A range the DAG cannot answer is Kubo's refusal, passed on as the
    // caller's 400; a control character in a path never reaches Kubo.
    let backwards = app
        .get(&format!("/ipfs/{cid}?format=car&entity-bytes=6:2"))
        .await;
    assert_eq!(backwards.status(), 400);
    assert_eq!(json(backwards).await["error"]["code"], "invalid_format");
    let control = app.get(&format!("/ipfs/{cid}/a%01b?format=car")).await;
    assert_eq!(control.status(), 400);
    assert_eq!(json(control).await["error"]["code"], "invalid_path");
}
