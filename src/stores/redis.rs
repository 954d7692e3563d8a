//! Redis: one multiplexed connection, made on first use and re-made by the
//! connection manager whenever it drops.

use std::sync::Arc;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use super::{CallGuard, HealthDetail, StoreError, StoreKind};
use crate::config::RedisSettings;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    connection: Arc<OnceCell<ConnectionManager>>,
    guard: CallGuard,
}

impl Redis {
    pub fn new(settings: &RedisSettings, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let client = redis::Client::open(settings.url.expose_secret())
            .map_err(|e| StoreError::failed(StoreKind::Redis, e))?;
        Ok(Self {
            client,
            connection: Arc::new(OnceCell::new()),
            guard: CallGuard::new(StoreKind::Redis, settings.timeout(), metrics),
        })
    }

    /// The shared connection. The gateway starts without Redis; the first
    /// call after Redis comes up makes the connection.
    pub(crate) async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let timeout = self.guard.timeout();
        self.connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .map_err(redis_error)
            })
            .await
            .cloned()
    }

    pub async fn health(&self) -> Result<HealthDetail, StoreError> {
        self.guard
            .run("health", async {
                let mut connection = self.connection().await?;
                let info: String = redis::cmd("INFO")
                    .arg("server")
                    .query_async(&mut connection)
                    .await
                    .map_err(redis_error)?;
                let version = info
                    .lines()
                    .find_map(|line| line.strip_prefix("redis_version:"))
                    .map(|v| v.trim().to_owned());
                Ok(HealthDetail {
                    version,
                    peers: None,
                })
            })
            .await
    }
}

pub(crate) fn redis_error(error: RedisError) -> StoreError {
    if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
    {
        StoreError::unavailable(StoreKind::Redis, error)
    } else {
        StoreError::failed(StoreKind::Redis, error)
    }
}
