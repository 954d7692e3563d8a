//! Settings: built-in defaults, then an optional file, then the environment.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The defaults ship inside the binary so it starts from any working directory.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// Conventional environment names accepted as they are, and the key each sets.
const CONVENTIONAL_ENV: &[(&str, &str)] = &[
    ("PORT", "server.port"),
    ("DATABASE_URL", "postgres.url"),
    ("REDIS_URL", "redis.url"),
    ("REDIS_CLUSTER_NODES", "redis.cluster_nodes"),
    ("CLICKHOUSE_HOST", "clickhouse.url"),
    ("CLICKHOUSE_USER", "clickhouse.user"),
    ("CLICKHOUSE_PASSWORD", "clickhouse.password"),
    ("CLICKHOUSE_DB", "clickhouse.database"),
    ("IPFS_HOST", "kubo.host"),
    ("IPFS_PORT", "kubo.port"),
    ("IPFS_GATEWAY_URL", "kubo.gateway_url"),
    ("IPFS_CLUSTER_URL", "cluster.url"),
];

/// Keys whose values are text even when they look like numbers.
const TEXT_KEYS: &[&str] = &[
    "postgres.url",
    "redis.url",
    "redis.cluster_nodes",
    "redis.cluster_nodes",
    "clickhouse.url",
    "clickhouse.user",
    "clickhouse.password",
    "clickhouse.database",
    "kubo.host",
    "kubo.gateway_url",
    "kubo.content_url",
    "cluster.url",
    "analytics.spool_dir",
];

