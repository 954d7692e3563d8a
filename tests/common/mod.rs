//! Test helpers: a gateway on a random port against the real local stack,
//! with a tenant and API key of its own.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use storage_gateway::auth::{Scope, TenantId};
use storage_gateway::config::Settings;
use storage_gateway::http::AppState;
use storage_gateway::startup::Application;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub tenant: TenantId,
    /// A key with every scope.
    pub key: String,
    pub state: AppState,
}

/// Settings of the running stack, from the environment `scripts/stack env` sets.
pub fn stack_settings() -> Settings {
    assert!(
        std::env::var("DATABASE_URL").is_ok(),
        "run the tests through scripts/test, or eval \"$(scripts/stack env)\" first"
    );
    let mut settings = Settings::load(None).expect("the stack's settings load");
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.analytics.spool_dir = temp_dir("spool");
    settings
}

/// Which Redis the gateway under test talks to: the stack runs both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    Single,
    Cluster,
}

/// The stack's settings, with the Redis of `mode`.
pub fn settings_for(mode: RedisMode) -> Settings {
    let mut settings = stack_settings();
    if mode == RedisMode::Cluster {
        let nodes = std::env::var("STACK_REDIS_CLUSTER_NODES")
            .expect("scripts/stack env names the Redis Cluster's nodes");
        settings.redis.cluster_nodes = nodes.into();
    }
    settings
}

/// Runs each named `async fn(RedisMode)` as two tests: against the single
/// Redis (`single::NAME`) and against the Redis Cluster (`cluster::NAME`).
#[macro_export]
macro_rules! in_both_redis_modes {
    ($($name:ident),* $(,)?) => {
        mod single {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::common::RedisMode::Single).await
            })*
        }
        mod cluster {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::common::RedisMode::Cluster).await
            })*
        }
    };
}

/// A fresh folder under the system's temporary one.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("sgw-{prefix}")));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(stack_settings()).await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let tenant = TenantId::parse(&unique("t")).expect("valid tenant");
    spawn_app_for(settings, tenant).await
}

/// A gateway whose test key belongs to `tenant`, for settings that name it.
pub async fn spawn_app_for(settings: Settings, tenant: TenantId) -> TestApp {
    // The gateway's warnings and errors go to the test's captured output,
    // shown when the test fails: an internal error names its cause there.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    let app = Application::build(settings)
        .await
        .expect("the gateway starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());
    let key = state
        .api_keys
        .create(&tenant, &Scope::ALL, "test")
        .await
        .expect("key created")
        .key;
    TestApp {
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            // Well inside the server's 5 s keep-alive, so a pooled
            // connection is never reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .expect("client builds"),
        tenant,
        key,
        state,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A GET with the test's key.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(path, &self.key).await
    }

    /// A GET with `key`.
    pub async fn get_as(&self, path: &str, key: &str) -> reqwest::Response {
        let request = self.http.get(self.url(path)).bearer_auth(key);
        request.send().await.expect("request sent")
    }

    /// A request of any kind with the test's key, to add headers or a body to.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.key)
    }

    /// A key with every scope in another tenant, made by this gateway.
    pub async fn other_tenant_key(&self) -> String {
        let tenant = TenantId::parse(&unique("other")).expect("valid tenant");
        self.state
            .api_keys
            .create(&tenant, &Scope::ALL, "other tenant")
            .await
            .expect("key created")
            .key
    }

    /// A DELETE with the test's key.
    pub async fn delete(&self, path: &str) -> reqwest::Response {
        let request = self.http.delete(self.url(path)).bearer_auth(&self.key);
        request.send().await.expect("request sent")
    }

    /// A POST of `body` as JSON with the test's key.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        let request = self.http.post(self.url(path)).bearer_auth(&self.key);
        request.json(body).send().await.expect("request sent")
    }

    /// A POST of `body` as JSON with `key`.
    pub async fn post_json_as(
        &self,
        path: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        let request = self.http.post(self.url(path)).bearer_auth(key);
        request.json(body).send().await.expect("request sent")
    }

    /// A raw-body upload with the test's key and the given query.
    pub async fn upload<B: Into<reqwest::Body>>(
        &self,
        query: &[(&str, &str)],
        body: B,
    ) -> reqwest::Response {
        let request = self
            .http
            .post(self.url("/files/upload"))
            .bearer_auth(&self.key);
        request
            .query(query)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// A multipart upload with the test's key.
    pub async fn upload_form(&self, form: reqwest::multipart::Form) -> reqwest::Response {
        self.http
            .post(self.url("/files/upload"))
            .bearer_auth(&self.key)
            .multipart(form)
            .send()
            .await
            .expect("request sent")
    }

    /// How many file rows the tenant has, pending ones included.
    pub async fn file_rows(&self) -> i64 {
        let client = postgres(&std::env::var("DATABASE_URL").expect("stack env")).await;
        let row = client
            .query_one(
                "SELECT count(*) FROM file_metadata WHERE tenant_id = $1",
                &[&self.tenant.as_str()],
            )
            .await
            .expect("count query");
        row.get(0)
    }

    /// The gateway's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        let response = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request sent");
        response.text().await.expect("a text body")
    }

    /// A key of this tenant with only `scopes`.
    pub async fn key_with(&self, scopes: &[Scope]) -> String {
        self.state
            .api_keys
            .create(&self.tenant, scopes, "narrow")
            .await
            .expect("key created")
            .key
    }
}

