//! Builds the application from settings: stores, schema, listener, server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, HttpServer};
use serde::Serialize;

use crate::admission::Admission;
use crate::analytics::{Analytics, SpoolError};
use crate::auth::ApiKeys;
use crate::cache::Cache;
use crate::challenges::leaderboard::Leaderboards;
use crate::challenges::Challenges;
use crate::config::{ConfigError, Settings};
use crate::dashboards::Dashboards;
use crate::files::Files;
use crate::http;
use crate::http::cors::CorsPolicy;
use crate::http::AppState;
use crate::links::LinkSigner;
use crate::metrics::Metrics;
use crate::rate_limit::{Policies, RateLimitError, RateLimiter};
use crate::sessions::Sessions;
use crate::stores::clickhouse::SchemaReport;
use crate::stores::{StoreError, Stores};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot prepare the stores: {0}")]
    Store(#[from] StoreError),
    #[error("invalid browser settings: {0}")]
    Browser(String),
    #[error("invalid rate-limit policies: {0}")]
    RateLimit(#[from] RateLimitError),
    #[error("cannot open the event spool in {dir}: {source}")]
    Spool { dir: String, source: SpoolError },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// What start-up did to the schemas.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaChanges {
    /// Postgres migrations applied by this start, oldest first.
    pub postgres_applied: Vec<String>,
    pub clickhouse: SchemaReport,
}

/// Applies the Postgres migrations and the ClickHouse schema. Both must
/// succeed before the gateway serves, so no request meets a half-made schema.
pub async fn prepare_schemas(stores: &Stores) -> Result<SchemaChanges, StoreError> {
    let postgres_applied = stores.postgres.migrate().await?;
    let clickhouse = stores.clickhouse.apply_schema().await?;
    Ok(SchemaChanges {
        postgres_applied,
        clickhouse,
    })
}

/// The gateway expects Redis to refuse writes when full (`noeviction`), not
/// to evict: eviction would drop rate-limit state (resetting limits) and
/// live sessions, and the per-tenant cache budgets keep it from filling.
/// A Redis set otherwise still works, so this only warns.
async fn warn_if_redis_evicts(redis: crate::stores::redis::Redis) {
    match redis.eviction_policies().await {
        Ok(policies) => {
            for policy in policies.iter().filter(|p| p.as_str() != "noeviction") {
                tracing::warn!(
                    policy,
                    "Redis evicts keys under memory pressure: rate limits and sessions can \
                     vanish; set maxmemory-policy noeviction"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "Redis's maxmemory-policy could not be read"),
    }
}

/// The settings only a capability can judge (config knows none of them),
/// checked as soon as settings load, so a bad one stops every command with
/// the same one-line configuration error as any other setting.
pub fn check_settings(settings: &Settings) -> Result<(), ConfigError> {
    Policies::from_settings(&settings.rate_limit)
        .map_err(|(key, problem)| ConfigError::new(&key, problem))?;
    Ok(())
}

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    schema_changes: SchemaChanges,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let links = LinkSigner::from_settings(&settings.links)
            .map_err(|e| StartupError::Browser(e.to_string()))?;
        let cors = CorsPolicy::from_settings(&settings.browser).map_err(StartupError::Browser)?;
        let metrics = Metrics::new();
        let stores = Stores::new(&settings, metrics.clone())?;
        let schema_changes = prepare_schemas(&stores).await?;
        tracing::info!(
            postgres_applied = schema_changes.postgres_applied.len(),
            clickhouse_version = %schema_changes.clickhouse.server_version,
            clickhouse_skipped = ?schema_changes.clickhouse.skipped,
            "schemas ready"
        );
        let admission = Admission::new(&settings.server, metrics.clone());
        let analytics = Analytics::new(
            stores.clickhouse.clone(),
            &settings.analytics,
            metrics.clone(),
        )
        .map_err(|source| StartupError::Spool {
            dir: settings.analytics.spool_dir.display().to_string(),
            source,
        })?;
        let files = Files::new(
            stores.clone(),
            settings.files.clone(),
            settings.pinning.clone(),
            metrics.clone(),
            admission.clone(),
            analytics.clone(),
        );
        let challenges = Challenges::new(
            stores.postgres.clone(),
            files.clone(),
            analytics.clone(),
            Leaderboards::new(
                stores.redis.clone(),
                std::time::Duration::from_secs(settings.challenges.leaderboard_rebuild_secs),
            ),
            &settings.challenges,
        );
        let state = AppState {
            settings: Arc::new(settings.clone()),
            api_keys: ApiKeys::new(stores.postgres.clone(), &settings.auth),
            files,
            analytics,
            challenges,
            sessions: Sessions::new(stores.redis.clone(), &settings.sessions, metrics.clone()),
            rate_limiter: RateLimiter::new(
                stores.redis.clone(),
                &settings.rate_limit,
                metrics.clone(),
            )?,
            cache: Cache::new(stores.redis.clone(), &settings.cache, metrics.clone()),
            dashboards: Dashboards::new(
                stores.clickhouse.clone(),
                stores.redis.clone(),
                &settings.dashboards,
                metrics.clone(),
            ),
            stores,
            metrics,
            admission,
            links,
            cors,
        };
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                address: address.clone(),
                source,
            })?
            .port();
        tokio::spawn(warn_if_redis_evicts(state.stores.redis.clone()));
        tokio::spawn(state.files.clone().reconcile_forever());
        tokio::spawn(state.analytics.clone().ship_forever());
        tokio::spawn(state.analytics.clone().flush_requests_forever());
        tokio::spawn(state.stores.clone().probe_forever(
            state.metrics.clone(),
            std::time::Duration::from_secs(settings.server.backend_probe_interval_secs),
        ));
        let data = web::Data::new(state.clone());
        let mut server = HttpServer::new(move || http::app(data.clone()))
            .shutdown_timeout(settings.server.shutdown_timeout_secs)
            // A client that trickles its headers (slow loris) is dropped.
            .client_request_timeout(std::time::Duration::from_millis(
                settings.server.request_header_timeout_ms,
            ));
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind { address, source })?
            .run();
        Ok(Self {
            port,
            server,
            state,
            schema_changes,
        })
    }

    /// The port actually bound (differs from the setting when that was 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn schema_changes(&self) -> &SchemaChanges {
        &self.schema_changes
    }

    /// Serves until SIGINT or SIGTERM, then lets in-flight requests finish
    /// within `server.shutdown_timeout_secs`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