/// A configuration problem, reported as one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(key: &str, problem: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub postgres: PostgresSettings,
    pub redis: RedisSettings,
    pub clickhouse: ClickHouseSettings,
    pub kubo: KuboSettings,
    pub cluster: ClusterSettings,
    pub files: FilesSettings,
    pub auth: AuthSettings,
    pub analytics: AnalyticsSettings,
    pub sessions: SessionSettings,
    pub rate_limit: RateLimitSettings,
    pub cache: CacheSettings,
    pub dashboards: DashboardSettings,
    pub challenges: ChallengeSettings,
    pub links: LinkSettings,
    pub browser: BrowserSettings,
    pub pinning: PinningSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinningSettings {
    /// A pin request not pinned this long after it was made has failed.
    pub fail_after_secs: u64,
    /// Most origins one pin request may name.
    pub max_origins: usize,
    /// Longest origin multiaddr, in bytes.
    pub max_origin_bytes: usize,
    /// How often status reads of one pin on its way ask the Cluster, at
    /// most, in milliseconds.
    pub status_check_interval_ms: u64,
    /// How long a new pin request waits to answer `pinned`, in milliseconds.
    pub settle_wait_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSettings {
    /// Signing keys by id; links carry the id of the key that signed them.
    pub keys: BTreeMap<String, SecretString>,
    /// The key new links are signed with; "" turns links off.
    pub signing_key: String,
    /// Lifetime of a link when none is asked, and the longest allowed, in seconds.
    pub default_ttl_secs: u64,
    pub max_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserSettings {
    /// Origins each tenant's pages may call from.
    pub cors_origins: BTreeMap<String, Vec<String>>,
    /// How long a browser may remember a preflight's answer, in seconds.
    pub cors_max_age_secs: u64,
    /// Serve the upload/download page at /console.
    pub console: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsSettings {
    /// Where accepted events wait for ClickHouse; one gateway per folder.
    pub spool_dir: std::path::PathBuf,
    /// Bytes of events not yet in ClickHouse past which ingestion answers 503.
    pub spool_max_bytes: u64,
    /// Size at which the spool starts a new segment file.
    pub spool_segment_bytes: u64,
    /// Events per insert into ClickHouse, at most.
    pub batch_rows: u64,
    /// Bytes of events per insert into ClickHouse, at most (one event
    /// always goes): what shipping holds in memory at once.
    pub batch_max_bytes: u64,
    /// Longest an accepted event waits for a fuller batch, in milliseconds.
    pub batch_max_delay_ms: u64,
    /// Largest ingestion request body, and most events in one.
    pub max_body_bytes: usize,
    pub max_events_per_request: usize,
    /// Largest `properties` of one event, in bytes of JSON.
    pub max_properties_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// How long a verified key is trusted without asking Postgres again, in
    /// milliseconds; revoking through another gateway takes up to this long
    /// to reach this one. 0 asks Postgres on every request.
    pub key_cache_ttl_ms: u64,
    /// Most keys remembered at once.
    pub key_cache_capacity: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    /// Idle expiry when a create names none, and the longest allowed, in seconds.
    pub default_idle_ttl_secs: u64,
    pub max_idle_ttl_secs: u64,
    /// Absolute lifetime: no session outlives it, however often it is read.
    pub absolute_ttl_secs: u64,
    /// Whether reading a session extends its idle expiry when the request
    /// does not say (`slide=true|false`).
    pub sliding: bool,
    /// Largest `data` object, in bytes of JSON.
    pub max_data_bytes: usize,
    /// Longest user id, in bytes.
    pub max_user_id_bytes: usize,
    /// Live sessions a user may hold; creating one more ends the one
    /// closest to expiry.
    pub max_sessions_per_user: u32,
    /// Live sessions one tenant may hold at once.
    pub max_sessions_per_tenant: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Expiry when a set names none, and the longest allowed, in seconds.
    pub default_ttl_secs: u64,
    pub max_ttl_secs: u64,
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes of JSON.
    pub max_value_bytes: usize,
    /// Keys one tenant may hold at once.
    pub max_keys_per_tenant: u64,
    /// Bytes one tenant's values (and their keys) may take at once.
    pub max_bytes_per_tenant: u64,
}

/// The dashboard queries and their read-through cache in Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSettings {
    /// How long an answer is fresh, per endpoint, in seconds.
    pub user_activity_ttl_secs: u64,
    pub challenge_stats_ttl_secs: u64,
    pub file_stats_ttl_secs: u64,
    pub api_usage_ttl_secs: u64,
    /// After it turns stale, an answer is still served for this long while
    /// one refresh runs (0: stale answers wait for the refresh).
    pub stale_while_revalidate_secs: u64,
    /// How long an answer is kept to be served when ClickHouse is down.
    pub stale_if_error_secs: u64,
    /// Longest a gateway holds the Redis lock that lets only one gateway
    /// run a query for a cold key; the others wait up to this long.
    pub lock_ms: u64,
    /// Longest range a query may cover, in days.
    pub max_range_days: u64,
    /// Most buckets (range divided by interval) in one answer.
    pub max_buckets: u64,
    /// Most rows of one answer; an answer cut there says `truncated`.
    pub max_rows: u64,
}

/// Challenges, submissions and leaderboards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeSettings {
    /// Outputs larger than this go to IPFS as a file; smaller ones stay in
    /// Postgres, inline.
    pub inline_output_max_bytes: usize,
    /// Largest submission request (code, output and the rest), in bytes.
    pub max_submission_bytes: usize,
    /// Largest `code` of a submission, in bytes.
    pub max_code_bytes: usize,
    /// Entries a leaderboard answer holds when `limit` is absent, and at most.
    pub leaderboard_default_limit: u32,
    pub leaderboard_max_limit: u32,
    /// A leaderboard in Redis is rebuilt from Postgres at least this often,
    /// so an update Redis missed while it was down is repaired.
    pub leaderboard_rebuild_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Bound on each check, in milliseconds: past it the policy's
    /// `on_redis_down` decides.
    pub timeout_ms: u64,
    /// Policy of `POST /rate-limit/check` and the status endpoint when the
    /// request names none.
    pub default_policy: String,
    /// Policy applied to every authenticated request, per API key; empty
    /// turns that off.
    pub gateway_policy: String,
    /// Longest key a caller may rate limit on, in bytes.
    pub max_key_bytes: usize,
    /// Largest cost of one check.
    pub max_cost: u64,
    pub policies: BTreeMap<String, PolicySettings>,
    /// Per tenant, policies that replace the ones of the same name.
    #[serde(default)]
    pub tenants: BTreeMap<String, BTreeMap<String, PolicySettings>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Checked and consumed together: a request passes only if every limit
    /// allows it.
    pub limits: Vec<LimitSettings>,
    /// Evaluated and counted, never denies.
    #[serde(default)]
    pub shadow: bool,
    /// What a check answers when Redis is down or slow.
    #[serde(default)]
    pub on_redis_down: RedisDownMode,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Shown in headers and in the body of a denial.
    pub name: String,
    /// Requests (units of cost) per window.
    pub limit: u64,
    /// Window length, such as "30s", "5m", "1day".
    pub window: String,
    /// Most requests allowed at once; the limit when absent.
    pub burst: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisDownMode {
    /// Allow, and count it.
    #[default]
    Open,
    /// Answer 503.
    Closed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSettings {
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Longest a CAR upload's completeness check may take, in seconds.
    pub car_check_timeout_secs: u64,
    /// Most files one directory upload may hold.
    pub max_directory_files: usize,
    /// Kubo chunker for every add, so equal bytes always get equal CIDs.
    pub chunker: String,
    /// Replication factors used when an upload names none.
    pub replication_min: i32,
    pub replication_max: i32,
    /// Largest replication factor a caller may ask for.
    pub replication_max_allowed: i32,
    /// Longest file name, in characters.
    pub max_name_chars: usize,
    /// Largest `metadata` object, in bytes of JSON.
    pub max_metadata_bytes: usize,
    /// Page size of `GET /files` when none is asked, and the largest allowed.
    pub list_default_limit: i64,
    pub list_max_limit: i64,
    /// Longest an upload may wait for its pin with `wait=pinned`, in seconds.
    pub pin_wait_max_secs: u64,
    /// Bytes of committed files a tenant may hold; 0 means no quota.
    pub tenant_quota_bytes: u64,
    /// Content types accepted (as recognised from the bytes, else declared);
    /// empty accepts any.
    pub allowed_content_types: Vec<String>,
    /// How often the reconciler runs, in seconds.
    pub reconcile_interval_secs: u64,
    /// A pending upload older than this is abandoned by the reconciler, in seconds.
    pub pending_expiry_secs: u64,
    /// A gateway pin (named `storage-gateway:...`) no stored file owns is
    /// removed once it is this old, in seconds.
    pub orphan_pin_grace_secs: u64,
    /// A resumable upload not finished this long after its creation expires, in seconds.
    pub tus_expiry_secs: u64,
    /// Resumable uploads one tenant may have open at once.
    pub max_open_uploads_per_tenant: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the HTTP server binds to.
    pub host: String,
    /// TCP port; 0 picks a free one.
    pub port: u16,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Grace period for in-flight requests on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Upper bound on any JSON request body.
    pub json_body_limit_bytes: usize,
    /// How often every backend is health-checked for `gateway_backend_up`.
    pub backend_probe_interval_secs: u64,
    /// Bytes of request bodies all requests together may hold in memory
    /// (event batches, JSON bodies read whole); past it, 503.
    pub max_body_bytes_in_flight: usize,
    /// Uploads streaming at once, gateway-wide; past it, 503.
    pub max_concurrent_uploads: usize,
    /// Longest a client may take to send a request's headers, in milliseconds.
    pub request_header_timeout_ms: u64,
    /// Longest a request body or a download may stall (no byte moving), in
    /// seconds, before the request is dropped.
    pub idle_timeout_secs: u64,
    /// The gateway's address as browsers reach it, for the links it hands
    /// out; "" takes it from each request's Host.
    pub public_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// EnvFilter directives.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// Connection URL, secret because it may carry a password.
    pub url: SecretString,
    /// Most pooled connections.
    pub pool_size: usize,
    /// Bound on connect, pool wait and each query, in milliseconds.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Connection URL, secret because it may carry a password.
    pub url: SecretString,
    /// Comma-separated node URLs of a Redis Cluster; when set, `url` is not
    /// used.
    pub cluster_nodes: SecretString,
    /// Bound on connect and each command, in milliseconds.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseSettings {
    /// HTTP interface URL.
    pub url: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: SecretString,
    /// Database of the analytics tables.
    pub database: String,
    /// Bound on each query, in milliseconds.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KuboSettings {
    /// Host of the RPC API.
    pub host: String,
    /// Port of the RPC API.
    pub port: u16,
    /// Public gateway base URL for links handed to clients.
    pub gateway_url: String,
    /// The node's own HTTP gateway, read for downloads.
    pub content_url: String,
    /// Bound on each non-streaming RPC call, in milliseconds.
    pub timeout_ms: u64,
    /// Bound on one whole content transfer (an add), in seconds.
    pub transfer_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// REST API base URL.
    pub url: String,
    /// Bound on each REST call, in milliseconds.
    pub timeout_ms: u64,
}

impl Settings {
    /// Loads defaults, then `file` when given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Settings::load`] with an explicit environment, so tests never
    /// touch the process's own.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::new(
                    "--config",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        let prefixed: Vec<(String, String)> = env
            .iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix("GATEWAY__")?;
                Some((rest.replace("__", ".").to_lowercase(), value.clone()))
            })
            .collect();
        let conventional = env.iter().filter_map(|(name, value)| {
            CONVENTIONAL_ENV
                .iter()
                .find(|(env_name, _)| env_name == name)
                .map(|(_, key)| (key.to_string(), value.clone()))
        });
        for (key, value) in conventional.chain(prefixed) {
            figment = figment.merge((key.as_str(), env_value(&key, &value)));
        }
        let settings: Settings = figment.extract().map_err(first_error)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.postgres
            .url
            .expose_secret()
            .parse::<tokio_postgres::Config>()
            .map_err(|e| ConfigError::new("postgres.url", e.to_string()))?;
        let redis_url = self.redis.url.expose_secret().to_owned();
        for (key, url) in std::iter::once(("redis.url", redis_url)).chain(
            self.redis
                .cluster_node_urls()
                .into_iter()
                .map(|url| ("redis.cluster_nodes", url)),
        ) {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError::new(
                    key,
                    "must start with redis:// or rediss://",
                ));
            }
        }
        for (key, value) in [
            ("clickhouse.url", &self.clickhouse.url),
            ("kubo.gateway_url", &self.kubo.gateway_url),
            ("kubo.content_url", &self.kubo.content_url),
            ("cluster.url", &self.cluster.url),
        ] {
            check_http_url(key, value)?;
        }
        if !self.server.public_url.is_empty() {
            check_http_url("server.public_url", &self.server.public_url)?;
        }
        if self.clickhouse.database.is_empty()
            || !self
                .clickhouse
                .database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ConfigError::new(
                "clickhouse.database",
                "must be a non-empty name of letters, digits and underscores",
            ));
        }
        if self.kubo.host.is_empty() {
            return Err(ConfigError::new("kubo.host", "must not be empty"));
        }
        let files = &self.files;
        if !(files.chunker.starts_with("size-") || files.chunker.starts_with("rabin")) {
            return Err(ConfigError::new(
                "files.chunker",
                "must be a Kubo chunker such as size-262144",
            ));
        }
        if files.replication_min < 1 || files.replication_max < files.replication_min {
            return Err(ConfigError::new(
                "files.replication_min",
                "needs 1 <= replication_min <= replication_max",
            ));
        }
        if files.replication_max_allowed < files.replication_max {
            return Err(ConfigError::new(
                "files.replication_max_allowed",
                "must be at least files.replication_max",
            ));
        }
        if files.list_default_limit < 1 || files.list_max_limit < files.list_default_limit {
            return Err(ConfigError::new(
                "files.list_default_limit",
                "needs 1 <= list_default_limit <= list_max_limit",
            ));
        }
        self.validate_sessions_and_cache()?;
        self.validate_dashboards_and_challenges()?;
        if self.postgres.pool_size == 0 {
            return Err(ConfigError::new("postgres.pool_size", "must be at least 1"));
        }
        for (key, value) in [
            ("postgres.timeout_ms", self.postgres.timeout_ms),
            ("redis.timeout_ms", self.redis.timeout_ms),
            ("clickhouse.timeout_ms", self.clickhouse.timeout_ms),
            ("kubo.timeout_ms", self.kubo.timeout_ms),
            ("cluster.timeout_ms", self.cluster.timeout_ms),
            ("rate_limit.timeout_ms", self.rate_limit.timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be greater than 0"));
            }
        }
        Ok(())
    }
}