/// A user and a challenge in `app`'s tenant, to submit with: the user's id
/// and the challenge's submissions path.
pub async fn user_and_challenge(app: &TestApp) -> (String, String) {
    let mut ids = Vec::new();
    for (path, body) in [
        ("/users", serde_json::json!({"external_id": "u"})),
        (
            "/challenges",
            serde_json::json!({"slug": "c", "title": "C"}),
        ),
    ] {
        let response = app.post_json(path, &body).await;
        assert_eq!(response.status(), 201, "{path}");
        ids.push(json(response).await["id"].as_str().unwrap().to_owned());
    }
    let submit = format!("/challenges/{}/submissions", ids[1]);
    (ids.swap_remove(0), submit)
}

pub async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.expect("a JSON body")
}

/// A plain connection to the stack's database, for looking behind the API.
pub async fn postgres(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the stack's Postgres answers");
    tokio::spawn(connection);
    client
}

/// References the gateway holds on a CID's content.
pub async fn ref_count(cid: &str) -> i64 {
    let client = postgres(&std::env::var("DATABASE_URL").expect("stack env")).await;
    let row = client
        .query_one("SELECT ref_count FROM ipfs_blobs WHERE cid = $1", &[&cid])
        .await
        .expect("the CID has a blob row");
    row.get(0)
}

/// The pin state of a CID's blob row, or `None` when it has none.
pub async fn blob_state(cid: &str) -> Option<String> {
    let client = postgres(&std::env::var("DATABASE_URL").expect("stack env")).await;
    client
        .query_opt("SELECT pin_state FROM ipfs_blobs WHERE cid = $1", &[&cid])
        .await
        .expect("blob query")
        .map(|row| row.get(0))
}

/// The CID Kubo gives `bytes` with the gateway's add options, without
/// storing anything anywhere.
pub async fn cid_of(bytes: &[u8]) -> String {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("f"),
    );
    let url = format!(
        "http://127.0.0.1:{}/api/v0/add?only-hash=true&cid-version=1&raw-leaves=true\
         &chunker=size-262144&inline=true&inline-limit=32",
        std::env::var("IPFS_PORT").expect("stack env")
    );
    let body: serde_json::Value = reqwest::Client::new()
        .post(url)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["Hash"].as_str().unwrap().to_owned()
}

pub fn cluster_url() -> String {
    std::env::var("IPFS_CLUSTER_URL").expect("stack env")
}

