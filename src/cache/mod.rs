//! The key/value cache: JSON values under tenant-namespaced keys, each with
//! an expiry.

use std::sync::Arc;

use redis::AsyncCommands;

use crate::auth::TenantId;
use crate::config::CacheSettings;
use crate::metrics::Metrics;
use crate::stores::redis::Redis;
use crate::stores::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no cached value under that key")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A value read back, with the seconds it has left.
#[derive(Debug, Clone)]
pub struct Cached {
    pub value: serde_json::Value,
    pub ttl_seconds: u64,
}

#[derive(Clone)]
pub struct Cache {
    redis: Redis,
    settings: Arc<CacheSettings>,
    metrics: Arc<Metrics>,
}

impl Cache {
    pub fn new(redis: Redis, settings: &CacheSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            redis,
            settings: Arc::new(settings.clone()),
            metrics,
        }
    }

    /// Stores `value` for `ttl_seconds` (the configured default when absent);
    /// answers the expiry used.
    pub async fn set(
        &self,
        tenant: &TenantId,
        key: &str,
        value: &serde_json::Value,
        ttl_seconds: Option<u64>,
    ) -> Result<u64, CacheError> {
        let redis_key = self.redis_key(tenant, key)?;
        let ttl = ttl_seconds.unwrap_or(self.settings.default_ttl_secs);
        if ttl == 0 || ttl > self.settings.max_ttl_secs {
            return Err(CacheError::Invalid(format!(
                "ttl_seconds must be 1 to {}",
                self.settings.max_ttl_secs
            )));
        }
        let encoded = value.to_string();
        if encoded.len() > self.settings.max_value_bytes {
            return Err(CacheError::TooLarge(format!(
                "the value is {} bytes of JSON; the limit is {} (cache.max_value_bytes)",
                encoded.len(),
                self.settings.max_value_bytes
            )));
        }
        self.redis
            .run("cache_set", |mut c| async move {
                c.set_ex::<_, _, ()>(redis_key, encoded, ttl).await
            })
            .await?;
        self.count("set", "stored");
        Ok(ttl)
    }

    pub async fn get(&self, tenant: &TenantId, key: &str) -> Result<Cached, CacheError> {
        let redis_key = self.redis_key(tenant, key)?;
        // One round trip for the value and its time left; both commands
        // name the same key, so a Redis Cluster sends them to one node.
        let (value, ttl_ms): (Option<String>, i64) = self
            .redis
            .run("cache_get", |mut c| async move {
                redis::pipe()
                    .get(&redis_key)
                    .pttl(&redis_key)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let Some(value) = value else {
            self.count("get", "miss");
            return Err(CacheError::NotFound);
        };
        self.count("get", "hit");
        let value = serde_json::from_str(&value).map_err(|e| {
            CacheError::Store(StoreError::failed(
                crate::stores::StoreKind::Redis,
                format!("cached value is not JSON: {e}"),
            ))
        })?;
        Ok(Cached {
            value,
            ttl_seconds: u64::try_from(ttl_ms).unwrap_or(0).div_ceil(1000),
        })
    }

    pub async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), CacheError> {
        let redis_key = self.redis_key(tenant, key)?;
        let deleted: u64 = self
            .redis
            .run(
                "cache_delete",
                |mut c| async move { c.del(redis_key).await },
            )
            .await?;
        if deleted == 0 {
            self.count("delete", "miss");
            return Err(CacheError::NotFound);
        }
        self.count("delete", "deleted");
        Ok(())
    }

    fn redis_key(&self, tenant: &TenantId, key: &str) -> Result<String, CacheError> {
        if key.is_empty() || key.len() > self.settings.max_key_bytes {
            return Err(CacheError::Invalid(format!(
                "key must be 1 to {} bytes (cache.max_key_bytes)",
                self.settings.max_key_bytes
            )));
        }
        // Tenant ids hold no ':', so no key of one tenant reads as another's.
        Ok(format!("sgw:c:{tenant}:{key}"))
    }

    fn count(&self, operation: &str, outcome: &str) {
        self.metrics
            .cache_operations
            .with_label_values(&[operation, outcome])
            .inc();
    }
}