impl Settings {
    fn validate_dashboards_and_challenges(&self) -> Result<(), ConfigError> {
        let dashboards = &self.dashboards;
        let challenges = &self.challenges;
        for (key, value) in [
            (
                "dashboards.user_activity_ttl_secs",
                dashboards.user_activity_ttl_secs,
            ),
            (
                "dashboards.challenge_stats_ttl_secs",
                dashboards.challenge_stats_ttl_secs,
            ),
            (
                "dashboards.file_stats_ttl_secs",
                dashboards.file_stats_ttl_secs,
            ),
            (
                "dashboards.api_usage_ttl_secs",
                dashboards.api_usage_ttl_secs,
            ),
            ("dashboards.lock_ms", dashboards.lock_ms),
            ("dashboards.max_range_days", dashboards.max_range_days),
            ("dashboards.max_buckets", dashboards.max_buckets),
            ("dashboards.max_rows", dashboards.max_rows),
            (
                "server.backend_probe_interval_secs",
                self.server.backend_probe_interval_secs,
            ),
            (
                "challenges.max_submission_bytes",
                challenges.max_submission_bytes as u64,
            ),
            (
                "challenges.max_code_bytes",
                challenges.max_code_bytes as u64,
            ),
            (
                "challenges.leaderboard_rebuild_secs",
                challenges.leaderboard_rebuild_secs,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be greater than 0"));
            }
        }
        if challenges.leaderboard_default_limit < 1
            || challenges.leaderboard_max_limit < challenges.leaderboard_default_limit
        {
            return Err(ConfigError::new(
                "challenges.leaderboard_default_limit",
                "needs 1 <= leaderboard_default_limit <= leaderboard_max_limit",
            ));
        }
        Ok(())
    }