/// The Cluster's view of a CID: whether any peer holds or is getting it.
pub async fn cluster_holds(cid: &str) -> bool {
    let body: serde_json::Value = reqwest::get(format!("{}/pins/{cid}", cluster_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["peer_map"]
        .as_object()
        .into_iter()
        .flat_map(|peers| peers.values())
        .any(|peer| {
            let status = peer["status"].as_str().unwrap_or_default();
            status != "unpinned" && status != "remote"
        })
}

/// Whether the Cluster's pin set (what it keeps pinned, whatever the peers
/// report at the moment) holds the CID.
pub async fn in_cluster_pinset(cid: &str) -> bool {
    let response = reqwest::get(format!("{}/allocations/{cid}", cluster_url()))
        .await
        .unwrap();
    match response.status().as_u16() {
        200 => true,
        404 => false,
        other => panic!("the Cluster answered {other} for the allocation of {cid}"),
    }
}

/// A client of the stack's ClickHouse analytics database, for looking
/// behind the API.
pub fn clickhouse() -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(std::env::var("CLICKHOUSE_HOST").expect("stack env"))
        .with_database(std::env::var("CLICKHOUSE_DB").expect("stack env"))
        .with_validation(false)
}

/// Waits until the tenant has `expected` events in ClickHouse, failing
/// after `within` with what it found.
pub async fn wait_for_user_activity(tenant: &TenantId, expected: u64, within: Duration) {
    wait_for_count(
        "SELECT uniqExact(event_id) FROM user_activity WHERE tenant_id = ?",
        tenant,
        expected,
        within,
    )
    .await
}

/// Waits until `count_sql` (a count with one `?`, bound to the tenant)
/// answers `expected`, failing after `within` or on overshooting it.
pub async fn wait_for_count(count_sql: &str, tenant: &TenantId, expected: u64, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let found = clickhouse()
            .query(count_sql)
            .bind(tenant.as_str())
            .fetch_one::<u64>()
            .await
            .expect("ClickHouse answers");
        if found == expected {
            return;
        }
        assert!(
            found < expected && std::time::Instant::now() < deadline,
            "expected {expected} from {count_sql:?} for {tenant}, found {found}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of one sample in a Prometheus text exposition (0 when absent):
/// `sample` is the metric name with its labels, as the gateway writes them.
pub fn metric_value(metrics: &str, sample: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The right to stop and start the stack's shared services, held until
/// dropped. It is a lock on a file in the stack's folder, so it excludes
/// tests in other processes as well as in this one.
pub struct StackTurn(#[allow(dead_code)] std::fs::File);

/// Waits for the stack's turn lock (`$STACK_DIR/turn.lock`).
pub async fn stack_turn() -> StackTurn {
    let path = PathBuf::from(std::env::var("STACK_DIR").expect("stack env")).join("turn.lock");
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        file.lock()
            .unwrap_or_else(|error| panic!("locking {}: {error}", path.display()));
        StackTurn(file)
    })
    .await
    .expect("the lock task ends")
}

/// Runs `scripts/stack ARGS`, failing the test if it fails.
pub fn stack(args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/stack");
    let status = Command::new(script)
        .args(args)
        .status()
        .expect("scripts/stack runs");
    assert!(status.success(), "scripts/stack {args:?} failed");
}

/// A gateway in a process of its own: its memory can be measured, and it
/// can be killed and started again on the same port.
pub struct GatewayProcess {
    child: std::process::Child,
    pub base: String,
    pub port: u16,
}

impl GatewayProcess {
    pub fn start(env: &[(&str, String)]) -> Self {
        Self::start_on(free_port(), env)
    }

    pub fn start_on(port: u16, env: &[(&str, String)]) -> Self {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_storage-gateway"));
        command
            .arg("serve")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .env("GATEWAY__ANALYTICS__SPOOL_DIR", temp_dir("gateway-spool"))
            .stdout(std::process::Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        Self {
            child: command.spawn().expect("the binary starts"),
            base: format!("http://127.0.0.1:{port}"),
            port,
        }
    }

    pub async fn wait_until_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(format!("{}/health", self.base)).await.is_err() {
            assert!(Instant::now() < deadline, "the gateway did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Peak resident memory so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc");
        kib * 1024
    }
}

impl GatewayProcess {
    /// Ends the process at once, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free now (the OS picks it), for a server started next.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
