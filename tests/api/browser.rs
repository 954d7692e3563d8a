//! Files from the browser: CORS, signed links, resumable (tus) uploads, and
//! the real clients: tus-js-client in Node, headless Chromium.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{json, GatewayProcess, TestApp};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use storage_gateway::auth::TenantId;
use storage_gateway::config::Settings;

const SIGNING_SECRET: &str = "a-test-signing-secret-of-32-bytes-or-more";
const OTHER_SECRET: &str = "the-next-signing-secret-of-32-bytes-or-more";
const MIB: usize = 1024 * 1024;

fn browser_settings() -> Settings {
    let mut settings = crate::common::stack_settings();
    settings.links.keys = [("k1".to_owned(), SIGNING_SECRET.to_owned().into())].into();
    settings.links.signing_key = "k1".into();
    settings
}

/// The signing key as environment for a gateway process.
fn link_env() -> Vec<(&'static str, String)> {
    vec![
        ("GATEWAY__LINKS__KEYS__K1", SIGNING_SECRET.to_owned()),
        ("GATEWAY__LINKS__SIGNING_KEY", "k1".to_owned()),
    ]
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    let path = crate::common::temp_dir("tus").join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Runs a script of tests/browser with Node; the JSON lines it printed.
async fn node(script: &str, args: serde_json::Value) -> Vec<serde_json::Value> {
    let dir = scripts_dir();
    let script = script.to_owned();
    assert!(
        dir.join("node_modules/tus-js-client").exists(),
        "tests/browser/node_modules is missing: scripts/stack up installs it (npm ci)"
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(dir.join(&script))
            .arg(args.to_string())
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn event<'a>(events: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}

/// The CID the plain upload gives `bytes`, from a tenant of its own.
async fn plain_cid(bytes: &[u8]) -> String {
    let app = crate::common::spawn_app().await;
    let response = app.upload(&[("name", "plain.bin")], bytes.to_vec()).await;
    assert_eq!(response.status(), 201);
    json(response).await["cid"].as_str().unwrap().to_owned()
}

fn auth(key: &str) -> serde_json::Value {
    serde_json::json!({ "Authorization": format!("Bearer {key}") })
}

async fn head_offset(http: &reqwest::Client, url: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = http.head(url).header("Tus-Resumable", "1.0.0");
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in a {} answer", response.status()))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn tus_js_client_resumes_an_aborted_upload_and_gets_the_plain_uploads_cid() {
    let app = crate::common::spawn_app().await;
    let bytes = random_bytes(20 * MIB);
    let file = write_temp("twenty.bin", &bytes);
    let client = |extra: serde_json::Value| {
        let mut args = serde_json::json!({
            "endpoint": app.url("/files/tus"),
            "file": file,
            "chunkSize": 5 * MIB,
            "headers": auth(&app.key),
            "metadata": { "filename": "twenty.bin", "filetype": "application/octet-stream" },
        });
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        args
    };
    let first = node(
        "tus-client.mjs",
        client(serde_json::json!({ "abortAfterChunks": 2 })),
    )
    .await;
    let aborted = event(&first, "aborted");
    let url = aborted["url"].as_str().unwrap().to_owned();
    assert_eq!(aborted["offset"], 10 * MIB);
    let at = head_offset(&app.http, &url, Some(&app.key)).await;
    assert_eq!(at.status(), 200);
    let server_offset: u64 = header(&at, "Upload-Offset").parse().unwrap();
    assert!(server_offset >= 10 * MIB as u64, "{server_offset}");
    assert_eq!(header(&at, "Upload-Length"), (20 * MIB).to_string());

    let second = node(
        "tus-client.mjs",
        client(serde_json::json!({ "uploadUrl": url })),
    )
    .await;
    let done = event(&second, "success");
    assert_eq!(
        done["firstPatchOffset"], server_offset,
        "resumed from the server's offset"
    );
    let cid = done["cid"].as_str().unwrap();
    assert_eq!(cid, plain_cid(&bytes).await);

    // One file, charged once, with the content's own SHA-256.
    let file = json(app.get(&format!("/files/{cid}")).await).await;
    assert_eq!(file["size"], 20 * MIB);
    assert_eq!(file["name"], "twenty.bin");
    assert_eq!(file["sha256"], hex::encode(Sha256::digest(&bytes)));
    assert_eq!(app.file_rows().await, 1);
    let done = head_offset(&app.http, &url, Some(&app.key)).await;
    assert_eq!(header(&done, "X-Ipfs-Path"), format!("/ipfs/{cid}"));
}

fn client_args(
    key: &str,
    endpoint: String,
    file: &Path,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut args = serde_json::json!({
        "endpoint": endpoint,
        "file": file,
        "chunkSize": 2 * MIB,
        "headers": auth(key),
        "metadata": { "filename": "across.bin" },
    });
    args.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    args
}

/// Starts an upload of `file` through the gateway at `base` and aborts it
/// after one chunk; the upload's URL.
async fn start_and_abort(key: &str, base: &str, file: &Path) -> String {
    let args = serde_json::json!({ "abortAfterChunks": 1 });
    let started = node(
        "tus-client.mjs",
        client_args(key, format!("{base}/files/tus"), file, args),
    )
    .await;
    event(&started, "aborted")["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Finishes the upload at `url` through the gateway at `base`; its CID.
async fn finish(key: &str, base: &str, url: &str, file: &Path) -> String {
    let args = serde_json::json!({ "uploadUrl": url });
    let finished = node(
        "tus-client.mjs",
        client_args(key, format!("{base}/files/tus"), file, args),
    )
    .await;
    let done = event(&finished, "success");
    assert!(
        done["firstPatchOffset"].as_u64().unwrap() >= 2 * MIB as u64,
        "{done}"
    );
    done["cid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_upload_resumes_on_a_restarted_gateway() {
    let app = crate::common::spawn_app().await;
    let bytes = random_bytes(5 * MIB + 12_345);
    let file = write_temp("restart.bin", &bytes);
    let gateway = GatewayProcess::start(&link_env());
    gateway.wait_until_serving().await;
    let (base, port) = (gateway.base.clone(), gateway.port);
    let url = start_and_abort(&app.key, &base, &file).await;
    // As a crash would: no shutdown, nothing cleaned up.
    gateway.kill();
    let restarted = GatewayProcess::start_on(port, &link_env());
    restarted.wait_until_serving().await;
    let cid = finish(&app.key, &base, &url, &file).await;
    assert_eq!(cid, plain_cid(&bytes).await);
}

#[tokio::test]
async fn an_upload_resumes_on_a_second_replica() {
    let app = crate::common::spawn_app().await;
    let bytes = random_bytes(4 * MIB + 1);
    let file = write_temp("replica.bin", &bytes);
    let one = GatewayProcess::start(&link_env());
    let two = GatewayProcess::start(&link_env());
    one.wait_until_serving().await;
    two.wait_until_serving().await;
    let url = start_and_abort(&app.key, &one.base, &file).await;
    let moved = url.replace(&one.base, &two.base);
    assert_ne!(moved, url);
    let cid = finish(&app.key, &two.base, &moved, &file).await;
    assert_eq!(cid, plain_cid(&bytes).await);
}

#[tokio::test]
async fn a_checksum_mismatch_leaves_the_offset_where_it_was() {
    let app = crate::common::spawn_app().await;
    let bytes = random_bytes(MIB);
    let file = write_temp("checksum.bin", &bytes);
    let events = node(
        "tus-client.mjs",
        serde_json::json!({
            "endpoint": app.url("/files/tus"),
            "file": file,
            "chunkSize": MIB,
            "headers": auth(&app.key),
            "metadata": { "filename": "checksum.bin" },
            "badChecksum": true,
        }),
    )
    .await;
    let failed = event(&events, "error");
    assert_eq!(failed["status"], 460, "{failed}");
    let url = failed["url"].as_str().unwrap();
    let at = head_offset(&app.http, url, Some(&app.key)).await;
    assert_eq!(header(&at, "Upload-Offset"), "0");
    // The right checksum moves it.
    let digest = base64_of(&Sha256::digest(&bytes));
    let patched = app
        .http
        .patch(url)
        .bearer_auth(&app.key)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Checksum", format!("sha256 {digest}"))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 204);
    assert_eq!(header(&patched, "Upload-Offset"), MIB.to_string());
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_browser_on_another_origin_uploads_and_downloads_through_signed_links() {
    let page_port = crate::common::free_port();
    let tenant = TenantId::parse(&crate::common::unique("browser")).unwrap();
    let mut settings = browser_settings();
    settings.browser.console = true;
    settings.browser.cors_origins = [(
        tenant.as_str().to_owned(),
        vec![format!("http://localhost:{page_port}")],
    )]
    .into();
    let app = crate::common::spawn_app_for(settings, tenant).await;
    let bytes = random_bytes(3 * MIB + 77);
    let file = write_temp("browser.bin", &bytes);
    let output = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-test");
    std::fs::create_dir_all(&output).unwrap();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let results = node(
        "browser.mjs",
        serde_json::json!({
            "chromium": chromium,
            "gateway": app.base,
            "apiKey": app.key,
            "pagePort": page_port,
            "outputDir": output,
            "file": file,
            "console": true,
        }),
    )
    .await;
    let result = &results[0];
    let sha256 = hex::encode(Sha256::digest(&bytes));
    assert_eq!(result["cid"], plain_cid(&bytes).await, "{result}");
    assert_eq!(result["download"]["status"], 200, "{result}");
    assert_eq!(result["download"]["sha256"], sha256);
    assert_eq!(
        result["download"]["etag"],
        format!("\"{}\"", result["cid"].as_str().unwrap())
    );
    assert_eq!(result["reusedLink"]["status"], 403, "{result}");
    assert_eq!(
        result["reusedLink"]["body"]["error"]["code"],
        "link_refused"
    );
    assert_eq!(result["failedRequests"], serde_json::json!([]));
    // The reference rendered from the gateway alone.
    assert!(
        result["docsTitle"]
            .as_str()
            .unwrap()
            .starts_with("storage-gateway"),
        "{result}"
    );
    assert!(result["docsOperations"].as_u64().unwrap() > 20, "{result}");
    assert!(output.join("docs.png").exists());
    assert_eq!(result["consoleDownload"], result["consoleExpectedSha256"]);
    let console_cid = result["consoleCid"].as_str().unwrap();
    let from_console = json(app.get(&format!("/files/{console_cid}")).await).await;
    assert_eq!(from_console["name"], "from-the-console.bin");
    assert!(
        result["consolePin"].as_str().unwrap().starts_with("pin"),
        "{result}"
    );
    // The file made through the link has the link's owner.
    let cid = result["cid"].as_str().unwrap();
    let stored = json(app.get(&format!("/files/{cid}")).await).await;
    assert_eq!(stored["owner"], "browser-user");
}

/// A download link to a new file of `app`.
async fn download_link(app: &TestApp, body: &[u8], ttl: u64) -> (String, String) {
    let stored = json(app.upload(&[("name", "linked.txt")], body.to_vec()).await).await;
    let cid = stored["cid"].as_str().unwrap().to_owned();
    let link = app
        .post_json(
            &format!("/files/{cid}/links"),
            &serde_json::json!({ "expires_in_secs": ttl }),
        )
        .await;
    assert_eq!(link.status(), 201);
    let link = json(link).await;
    assert_eq!(link["method"], "GET");
    (cid, link["url"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_download_link_needs_no_key_and_opens_one_file_for_a_while() {
    let app = crate::common::spawn_app_with(browser_settings()).await;
    let body = format!("linked content {}", crate::common::unique("x"));
    let (cid, url) = download_link(&app, body.as_bytes(), 600).await;
    let http = reqwest::Client::new();

    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    let max_age: u64 = header(&whole, "Cache-Control")
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (590..=600).contains(&max_age),
        "the cache outlives no link: {max_age}"
    );
    assert_eq!(whole.text().await.unwrap(), body);
    let part = http
        .get(&url)
        .header("Range", "bytes=0-5")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.text().await.unwrap(), &body[..6]);
    let etag = format!("\"{cid}\"");
    let cached = http
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert_eq!(http.head(&url).send().await.unwrap().status(), 200);
    // A link also gives the verifiable form, which it does not sign.
    let raw = http.get(format!("{url}&format=raw")).send().await.unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["Content-Type"], "application/vnd.ipld.raw");

    let refused = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 403);
        let body = json(response).await;
        assert_eq!(body["error"]["code"], "link_refused", "{body}");
        body["error"]["message"].as_str().unwrap().to_owned()
    };
    // Another method, another path, a changed part, no signature.
    let message = refused(http.delete(&url).send().await.unwrap()).await;
    assert!(message.contains("opens GET"), "{message}");
    let other_path = url.replace("/download?", "/links?");
    refused(http.post(&other_path).send().await.unwrap()).await;
    let other_tenant = url.replace(
        &format!("sgw_tenant={}", app.tenant),
        "sgw_tenant=someone-else",
    );
    assert_ne!(other_tenant, url);
    refused(http.get(&other_tenant).send().await.unwrap()).await;
    let (_, sig) = url.split_once("sgw_sig=").unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let tampered = format!(
        "{}sgw_sig={flipped}{}",
        url.split_once("sgw_sig=").unwrap().0,
        &sig[1..]
    );
    refused(http.get(&tampered).send().await.unwrap()).await;
    let unsigned = url.split_once("&sgw_sig=").unwrap().0;
    assert_eq!(http.get(unsigned).send().await.unwrap().status(), 401);

    // A file of another tenant gets no link from this one.
    let other = app.other_tenant_key().await;
    let response = app
        .post_json_as(
            &format!("/files/{cid}/links"),
            &other,
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(response.status(), 404);
    let too_long = app
        .post_json(
            &format!("/files/{cid}/links"),
            &serde_json::json!({ "expires_in_secs": 8 * 86400 }),
        )
        .await;
    assert_eq!(too_long.status(), 400);

    // Expiry.
    let (_, short) = download_link(&app, b"short-lived", 1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let message = refused(http.get(&short).send().await.unwrap()).await;
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test]
async fn links_survive_a_key_rotation_until_the_old_key_is_retired() {
    let tenant = TenantId::parse(&crate::common::unique("rotate")).unwrap();
    let first = crate::common::spawn_app_for(browser_settings(), tenant.clone()).await;
    let (_, old_link) = download_link(&first, b"rotated", 600).await;
    let path_and_query = old_link.split_once(&first.base).unwrap().1.to_owned();

    let mut rotated = browser_settings();
    rotated
        .links
        .keys
        .insert("k2".into(), OTHER_SECRET.to_owned().into());
    rotated.links.signing_key = "k2".into();
    let second = crate::common::spawn_app_for(rotated, tenant.clone()).await;
    let http = reqwest::Client::new();
    let old = http.get(second.url(&path_and_query)).send().await.unwrap();
    assert_eq!(old.status(), 200, "the old key still opens its links");
    let (_, new_link) = download_link(&second, b"rotated", 600).await;
    assert!(new_link.contains("sgw_kid=k2"));

    let mut retired = browser_settings();
    retired.links.keys = [("k2".to_owned(), OTHER_SECRET.to_owned().into())].into();
    retired.links.signing_key = "k2".into();
    let third = crate::common::spawn_app_for(retired, tenant).await;
    let gone = http.get(third.url(&path_and_query)).send().await.unwrap();
    assert_eq!(gone.status(), 403);
    let new_path = new_link.split_once(&second.base).unwrap().1;
    assert_eq!(
        http.get(third.url(new_path)).send().await.unwrap().status(),
        200
    );
}

async fn upload_link(app: &TestApp, body: serde_json::Value) -> String {
    let response = app.post_json("/uploads", &body).await;
    assert_eq!(response.status(), 201);
    json(response).await["url"].as_str().unwrap().to_owned()
}

fn tus_create(http: &reqwest::Client, url: &str, length: usize) -> reqwest::RequestBuilder {
    http.post(url)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length.to_string())
        .header(
            "Upload-Metadata",
            format!(
                "filename {},filetype {}",
                base64_of(b"linked.txt"),
                base64_of(b"text/plain")
            ),
        )
}

fn tus_patch(
    http: &reqwest::Client,
    url: &str,
    offset: usize,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    http.patch(url)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(body)
}

#[tokio::test]
async fn an_upload_link_opens_one_upload_within_its_bounds() {
    let app = crate::common::spawn_app_with(browser_settings()).await;
    let http = reqwest::Client::new();
    let link = upload_link(
        &app,
        serde_json::json!({ "owner": "u-1", "max_bytes": 100, "content_types": ["text/plain"] }),
    )
    .await;
    // Over the bound size: refused before anything is reserved.
    let too_big = tus_create(&http, &link, 101).send().await.unwrap();
    assert_eq!(too_big.status(), 413);
    let created = tus_create(&http, &link, 11)
        .header("Content-Type", "application/offset+octet-stream")
        .body("hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let created = tus_create(&http, &link, 11).send().await.unwrap();
    assert_eq!(created.status(), 403, "used once already");
    assert_eq!(json(created).await["error"]["code"], "link_refused");

    // The signed Location continues only its own upload, without a key.
    let link = upload_link(&app, serde_json::json!({ "owner": "u-1" })).await;
    let created = tus_create(&http, &link, 10).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let location = header(&created, "Location").to_owned();
    assert!(location.contains("sgw_sig="), "{location}");
    let head = head_offset(&http, &location, None).await;
    assert_eq!(head.status(), 200);
    let done = tus_patch(&http, &location, 0, "0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 204);
    let cid = header(&done, "X-Ipfs-Path")
        .trim_start_matches("/ipfs/")
        .to_owned();
    let stored = json(app.get(&format!("/files/{cid}")).await).await;
    assert_eq!(stored["owner"], "u-1");
    // POST is not among the methods the Location opens.
    let post = http.post(&location).send().await.unwrap();
    assert_eq!(post.status(), 403);
    let elsewhere = location.replace(
        location.split('?').next().unwrap(),
        &app.url(&format!("/files/tus/{}", uuid::Uuid::new_v4())),
    );
    assert_eq!(head_offset(&http, &elsewhere, None).await.status(), 403);

    // A type outside the link's list: 415 at the last byte, nothing kept.
    let rows = app.file_rows().await;
    let link = upload_link(&app, serde_json::json!({ "content_types": ["image/png"] })).await;
    let created = tus_create(&http, &link, 5).send().await.unwrap();
    let location = header(&created, "Location").to_owned();
    let refused = tus_patch(&http, &location, 0, "plain")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 415);
    assert_eq!(app.file_rows().await, rows);
}

#[tokio::test]
async fn links_are_off_without_a_signing_key() {
    let app = crate::common::spawn_app().await;
    let response = app.post_json("/uploads", &serde_json::json!({})).await;
    assert_eq!(response.status(), 501);
    assert_eq!(json(response).await["error"]["code"], "not_implemented");
}

#[tokio::test]
async fn cors_lets_a_tenants_own_origins_read_answers() {
    let tenant = TenantId::parse(&crate::common::unique("cors")).unwrap();
    let mut settings = browser_settings();
    settings.browser.cors_origins = [
        (
            tenant.as_str().to_owned(),
            vec![
                "https://app.example.com".to_owned(),
                "https://*.pages.example.com".to_owned(),
            ],
        ),
        (
            "elsewhere".to_owned(),
            vec!["https://other.example.net".to_owned()],
        ),
    ]
    .into();
    let app = crate::common::spawn_app_for(settings, tenant).await;
    let preflight = |origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/files/upload"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, upload-length",
            )
            .send()
    };
    // No key on a preflight.
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(allowed.status(), 204);
    assert_eq!(
        header(&allowed, "Access-Control-Allow-Origin"),
        "https://app.example.com"
    );
    assert!(header(&allowed, "Access-Control-Allow-Methods").contains("PATCH"));
    assert_eq!(
        header(&allowed, "Access-Control-Allow-Headers"),
        "authorization, upload-length"
    );
    assert!(header(&allowed, "Vary").contains("Origin"));
    let wildcard = preflight("https://team.pages.example.com").await.unwrap();
    assert_eq!(wildcard.status(), 204);
    let refused = preflight("https://evil.example.org").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused
        .headers()
        .get("Access-Control-Allow-Origin")
        .is_none());
    assert_eq!(json(refused).await["error"]["code"], "origin_not_allowed");

    let get = |origin: &'static str| {
        app.request(reqwest::Method::GET, "/files")
            .header("Origin", origin)
            .send()
    };
    let read = get("https://app.example.com").await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(
        header(&read, "Access-Control-Allow-Origin"),
        "https://app.example.com"
    );
    let exposed = header(&read, "Access-Control-Expose-Headers").to_owned();
    for name in [
        "ETag",
        "Content-Range",
        "Location",
        "Upload-Offset",
        "Tus-Resumable",
        "RateLimit",
    ] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }
    assert!(header(&read, "Vary").contains("Origin"));
    // An origin another tenant allows reads nothing of this one.
    let foreign = get("https://other.example.net").await.unwrap();
    assert_eq!(foreign.status(), 200);
    assert!(foreign
        .headers()
        .get("Access-Control-Allow-Origin")
        .is_none());
    // Without an origin, nothing changes.
    let plain = app.get("/files").await;
    assert!(plain.headers().get("Access-Control-Allow-Origin").is_none());
}

#[tokio::test]
async fn tus_requests_that_break_the_protocol_are_refused_clearly() {
    let app = crate::common::spawn_app().await;
    let http = &app.http;
    let create = || tus_create(http, &app.url("/files/tus"), 10).bearer_auth(&app.key);
    let options = http
        .request(reqwest::Method::OPTIONS, app.url("/files/tus"))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 204);
    assert_eq!(header(&options, "Tus-Version"), "1.0.0");
    assert!(header(&options, "Tus-Extension").contains("creation-defer-length"));
    assert_eq!(header(&options, "Tus-Checksum-Algorithm"), "sha256");
    assert!(options.headers().contains_key("Tus-Max-Size"));

    let unversioned = http
        .post(app.url("/files/tus"))
        .bearer_auth(&app.key)
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), 412);
    assert_eq!(header(&unversioned, "Tus-Version"), "1.0.0");
    let both = create()
        .header("Upload-Defer-Length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);

    let created = create().send().await.unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("Upload-Expires"));
    let url = header(&created, "Location").to_owned();
    let wrong_offset = tus_patch(http, &url, 3, "abc")
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_offset.status(), 409);
    let wrong_type = http
        .patch(&url)
        .bearer_auth(&app.key)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/octet-stream")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    let too_long = tus_patch(http, &url, 0, "0123456789AB")
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 413);
    let part = tus_patch(http, &url, 0, "01234")
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 204);
    assert_eq!(header(&part, "Upload-Offset"), "5");
    // Another tenant sees no such upload.
    let other = app.other_tenant_key().await;
    assert_eq!(head_offset(http, &url, Some(&other)).await.status(), 404);
    // Termination releases it.
    let ended = http
        .delete(&url)
        .bearer_auth(&app.key)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    assert_eq!(head_offset(http, &url, Some(&app.key)).await.status(), 404);
    assert_eq!(app.file_rows().await, 0, "its reservation is gone");

    // A deferred length is given by a later PATCH.
    let deferred = http
        .post(app.url("/files/tus"))
        .bearer_auth(&app.key)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Defer-Length", "1")
        .header(
            "Upload-Metadata",
            format!("filename {}", base64_of(b"later.txt")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deferred.status(), 201);
    let url = header(&deferred, "Location").to_owned();
    let head = head_offset(http, &url, Some(&app.key)).await;
    assert_eq!(header(&head, "Upload-Defer-Length"), "1");
    let first = tus_patch(http, &url, 0, "abc")
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 204);
    let last = tus_patch(http, &url, 3, "def")
        .bearer_auth(&app.key)
        .header("Upload-Length", "6")
        .send()
        .await
        .unwrap();
    assert_eq!(last.status(), 204);
    let cid = header(&last, "X-Ipfs-Path")
        .trim_start_matches("/ipfs/")
        .to_owned();
    let content = app.get(&format!("/files/{cid}/download")).await;
    assert_eq!(content.text().await.unwrap(), "abcdef");
}

