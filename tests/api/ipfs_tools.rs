//! What the IPFS ecosystem's own tools do with the gateway: the Pinning
//! Service API at /psa, driven by Kubo's own client (`ipfs pin remote`), by
//! the community compliance suite, and by plain HTTP for what the client
//! does not show (filters, counts, the error shape, quota, failure and
//! polling under a rate limit); and CAR uploads made by Kubo on a node of
//! the test's own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{json, spawn_app, spawn_app_with, stack_settings, unique, TestApp};
use serde_json::{json, Value};
use storage_gateway::config::{LimitSettings, PolicySettings, RedisDownMode};

/// A Kubo node of the test's own, outside the stack: content added to it is
/// fetched from it by the Cluster's nodes, as from any peer on the network.
struct OriginNode {
    repo: PathBuf,
    daemon: Child,
}

impl OriginNode {
    fn start() -> Self {
        let repo = crate::common::temp_dir("origin-ipfs");
        let init = ipfs(&repo, &["init", "--profile=test", "-e"]);
        assert!(init.status.success(), "ipfs init: {init:?}");
        // As the stack's nodes: no public network to reach here.
        for (key, value) in [
            ("Routing.Type", "\"none\""),
            ("Bootstrap", "[]"),
            ("Discovery.MDNS.Enabled", "false"),
            ("AutoConf.Enabled", "false"),
            ("DNS.Resolvers", "{}"),
            ("Routing.DelegatedRouters", "[]"),
            ("Ipns.DelegatedPublishers", "[]"),
            ("Swarm.RelayClient.Enabled", "false"),
            ("Swarm.RelayService.Enabled", "false"),
            ("AutoTLS.Enabled", "false"),
        ] {
            let set = ipfs(&repo, &["config", "--json", key, value]);
            assert!(set.status.success(), "ipfs config {key}: {set:?}");
        }
        let log = std::fs::File::create(repo.join("daemon.log")).unwrap();
        let daemon = Command::new("ipfs")
            .args(["daemon", "--enable-gc=false"])
            .env("IPFS_PATH", &repo)
            .env("IPFS_TELEMETRY", "off")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the stack's ipfs CLI runs (scripts/stack env puts it on PATH)");
        let node = Self { repo, daemon };
        let deadline = Instant::now() + Duration::from_secs(60);
        // Only once the daemon wrote its API address: an `ipfs id` before
        // that would open the repository itself and keep the daemon out.
        while !node.repo.join("api").exists() || !ipfs(&node.repo, &["id"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "the origin node did not start: {:?} {}",
                ipfs(&node.repo, &["id"]),
                std::fs::read_to_string(node.repo.join("daemon.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        node
    }

    fn run(&self, args: &[&str]) -> Output {
        ipfs(&self.repo, args)
    }

    /// Adds `bytes` to this node only (CIDv1, as the gateway stores).
    fn add(&self, bytes: &[u8]) -> String {
        let file = self.repo.join(unique("content"));
        std::fs::write(&file, bytes).unwrap();
        let added = self.run(&["add", "-Q", "--cid-version=1", file.to_str().unwrap()]);
        assert!(added.status.success(), "ipfs add: {added:?}");
        String::from_utf8(added.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for OriginNode {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn ipfs(repo: &Path, args: &[&str]) -> Output {
    Command::new("ipfs")
        .args(args)
        .env("IPFS_PATH", repo)
        .output()
        .expect("the stack's ipfs CLI runs (scripts/stack env puts it on PATH)")
}

/// Runs the ipfs CLI off the runtime: the gateway under test answers it
/// from the same runtime.
async fn ipfs_cli(repo: PathBuf, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ipfs(&repo, &args)
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

/// Where the Cluster says a CID stands on each peer.
async fn cluster_statuses(cid: &str) -> Vec<String> {
    let url = format!(
        "{}/pins/{cid}",
        std::env::var("IPFS_CLUSTER_URL").expect("stack env")
    );
    let status: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    status["peer_map"]
        .as_object()
        .map(|peers| {
            peers
                .values()
                .map(|p| p["status"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_until_unpinned(cid: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let statuses = cluster_statuses(cid).await;
        if statuses.iter().all(|s| s == "unpinned") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{cid} still pinned by the Cluster: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn add_pin(app: &TestApp, body: &Value) -> Value {
    let response = app.post_json("/psa/pins", body).await;
    assert_eq!(response.status(), 202, "{body}");
    json(response).await
}

async fn list(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/psa/pins{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    json(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubo_pins_remotely_through_the_gateway() {
    let app = spawn_app().await;
    let origin = OriginNode::start();
    let cid = origin.add(&random_bytes(300_000));
    let repo = origin.repo.clone();
    let endpoint = app.url("/psa");

    let added = ipfs_cli(
        repo.clone(),
        args(&["pin", "remote", "service", "add", "gw", &endpoint, &app.key]),
    )
    .await;
    assert!(added.status.success(), "service add: {added:?}");

    // `pin remote add` passes the origin node's addresses and waits until
    // the service says pinned.
    let pinned = ipfs_cli(
        repo.clone(),
        args(&["pin", "remote", "add", "--service=gw", "--name=first", &cid]),
    )
    .await;
    assert!(pinned.status.success(), "pin remote add: {pinned:?}");
    let statuses = cluster_statuses(&cid).await;
    let replication_min = app.state.settings.files.replication_min as usize;
    assert!(
        statuses.iter().filter(|s| *s == "pinned").count() >= replication_min,
        "the Cluster holds it: {statuses:?}"
    );
    // The pin is a file of the tenant, and the Cluster's nodes hold the
    // bytes: the gateway serves them.
    let files = json(app.get("/files").await).await;
    let file = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["cid"] == cid.as_str())
        .expect("the pin is listed by /files")
        .clone();
    assert_eq!(file["name"], "first");
    assert_eq!(file["kind"], "pin");
    let downloaded = app.get(&format!("/files/{cid}/download")).await;
    assert_eq!(downloaded.status(), 200);
    assert_eq!(downloaded.bytes().await.unwrap().len(), 300_000);

    // Files uploaded through /files are pins here too: more than two pages
    // of Kubo's listing (it pages by 10 with `before`).
    let mut uploaded = Vec::new();
    for i in 0..22 {
        let response = app
            .upload(&[("name", &format!("upload-{i}"))], random_bytes(64))
            .await;
        assert_eq!(response.status(), 201);
        uploaded.push(json(response).await["cid"].as_str().unwrap().to_owned());
    }
    let listed = ipfs_cli(
        repo.clone(),
        args(&[
            "pin",
            "remote",
            "ls",
            "--service=gw",
            "--status=queued,pinning,pinned,failed",
        ]),
    )
    .await;
    assert!(listed.status.success(), "pin remote ls: {listed:?}");
    let listed = String::from_utf8(listed.stdout).unwrap();
    let listed_cids: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(listed_cids.len(), 23, "every pin once:\n{listed}");
    for expected in uploaded.iter().chain([&cid]) {
        assert!(
            listed_cids.contains(&expected.as_str()),
            "{expected} listed"
        );
    }

    // Another tenant's pin set is its own.
    let other = app.other_tenant_key().await;
    let added = ipfs_cli(
        repo.clone(),
        args(&[
            "pin", "remote", "service", "add", "other", &endpoint, &other,
        ]),
    )
    .await;
    assert!(added.status.success());
    let others = ipfs_cli(
        repo.clone(),
        args(&[
            "pin",
            "remote",
            "ls",
            "--service=other",
            "--status=queued,pinning,pinned,failed",
        ]),
    )
    .await;
    assert!(others.status.success(), "{others:?}");
    assert_eq!(String::from_utf8(others.stdout).unwrap().trim(), "");

    // Removing the last reference unpins it in the Cluster.
    let removed = ipfs_cli(
        repo.clone(),
        args(&[
            "pin",
            "remote",
            "rm",
            "--service=gw",
            &format!("--cid={cid}"),
        ]),
    )
    .await;
    assert!(removed.status.success(), "pin remote rm: {removed:?}");
    let after = list(
        &app,
        &format!("?cid={cid}&status=queued,pinning,pinned,failed"),
    )
    .await;
    assert_eq!(after["count"], 0);
    wait_until_unpinned(&cid).await;
    for cid in uploaded {
        assert_eq!(app.delete(&format!("/files/{cid}")).await.status(), 204);
    }
}

#[tokio::test]
async fn one_cid_under_two_requests_is_referenced_twice() {
    let app = spawn_app().await;
    let upload = app.upload(&[("name", "twice")], random_bytes(1000)).await;
    assert_eq!(upload.status(), 201);
    let cid = json(upload).await["cid"].as_str().unwrap().to_owned();
    assert_eq!(crate::common::ref_count(&cid).await, 1);

    let a = add_pin(&app, &json!({"cid": cid, "name": "a"})).await;
    let b = add_pin(&app, &json!({"cid": cid, "name": "b", "meta": {"k": "v"}})).await;
    assert_ne!(a["requestid"], b["requestid"]);
    assert_eq!(crate::common::ref_count(&cid).await, 3);
    assert!(!b["delegates"].as_array().unwrap().is_empty());
    assert_eq!(b["pin"]["meta"], json!({"k": "v"}));

    // The upload, then one request, go; the content stays for the other.
    assert_eq!(
        app.delete(&format!("/psa/pins/{}", a["requestid"].as_str().unwrap()))
            .await
            .status(),
        202
    );
    assert_eq!(crate::common::ref_count(&cid).await, 2);
    let got = app
        .get(&format!("/psa/pins/{}", b["requestid"].as_str().unwrap()))
        .await;
    assert_eq!(got.status(), 200);
    assert_eq!(json(got).await["pin"]["name"], "b");

    // Replacing gives a new id, and the content is referenced throughout.
    let replaced = app
        .post_json(
            &format!("/psa/pins/{}", b["requestid"].as_str().unwrap()),
            &json!({"cid": cid, "name": "c"}),
        )
        .await;
    assert_eq!(replaced.status(), 202);
    let c = json(replaced).await;
    assert_ne!(c["requestid"], b["requestid"]);
    assert_eq!(crate::common::ref_count(&cid).await, 2);
    let gone = app
        .get(&format!("/psa/pins/{}", b["requestid"].as_str().unwrap()))
        .await;
    assert_eq!(gone.status(), 404);

    // DELETE /files/{cid} drops every file of the tenant on the CID.
    assert_eq!(app.delete(&format!("/files/{cid}")).await.status(), 204);
    wait_until_unpinned(&cid).await;
}

#[tokio::test]
async fn listings_filter_count_and_page_newest_first() {
    let app = spawn_app().await;
    let mut made = Vec::new();
    for (i, name) in ["Report-A", "report-b", "notes", "Report-A"]
        .iter()
        .enumerate()
    {
        let upload = app.upload(&[("name", "x")], random_bytes(100)).await;
        let cid = json(upload).await["cid"].as_str().unwrap().to_owned();
        let meta = json!({"i": i.to_string(), "team": if i < 2 { "red" } else { "blue" }});
        made.push(add_pin(&app, &json!({"cid": cid, "name": name, "meta": meta})).await);
    }
    // Every status unless asked (the specification sets no default). The
    // uploads themselves are files too, named "x".
    let all = "status=queued,pinning,pinned,failed";
    let everything = list(&app, &format!("?{all}&limit=1000")).await;
    assert_eq!(everything["count"], 8);
    assert_eq!(list(&app, "?limit=1000").await["count"], 8);
    let newest_ten = list(&app, "").await;
    assert_eq!(newest_ten["results"].as_array().unwrap().len(), 8);
    let created: Vec<&str> = everything["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["created"].as_str().unwrap())
        .collect();
    let mut sorted = created.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted, "newest first");

    for (query, expected) in [
        ("name=Report-A", 2),
        ("name=report-a&match=iexact", 2),
        ("name=port&match=partial", 3),
        ("name=REPORT&match=ipartial", 3),
        ("name=report&match=partial", 1),
        ("meta=%7B%22team%22%3A%22red%22%7D", 2),
        ("meta=%7B%22team%22%3A%22red%22%2C%22i%22%3A%221%22%7D", 1),
    ] {
        let page = list(&app, &format!("?{all}&{query}")).await;
        assert_eq!(page["count"], expected, "{query}");
        assert_eq!(
            page["results"].as_array().unwrap().len(),
            expected,
            "{query}"
        );
    }
    let first = made[0]["pin"]["cid"].as_str().unwrap();
    let by_cid = list(
        &app,
        &format!(
            "?{all}&cid={first},{}",
            made[1]["pin"]["cid"].as_str().unwrap()
        ),
    )
    .await;
    // Each CID has its upload and its request.
    assert_eq!(by_cid["count"], 4);

    // `before` and `after` at the precision given back, and beyond it.
    let newest = made[3]["created"].as_str().unwrap();
    let older = list(&app, &format!("?{all}&before={newest}&limit=1000")).await;
    assert_eq!(older["count"], 7);
    let at = time::OffsetDateTime::parse(newest, &time::format_description::well_known::Rfc3339)
        .unwrap();
    let nanos = at.unix_timestamp_nanos();
    let finer = |offset: i128| {
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos + offset)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
            .replace("+00:00", "Z")
    };
    let just_after = list(&app, &format!("?{all}&before={}&limit=1000", finer(1))).await;
    assert_eq!(just_after["count"], 8, "1 ns after the newest takes it in");
    let since = list(&app, &format!("?{all}&after={}&limit=1000", finer(-1))).await;
    assert_eq!(since["count"], 1, "1 ns before the newest");

    // Paging by `before`, as Kubo does: every pin once, however the count
    // falls.
    let mut seen = Vec::new();
    let mut before = String::new();
    loop {
        let page = list(&app, &format!("?{all}&limit=3{before}")).await;
        let results = page["results"].as_array().unwrap();
        seen.extend(
            results
                .iter()
                .map(|r| r["requestid"].as_str().unwrap().to_owned()),
        );
        if page["count"].as_i64().unwrap() as usize == results.len() {
            break;
        }
        before = format!(
            "&before={}",
            results.last().unwrap()["created"].as_str().unwrap()
        );
    }
    let unique_seen: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), 8);
    assert_eq!(unique_seen.len(), 8);
}

#[tokio::test]
async fn failures_come_in_the_specification_shape() {
    let app = spawn_app().await;
    for (response, status, reason) in [
        (
            app.http.get(app.url("/psa/pins")).send().await.unwrap(),
            401,
            "UNAUTHORIZED",
        ),
        (
            app.get(&format!("/psa/pins/{}", uuid::Uuid::new_v4()))
                .await,
            404,
            "NOT_FOUND",
        ),
        (app.get("/psa/pins/not-a-uuid").await, 404, "NOT_FOUND"),
        (
            app.post_json("/psa/pins", &json!({"cid": "nope"})).await,
            400,
            "BAD_REQUEST",
        ),
        (
            app.post_json(
                "/psa/pins",
                &json!({"cid": "bafkqaaa", "origins": ["not a multiaddr"]}),
            )
            .await,
            400,
            "BAD_REQUEST",
        ),
        (
            app.post_json("/psa/pins", &json!({"cid": "bafkqaaa", "meta": {"n": 1}}))
                .await,
            400,
            "BAD_REQUEST",
        ),
        (app.get("/psa/pins?limit=1001").await, 400, "BAD_REQUEST"),
        (app.get("/psa/pins?status=done").await, 400, "BAD_REQUEST"),
    ] {
        assert_eq!(response.status(), status);
        assert!(response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let body = json(response).await;
        assert_eq!(body["error"]["reason"], reason, "{body}");
        assert!(body["error"]["details"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
        assert!(body["error"].get("code").is_none());
    }
}

#[tokio::test]
async fn a_tenant_out_of_quota_gets_insufficient_funds() {
    let mut settings = stack_settings();
    settings.files.tenant_quota_bytes = 10_000;
    let app = spawn_app_with(settings).await;
    let upload = app.upload(&[("name", "full")], random_bytes(10_000)).await;
    assert_eq!(upload.status(), 201);
    let cid = json(upload).await["cid"].as_str().unwrap().to_owned();
    let before = app.file_rows().await;
    let refused = app.post_json("/psa/pins", &json!({"cid": cid})).await;
    assert_eq!(refused.status(), 409);
    let body = json(refused).await;
    assert_eq!(body["error"]["reason"], "INSUFFICIENT_FUNDS");
    assert_eq!(app.file_rows().await, before, "nothing recorded");
    assert_eq!(crate::common::ref_count(&cid).await, 1, "nothing claimed");
    assert_eq!(app.delete(&format!("/files/{cid}")).await.status(), 204);
}

#[tokio::test]
async fn a_pin_nobody_can_serve_fails_after_the_bound_and_polls_are_not_rate_limited() {
    let mut settings = stack_settings();
    settings.pinning.fail_after_secs = 2;
    settings.rate_limit.policies.insert(
        "tight-gateway".into(),
        PolicySettings {
            limits: vec![LimitSettings {
                name: "second".into(),
                limit: 3,
                window: "1s".into(),
                burst: None,
            }],
            shadow: false,
            on_redis_down: RedisDownMode::Open,
        },
    );
    settings.rate_limit.gateway_policy = "tight-gateway".into();
    let app = spawn_app_with(settings).await;

    // Content no node has: the Cluster looks for it in vain.
    let digest: [u8; 32] = random_bytes(32).try_into().unwrap();
    let mh = cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
    let cid = cid::Cid::new_v1(0x55, mh).to_string();
    let pin = add_pin(&app, &json!({"cid": cid, "name": "lost"})).await;
    let id = pin["requestid"].as_str().unwrap().to_owned();
    assert!(["queued", "pinning"].contains(&pin["status"].as_str().unwrap()));

    // Kubo polls every 500 ms; faster still here, past the gateway policy
    // of 3 requests a second, and never refused.
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut polls = 0;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let response = app.get(&format!("/psa/pins/{id}")).await;
        let status = response.status();
        last = json(response).await;
        assert_eq!(status, 200, "poll {polls}: {last}");
        polls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(polls > 20);
    assert_eq!(last["status"], "failed");
    assert!(last["info"]["status_details"]
        .as_str()
        .unwrap()
        .contains("not pinned within 2 seconds"));
    let failed = list(&app, "?status=failed").await;
    assert_eq!(failed["count"], 1);

    // Listings are rate-limited as any request, and say so in the shape.
    let mut refused = None;
    for _ in 0..10 {
        let response = app.get("/psa/pins").await;
        if response.status() == 429 {
            refused = Some(json(response).await);
            break;
        }
    }
    let refused = refused.expect("the listing hit the gateway policy");
    assert!(refused["error"]["reason"].as_str().is_some());

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.delete(&format!("/psa/pins/{id}")).await.status(), 202);
    wait_until_unpinned(&cid).await;
}

/// The community compliance suite for Pinning Service implementations
/// (installed by scripts/lib/install.sh, reading the specification from the
/// copy next to it) against a gateway of its own tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_community_compliance_suite_passes_every_check() {
    let app = spawn_app().await;
    let suite = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/psa-compliance");
    let reports = crate::common::temp_dir("psa-compliance");
    let (endpoint, key) = (app.url("/psa"), app.key.clone());
    let (dir, out) = (suite.clone(), reports.clone());
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("node_modules/@ipfs-shipyard/pinning-service-compliance/dist/src/index.js")
            .args(["-s", &endpoint, &key])
            .current_dir(&dir)
            .env("PSA_SPEC_LOCATION", dir.join("ipfs-pinning-service.yaml"))
            .env("PSA_REPORT_DIR", &out)
            .output()
            .expect("node runs (scripts/lib/install.sh installs it)")
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&run.stdout).into_owned();
    let report = std::fs::read_to_string(reports.join("127.0.0.1.md")).unwrap_or_default();
    let summary: Value = std::fs::read(reports.join("127.0.0.1.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| panic!("no results written:\n{printed}\n{run:?}"));

    // Whatever the suite made, none of it stays pinned in the Cluster.
    let left = list(&app, "?limit=1000").await;
    for pin in left["results"].as_array().unwrap() {
        let id = pin["requestid"].as_str().unwrap();
        assert_eq!(app.delete(&format!("/psa/pins/{id}")).await.status(), 202);
    }

    assert!(summary["total"].as_u64().unwrap() >= 9, "{summary}");
    assert_eq!(summary["failed"], 0, "{printed}\n{report}");
    assert_eq!(summary["success"], true);
    // Each check's own expectations, not only the checks.
    assert!(!report.contains("FAILURE"), "{report}");
    assert!(report.matches("SUCCESS").count() >= 40, "{report}");
    assert_eq!(left["count"], 0, "the suite removes what it made");
}

/// An offline Kubo repository of the test's own: an independent maker of
/// CARs (a chunker and a CID version the gateway does not use).
struct OfflineRepo {
    repo: PathBuf,
}

impl OfflineRepo {
    fn new() -> Self {
        let repo = crate::common::temp_dir("car-maker");
        let init = ipfs(&repo, &["init", "--profile=test", "-e"]);
        assert!(init.status.success(), "ipfs init: {init:?}");
        Self { repo }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = ipfs(&self.repo, args);
        assert!(out.status.success(), "ipfs {args:?}: {out:?}");
        out
    }

    /// Adds `bytes` (CIDv0, 100 KiB chunks) and answers the root.
    fn add(&self, bytes: &[u8]) -> String {
        let file = self.repo.join(unique("content"));
        std::fs::write(&file, bytes).unwrap();
        let out = self.run(&[
            "add",
            "-Q",
            "--offline",
            "--chunker=size-102400",
            file.to_str().unwrap(),
        ]);
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn export(&self, cid: &str) -> Vec<u8> {
        self.run(&["dag", "export", "--offline", cid]).stdout
    }

    /// Bytes of the blocks under `cid`.
    fn dag_size(&self, cid: &str) -> u64 {
        let out = self.run(&[
            "dag",
            "stat",
            "--offline",
            "--progress=false",
            "--enc=json",
            cid,
        ]);
        let stat: Value = serde_json::from_slice(&out.stdout).unwrap();
        stat["TotalSize"].as_u64().unwrap()
    }
}

/// `car` with its header replaced by one naming `roots`.
fn with_roots(car: &[u8], roots: &[&str]) -> Vec<u8> {
    let (mut length, mut shift, mut at) = (0usize, 0, 0);
    loop {
        let byte = car[at];
        length |= usize::from(byte & 0x7f) << shift;
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    #[derive(serde::Serialize)]
    struct Header {
        roots: Vec<cid::Cid>,
        version: u64,
    }
    let roots = roots.iter().map(|r| r.parse().unwrap()).collect();
    let header = serde_ipld_dagcbor::to_vec(&Header { roots, version: 1 }).unwrap();
    assert!(header.len() < 128);
    let mut out = vec![header.len() as u8];
    out.extend(header);
    out.extend(&car[at + length..]);
    out
}

async fn upload_car(app: &TestApp, name: &str, car: Vec<u8>) -> reqwest::Response {
    app.request(reqwest::Method::POST, "/files/upload")
        .query(&[("name", name)])
        .header("content-type", "application/vnd.ipld.car")
        .body(car)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_car_made_by_kubo_elsewhere_uploads_and_downloads_byte_identical() {
    let app = spawn_app().await;
    let maker = OfflineRepo::new();
    let bytes = random_bytes(1_500_000);
    let made = maker.add(&bytes);
    assert!(made.starts_with("Qm"), "CIDv0 from the maker: {made}");
    let car = maker.export(&made);
    // The gateway keeps every CID as CIDv1 in base32.
    let parsed: cid::Cid = made.parse().unwrap();
    let root = cid::Cid::new_v1(parsed.codec(), *parsed.hash()).to_string();

    let response = upload_car(&app, "from-kubo.bin", car).await;
    assert_eq!(response.status(), 201);
    let file = json(response).await;
    assert_eq!(file["cid"], root.as_str());
    assert_eq!(file["kind"], "car");
    assert_eq!(
        file["size"],
        maker.dag_size(&made),
        "charged by the DAG's bytes"
    );
    assert!(file["sha256"].is_null());

    let downloaded = app.get(&format!("/files/{root}/download")).await;
    assert_eq!(downloaded.status(), 200);
    assert_eq!(
        downloaded.headers()["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    assert!(downloaded.bytes().await.unwrap() == bytes, "byte-identical");
    let ranged = app
        .request(reqwest::Method::GET, &format!("/files/{root}/download"))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert!(ranged.bytes().await.unwrap() == bytes[1000..2000]);

    // And out again as a CAR, read back by a fresh offline repository.
    let out = app.get(&format!("/ipfs/{root}?format=car")).await;
    assert_eq!(out.status(), 200);
    let car_out = crate::common::temp_dir("car-out").join("out.car");
    std::fs::write(&car_out, out.bytes().await.unwrap()).unwrap();
    let reader = OfflineRepo::new();
    reader.run(&[
        "dag",
        "import",
        "--pin-roots=false",
        car_out.to_str().unwrap(),
    ]);
    assert!(reader.run(&["cat", "--offline", &root]).stdout == bytes);

    assert_eq!(app.delete(&format!("/files/{root}")).await.status(), 204);
    wait_until_unpinned(&root).await;
}

#[tokio::test]
async fn a_broken_car_is_422_and_leaves_nothing_pinned_or_charged() {
    let mut settings = stack_settings();
    settings.files.tenant_quota_bytes = 50_000_000;
    let app = spawn_app_with(settings).await;
    let maker = OfflineRepo::new();
    let other = maker.add(&random_bytes(800_000));
    let car = maker.export(&other);
    // Truncated in the middle of a block.
    let truncated = car[..car.len() / 2].to_vec();
    // No root, and two roots.
    let rootless = with_roots(&car, &[]);
    let second = String::from_utf8(maker.run(&["refs", "--offline", &other]).stdout).unwrap();
    let two_roots = with_roots(&car, &[&other, second.lines().next().unwrap()]);

    // Every block but one: Kubo's export on a node that lacks it. (Its
    // content is of its own: the other cases bring their blocks into Kubo,
    // and a DAG whose blocks the store holds is complete.)
    let root = maker.add(&random_bytes(800_000));
    let leaves: Vec<String> = String::from_utf8(maker.run(&["refs", "--offline", &root]).stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    maker.run(&["pin", "rm", "--offline", &root]);
    maker.run(&["block", "rm", "--offline", &leaves[1]]);
    let partial = Command::new("ipfs")
        .args(["dag", "export", "--offline", &root])
        .env("IPFS_PATH", &maker.repo)
        .output()
        .unwrap()
        .stdout;
    assert!(partial.len() > 100, "the export wrote what it had");

    for (car, code, names) in [
        (truncated, "invalid_car", "unexpected EOF".to_owned()),
        (rootless, "invalid_car", "no root".to_owned()),
        (two_roots, "invalid_car", "2 roots".to_owned()),
        (partial, "incomplete_car", leaves[1].clone()),
        (
            b"not a car at all".to_vec(),
            "invalid_car",
            "not a CAR".to_owned(),
        ),
    ] {
        let response = upload_car(&app, "broken.car", car).await;
        assert_eq!(response.status(), 422, "{code} {names}");
        let body = json(response).await;
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&names), "{message} names {names}");
        // No row, pending or committed: nothing reserved or charged.
        assert_eq!(app.file_rows().await, 0, "nothing left behind: {body}");
    }
    for cid in [&root, &other] {
        let statuses = cluster_statuses(cid).await;
        assert!(
            statuses.iter().all(|s| s == "unpinned"),
            "nothing pinned: {statuses:?}"
        );
    }
}

/// `path` under `/ipfs/{root}`, each segment percent-encoded.
fn ipfs_url(app: &TestApp, root: &str, path: &str) -> reqwest::Url {
    let mut url = reqwest::Url::parse(&app.url(&format!("/ipfs/{root}"))).unwrap();
    url.path_segments_mut().unwrap().extend(path.split('/'));
    url
}

async fn upload_tree(app: &TestApp, files: &[(String, Vec<u8>)]) -> reqwest::Response {
    // Paths go as they are, as browsers send a folder's relative paths.
    let mut form = reqwest::multipart::Form::new().percent_encode_noop();
    for (path, bytes) in files {
        let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(path.clone());
        form = form.part("file", part);
    }
    app.upload_form(form).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_of_fifty_files_is_one_directory_that_round_trips() {
    let app = spawn_app().await;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..50 {
        let folder = match i % 5 {
            0 => "site",
            1 => "site/docs",
            2 => "site/docs/deep er",
            3 => "site/img",
            _ => "site/ünïcode",
        };
        let size = match i {
            0 => 0,
            1 => 700_000,
            _ => 100 + i * 37,
        };
        files.push((format!("{folder}/file {i}.bin"), random_bytes(size)));
    }
    let response = upload_tree(&app, &files).await;
    assert_eq!(response.status(), 201);
    let dir = json(response).await;
    let root = dir["cid"].as_str().unwrap().to_owned();
    assert_eq!(dir["kind"], "directory");
    assert_eq!(dir["name"], "site", "named after the folder holding it all");
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(dir["size"], total, "every file counted");

    // Every file by its path.
    for (path, bytes) in &files {
        let response = app
            .http
            .get(ipfs_url(&app, &root, path))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.bytes().await.unwrap() == *bytes, "{path}");
    }
    // Folders list their entries.
    let listing = app
        .http
        .get(ipfs_url(&app, &root, "site"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 200);
    let listing = json(listing).await;
    let names: Vec<(&str, bool)> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["folder"].as_bool().unwrap()))
        .collect();
    let mut expected: Vec<(String, bool)> = (0..50)
        .step_by(5)
        .map(|i| (format!("file {i}.bin"), false))
        .chain(["docs", "img", "ünïcode"].map(|f| (f.to_owned(), true)))
        .collect();
    expected.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let expected: Vec<(&str, bool)> = expected.iter().map(|(n, f)| (n.as_str(), *f)).collect();
    assert_eq!(names, expected, "sorted by name");

    // A CAR of the root unpacks, without a network, to the same tree.
    let car = app.get(&format!("/ipfs/{root}?format=car")).await;
    assert_eq!(car.status(), 200);
    let scratch = crate::common::temp_dir("tree-out");
    let car_file = scratch.join("tree.car");
    std::fs::write(&car_file, car.bytes().await.unwrap()).unwrap();
    let reader = OfflineRepo::new();
    reader.run(&[
        "dag",
        "import",
        "--pin-roots=false",
        car_file.to_str().unwrap(),
    ]);
    let out = scratch.join("tree");
    reader.run(&["get", "--offline", "-o", out.to_str().unwrap(), &root]);
    let mut found = Vec::new();
    let mut stack = vec![out.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap().path();
            if entry.is_dir() {
                stack.push(entry);
            } else {
                let relative = entry
                    .strip_prefix(&out)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                found.push((relative, std::fs::read(&entry).unwrap()));
            }
        }
    }
    found.sort();
    let mut expected = files.clone();
    expected.sort();
    assert_eq!(found.len(), expected.len());
    for ((got_path, got), (path, bytes)) in found.iter().zip(&expected) {
        assert_eq!(got_path, path);
        assert!(got == bytes, "{path}");
    }

    assert_eq!(app.delete(&format!("/files/{root}")).await.status(), 204);
}

#[tokio::test]
async fn a_tree_with_a_bad_path_is_refused_whole() {
    let app = spawn_app().await;
    for (paths, why) in [
        (vec!["a/ok.txt", "a/../escape.txt"], ".."),
        (vec!["a/ok.txt", "/abs.txt"], "not relative"),
        (vec!["a/x.txt", "a/x.txt"], "twice"),
        (vec!["a/x", "a/x/y.txt"], "both a file and a folder"),
    ] {
        let files: Vec<(String, Vec<u8>)> = paths
            .iter()
            .map(|p| (p.to_string(), random_bytes(100)))
            .collect();
        let response = upload_tree(&app, &files).await;
        assert_eq!(response.status(), 400, "{paths:?}");
        let body = json(response).await;
        assert_eq!(body["error"]["code"], "invalid_path");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{body}"
        );
        assert_eq!(app.file_rows().await, 0, "nothing left behind");
    }
}
