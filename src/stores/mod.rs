//! Clients of the five backends. Nothing outside this folder holds a raw connection.

pub mod clickhouse;
pub mod cluster;
pub mod kubo;
pub mod postgres;
pub mod redis;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Settings;
use crate::metrics::Metrics;

/// The backends, by the names operators see in errors, metrics and `/ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Postgres,
    Redis,
    ClickHouse,
    Kubo,
    Cluster,
}

impl StoreKind {
    pub const ALL: [StoreKind; 5] = [
        StoreKind::Postgres,
        StoreKind::Redis,
        StoreKind::ClickHouse,
        StoreKind::Kubo,
        StoreKind::Cluster,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Postgres => "postgres",
            StoreKind::Redis => "redis",
            StoreKind::ClickHouse => "clickhouse",
            StoreKind::Kubo => "kubo",
            StoreKind::Cluster => "cluster",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed call to a backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time.
    #[error("{store} is unavailable: {reason}")]
    Unavailable { store: StoreKind, reason: String },
    /// The backend answered, with an error.
    #[error("{store} refused the operation: {reason}")]
    Failed { store: StoreKind, reason: String },
    /// The backend did not answer within the call's bound.
    #[error("{store} gave no answer within {after_ms} ms")]
    TimedOut { store: StoreKind, after_ms: u128 },
    /// The backend refused a value the caller sent (a string it cannot
    /// hold, a number or date out of its range): the caller's mistake.
    #[error("{store} cannot store a value of this request: {reason}")]
    InvalidValue { store: StoreKind, reason: String },
}

impl StoreError {
    pub fn unavailable(store: StoreKind, reason: impl fmt::Display) -> Self {
        StoreError::Unavailable {
            store,
            reason: reason.to_string(),
        }
    }

    pub fn failed(store: StoreKind, reason: impl fmt::Display) -> Self {
        StoreError::Failed {
            store,
            reason: reason.to_string(),
        }
    }

    pub fn store(&self) -> StoreKind {
        match self {
            StoreError::Unavailable { store, .. }
            | StoreError::TimedOut { store, .. }
            | StoreError::Failed { store, .. }
            | StoreError::InvalidValue { store, .. } => *store,
        }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::TimedOut { .. }
        )
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, StoreError::TimedOut { .. })
    }
}

/// Applies a store's timeout to each call and records its count, outcome and
/// latency, so no backend call can hang or go unmeasured.
#[derive(Clone)]
pub struct CallGuard {
    store: StoreKind,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl CallGuard {
    pub fn new(store: StoreKind, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            timeout,
            metrics,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn run<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.run_within(operation, self.timeout, call).await
    }

    /// Like [`CallGuard::run`] with a bound of its own, for calls whose
    /// length grows with the data they move.
    pub async fn run_within<T>(
        &self,
        operation: &'static str,
        timeout: Duration,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::TimedOut {
                store: self.store,
                after_ms: timeout.as_millis(),
            }),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) if e.is_unavailable() => "unavailable",
            Err(_) => "error",
        };
        let store = self.store.name();
        self.metrics
            .store_calls
            .with_label_values(&[store, operation, outcome])
            .inc();
        self.metrics
            .store_duration
            .with_label_values(&[store, operation])
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            tracing::warn!(store, operation, %error, "store call failed");
        }
        result
    }
}

/// The outcome of one health check of each backend.
pub type Checks = [(StoreKind, Duration, Result<HealthDetail, StoreError>); 5];

/// A round of health checks and when it was taken.
type TakenChecks = (Instant, Arc<Checks>);

/// How long one round of health checks answers every caller of
/// [`Stores::recent_checks`].
const CHECKS_REUSED_FOR: Duration = Duration::from_secs(1);

/// One client per backend, cheap to clone.
#[derive(Clone)]
pub struct Stores {
    pub postgres: postgres::Postgres,
    pub redis: redis::Redis,
    pub clickhouse: clickhouse::ClickHouse,
    pub kubo: kubo::Kubo,
    pub cluster: cluster::Cluster,
    recent: Arc<tokio::sync::Mutex<Option<TakenChecks>>>,
}

impl Stores {
    /// Builds every client; none of them connects until first used.
    pub fn new(settings: &Settings, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        Ok(Self {
            postgres: postgres::Postgres::new(&settings.postgres, metrics.clone())?,
            redis: redis::Redis::new(&settings.redis, metrics.clone())?,
            clickhouse: clickhouse::ClickHouse::new(&settings.clickhouse, metrics.clone()),
            kubo: kubo::Kubo::new(&settings.kubo, metrics.clone())?,
            cluster: cluster::Cluster::new(&settings.cluster, metrics)?,
            recent: Arc::default(),
        })
    }

    /// [`Stores::check_all`], run at most once a second however many
    /// callers ask (an open endpoint must not let anyone multiply backend
    /// calls); callers arriving during a round wait for its outcome.
    pub async fn recent_checks(&self) -> Arc<Checks> {
        let mut recent = self.recent.lock().await;
        if let Some((at, checks)) = recent.as_ref() {
            if at.elapsed() < CHECKS_REUSED_FOR {
                return checks.clone();
            }
        }
        let checks = Arc::new(self.check_all().await);
        *recent = Some((Instant::now(), checks.clone()));
        checks
    }

    /// Asks every backend at once; each answers within its own timeout.
    pub async fn check_all(&self) -> Checks {
        async fn timed(
            check: impl Future<Output = Result<HealthDetail, StoreError>>,
        ) -> (Duration, Result<HealthDetail, StoreError>) {
            let started = Instant::now();
            let result = check.await;
            (started.elapsed(), result)
        }
        let (postgres, redis, clickhouse, kubo, cluster) = tokio::join!(
            timed(self.postgres.health()),
            timed(self.redis.health()),
            timed(self.clickhouse.health()),
            timed(self.kubo.health()),
            timed(self.cluster.health()),
        );
        let mut checks = [postgres, redis, clickhouse, kubo, cluster].into_iter();
        StoreKind::ALL.map(|kind| {
            let (took, result) = checks.next().expect("one check per store");
            (kind, took, result)
        })
    }

    /// Keeps `gateway_backend_up` current, checking every backend each
    /// `interval`, so a backend that no request touches is still watched.
    pub async fn probe_forever(self, metrics: Arc<Metrics>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            for (kind, _, result) in self.check_all().await {
                metrics
                    .backend_up
                    .with_label_values(&[kind.name()])
                    .set(i64::from(result.is_ok()));
            }
        }
    }
}

/// What a health check learned about a backend that answered.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct HealthDetail {
    /// The backend's own version, when it tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// For an IPFS Cluster or a Redis Cluster: the peers or nodes that answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<usize>,
}