#[tokio::test]
async fn two_patches_of_one_upload_are_serialised() {
    let app = crate::common::spawn_app().await;
    let created = tus_create(&app.http, &app.url("/files/tus"), 2 * MIB)
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let url = header(&created, "Location").to_owned();
    // The first PATCH streams slowly; the second, sent meanwhile at the
    // same offset, waits for it and then finds the offset moved.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    let slow = tus_patch(&app.http, &url, 0, reqwest::Body::wrap_stream(body))
        .bearer_auth(&app.key)
        .send();
    let feeder = async move {
        for _ in 0..4 {
            sender.send(Ok(vec![7u8; 256 * 1024])).await.unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    };
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let response = tus_patch(&app.http, &url, 0, vec![9u8; 1024])
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        (response, started.elapsed())
    };
    let (first, (second, waited), ()) = tokio::join!(slow, second, feeder);
    let first = first.unwrap();
    assert_eq!(first.status(), 204);
    assert_eq!(header(&first, "Upload-Offset"), MIB.to_string());
    assert_eq!(second.status(), 409, "it ran after the first one");
    assert!(
        waited >= Duration::from_millis(800),
        "it waited: {waited:?}"
    );
    let head = head_offset(&app.http, &url, Some(&app.key)).await;
    assert_eq!(header(&head, "Upload-Offset"), MIB.to_string());
}