    fn validate_sessions_and_cache(&self) -> Result<(), ConfigError> {
        let analytics = &self.analytics;
        for (key, value) in [
            ("analytics.spool_max_bytes", analytics.spool_max_bytes),
            (
                "analytics.spool_segment_bytes",
                analytics.spool_segment_bytes,
            ),
            ("analytics.batch_rows", analytics.batch_rows),
            ("analytics.max_body_bytes", analytics.max_body_bytes as u64),
            (
                "analytics.max_events_per_request",
                analytics.max_events_per_request as u64,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be greater than 0"));
            }
        }
        let sessions = &self.sessions;
        if sessions.default_idle_ttl_secs == 0
            || sessions.max_idle_ttl_secs < sessions.default_idle_ttl_secs
        {
            return Err(ConfigError::new(
                "sessions.default_idle_ttl_secs",
                "needs 1 <= default_idle_ttl_secs <= max_idle_ttl_secs",
            ));
        }
        if sessions.absolute_ttl_secs < sessions.max_idle_ttl_secs {
            return Err(ConfigError::new(
                "sessions.absolute_ttl_secs",
                "must be at least sessions.max_idle_ttl_secs",
            ));
        }
        if sessions.max_sessions_per_user == 0 {
            return Err(ConfigError::new(
                "sessions.max_sessions_per_user",
                "must be at least 1",
            ));
        }
        let cache = &self.cache;
        if cache.default_ttl_secs == 0 || cache.max_ttl_secs < cache.default_ttl_secs {
            return Err(ConfigError::new(
                "cache.default_ttl_secs",
                "needs 1 <= default_ttl_secs <= max_ttl_secs",
            ));
        }
        for (key, value) in [
            ("sessions.max_data_bytes", sessions.max_data_bytes),
            ("sessions.max_user_id_bytes", sessions.max_user_id_bytes),
            ("cache.max_key_bytes", cache.max_key_bytes),
            ("cache.max_value_bytes", cache.max_value_bytes),
            ("rate_limit.max_key_bytes", self.rate_limit.max_key_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be greater than 0"));
            }
        }
        Ok(())
    }
}