#[tokio::test]
async fn unfinished_uploads_expire_and_give_back_their_reservation() {
    let mut settings = browser_settings();
    settings.files.tenant_quota_bytes = 1000;
    settings.files.tus_expiry_secs = 1;
    let app = crate::common::spawn_app_with(settings).await;
    let created = tus_create(&app.http, &app.url("/files/tus"), 1000)
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let url = header(&created, "Location").to_owned();
    // The whole quota is reserved at creation.
    let refused = tus_create(&app.http, &app.url("/files/tus"), 1)
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 413);
    let upload = app.upload(&[("name", "x")], "x").await;
    assert_eq!(upload.status(), 413);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        head_offset(&app.http, &url, Some(&app.key)).await.status(),
        404
    );
    // Every gateway's reconciler expires every tenant's uploads, and the
    // other tests' gateways run theirs too: whichever pass took this one,
    // the upload and its reserved file row go, within a few seconds.
    app.state.files.reconcile_once().await.unwrap();
    let client = crate::common::postgres(&std::env::var("DATABASE_URL").unwrap()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM tus_uploads WHERE tenant_id = $1",
                &[&app.tenant.as_str()],
            )
            .await
            .unwrap()
            .get(0);
        let files = app.file_rows().await;
        if open == 0 && files == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 10 s: {open} uploads, {files} file rows"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let upload = app.upload(&[("name", "x")], "x").await;
    assert_eq!(upload.status(), 201, "the reservation came back");
}