impl RateLimitSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Environment values are text; numbers and booleans are recognised for the
/// keys that are not text by nature, so `PORT=8080` fills a `u16`.
fn env_value(key: &str, raw: &str) -> figment::value::Value {
    use figment::value::Value;
    if TEXT_KEYS.contains(&key) {
        return Value::from(raw.to_owned());
    }
    raw.parse::<Value>()
        .unwrap_or_else(|_| Value::from(raw.to_owned()))
}

fn check_http_url(key: &str, value: &str) -> Result<(), ConfigError> {
    let parsed = url::Url::parse(value).map_err(|e| ConfigError::new(key, e.to_string()))?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        other => Err(ConfigError::new(
            key,
            format!("scheme {other:?} is not http or https"),
        )),
    }
}

fn first_error(error: figment::Error) -> ConfigError {
    let error = error
        .into_iter()
        .next()
        .expect("figment reports at least one error");
    let key = if error.path.is_empty() {
        "(root)".to_owned()
    } else {
        error.path.join(".")
    };
    let source = error
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    ConfigError::new(&key, format!("{}{source}", error.kind))
}

impl PostgresSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl RedisSettings {
    pub fn cluster_node_urls(&self) -> Vec<String> {
        self.cluster_nodes
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl ClickHouseSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl KuboSettings {
    pub fn transfer_timeout(&self) -> Duration {
        Duration::from_secs(self.transfer_timeout_secs)
    }

    /// Base URL of the RPC API.
    pub fn rpc_url(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl ClusterSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration reference in README.md, rendered from the defaults
    /// file: every key, its environment names, its default and the comment
    /// above it.
    fn reference_table() -> String {
        let mut table = String::from("| key | environment | default | |\n|---|---|---|---|\n");
        let mut section = String::new();
        let mut comment: Vec<String> = Vec::new();
        for line in DEFAULTS.lines().map(str::trim) {
            if line.is_empty() {
                comment.clear();
            } else if let Some(text) = line.strip_prefix('#') {
                comment.push(text.trim().to_owned());
            } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
                comment.clear();
            } else if let Some((name, value)) = line.split_once(" = ") {
                let key = format!("{section}.{}", name.trim());
                let mut environment = vec![format!(
                    "`GATEWAY__{}`",
                    key.to_uppercase().replace('.', "__")
                )];
                environment.extend(
                    CONVENTIONAL_ENV
                        .iter()
                        .filter(|(_, target)| *target == key)
                        .map(|(name, _)| format!("`{name}`")),
                );
                let described = comment
                    .join(" ")
                    .split(" (env: ")
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches(['.', ' '])
                    .replace('|', "\\|");
                table.push_str(&format!(
                    "| `{key}` | {} | `{}` | {described} |\n",
                    environment.join(" "),
                    value.trim().replace('|', "\\|")
                ));
                comment.clear();
            }
        }
        table
    }

    /// README's reference is the defaults file's: `UPDATE_README=1 cargo
    /// test --lib config` rewrites it after a change of keys.
    #[test]
    fn readme_lists_every_key_with_its_default() {
        let readme_path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(readme_path).unwrap();
        let (begin, end) = (
            "<!-- configuration:begin -->\n",
            "<!-- configuration:end -->",
        );
        let start = readme
            .find(begin)
            .expect("README has the reference markers")
            + begin.len();
        let stop = readme.find(end).expect("README has the reference markers");
        let expected = reference_table();
        if readme[start..stop] != expected {
            if std::env::var("UPDATE_README").is_ok() {
                let updated = format!("{}{expected}{}", &readme[..start], &readme[stop..]);
                std::fs::write(readme_path, updated).unwrap();
            } else {
                panic!("README's configuration reference is out of date; run UPDATE_README=1 cargo test --lib config, or paste:\n{expected}");
            }
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load() {
        let settings = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(settings.server.port, 4007);
        assert_eq!(settings.clickhouse.database, "fathuss_analytics");
    }

    #[test]
    fn conventional_names_override_defaults() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("PORT", "9999"),
                ("CLICKHOUSE_PASSWORD", "12345"),
                ("IPFS_PORT", "15001"),
                ("GATEWAY__POSTGRES__POOL_SIZE", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.server.port, 9999);
        assert_eq!(settings.clickhouse.password.expose_secret(), "12345");
        assert_eq!(settings.kubo.port, 15001);
        assert_eq!(settings.postgres.pool_size, 3);
    }

    #[test]
    fn bad_port_names_the_key() {
        let error = Settings::load_from(None, env(&[("PORT", "not-a-port")])).unwrap_err();
        assert_eq!(error.key, "server.port");
        assert!(error
            .to_string()
            .starts_with("invalid configuration: server.port:"));
    }

    #[test]
    fn bad_url_names_the_key() {
        let error = Settings::load_from(None, env(&[("IPFS_CLUSTER_URL", "ftp://x")])).unwrap_err();
        assert_eq!(error.key, "cluster.url");
    }

    #[test]
    fn unknown_key_is_refused() {
        let error = Settings::load_from(None, env(&[("GATEWAY__SERVER__PROT", "1")])).unwrap_err();
        assert!(error.to_string().contains("prot"), "{error}");
    }
}