/// A stream of `len` pseudo-random bytes, made as it is sent.
fn streamed(len: usize) -> reqwest::Body {
    let chunk = bytes::Bytes::from(random_bytes(MIB));
    let chunks = len / MIB;
    reqwest::Body::wrap_stream(
        futures_util::stream::iter(0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    )
}

#[tokio::test]
async fn a_large_upload_in_parts_stays_small_in_memory() {
    let app = crate::common::spawn_app().await;
    let gateway = GatewayProcess::start(&link_env());
    gateway.wait_until_serving().await;
    let before = gateway.peak_rss();
    let total = 96 * MIB;
    let http = reqwest::Client::new();
    let created = tus_create(&http, &format!("{}/files/tus", gateway.base), total)
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let url = header(&created, "Location").to_owned();
    for part in 0..3 {
        let patched = tus_patch(&http, &url, part * 32 * MIB, streamed(32 * MIB))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 204);
    }
    let grown = gateway.peak_rss().saturating_sub(before);
    assert!(
        grown < 48 * MIB as u64,
        "peak RSS grew by {grown} bytes for a 96 MiB upload"
    );
}

#[tokio::test]
async fn a_resumable_upload_can_wait_until_pinned() {
    let app = crate::common::spawn_app().await;
    let body = format!("wait for my pin {}", crate::common::unique("w"));
    let created = app
        .http
        .post(app.url("/files/tus"))
        .bearer_auth(&app.key)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", body.len().to_string())
        .header(
            "Upload-Metadata",
            format!(
                "filename {},wait {}",
                base64_of(b"w.txt"),
                base64_of(b"pinned")
            ),
        )
        .header("Content-Type", "application/offset+octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let cid = header(&created, "X-Ipfs-Path")
        .trim_start_matches("/ipfs/")
        .to_owned();
    // Answered only once the pin held: the stored state says so already.
    let file = json(app.get(&format!("/files/{cid}")).await).await;
    assert_eq!(file["pin"]["status"], "pinned", "{file}");
    assert!(file["pin"]["pinned_peers"].as_u64().unwrap() >= 2, "{file}");
}
