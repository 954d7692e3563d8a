//! The key/value cache: JSON values under tenant-namespaced keys, each with
//! an expiry, within a per-tenant budget of keys and bytes.
//!
//! A tenant's values and its ledger (each key's expiry and charged size,
//! and the total) share a Redis Cluster slot through the `{tenant}` hash
//! tag, so one script checks the budget and stores atomically. Without the
//! budget one tenant could fill Redis, and then every tenant's sessions and
//! rate limits would fail with it.

use std::sync::Arc;

use crate::auth::TenantId;
use crate::config::CacheSettings;
use crate::metrics::Metrics;
use crate::stores::redis::cache::{CacheEntry, CacheWrite};
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
    /// The tenant's budget of keys or bytes is spent.
    #[error("{0}")]
    OverBudget(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Bytes a value is charged beyond its own: its key, held three times
/// (value, ledger, sizes), and Redis's bookkeeping of three entries.
const ENTRY_OVERHEAD_BYTES: usize = 3 * 64;

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
        self.check_key(key)?;
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
        let entry = CacheEntry {
            key,
            value: &encoded,
            ttl_secs: ttl,
            charged_bytes: encoded.len() + key.len() * 3 + ENTRY_OVERHEAD_BYTES,
            max_keys: self.settings.max_keys_per_tenant,
            max_bytes: self.settings.max_bytes_per_tenant,
            ledger_ttl_ms: self.settings.max_ttl_secs.saturating_add(60) * 1000,
        };
        match self.redis.cache_set(tenant.as_str(), &entry).await? {
            CacheWrite::Stored => {
                self.count("set", "stored");
                Ok(ttl)
            }
            CacheWrite::OverKeys { held } => {
                self.count("set", "over_budget");
                Err(CacheError::OverBudget(format!(
                    "the tenant holds {held} cached keys, its budget \
                     (cache.max_keys_per_tenant); delete some or let them expire"
                )))
            }
            CacheWrite::OverBytes { held } => {
                self.count("set", "over_budget");
                Err(CacheError::OverBudget(format!(
                    "this value would take the tenant's cache past its budget of {} bytes \
                     ({held} held; cache.max_bytes_per_tenant)",
                    self.settings.max_bytes_per_tenant
                )))
            }
        }
    }

    pub async fn get(&self, tenant: &TenantId, key: &str) -> Result<Cached, CacheError> {
        self.check_key(key)?;
        let Some((value, ttl_ms)) = self.redis.cache_get(tenant.as_str(), key).await? else {
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
            ttl_seconds: ttl_ms.div_ceil(1000),
        })
    }

    pub async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), CacheError> {
        self.check_key(key)?;
        if !self.redis.cache_delete(tenant.as_str(), key).await? {
            self.count("delete", "miss");
            return Err(CacheError::NotFound);
        }
        self.count("delete", "deleted");
        Ok(())
    }

    fn check_key(&self, key: &str) -> Result<(), CacheError> {
        if key.is_empty() || key.len() > self.settings.max_key_bytes {
            return Err(CacheError::Invalid(format!(
                "key must be 1 to {} bytes (cache.max_key_bytes)",
                self.settings.max_key_bytes
            )));
        }
        Ok(())
    }

    fn count(&self, operation: &str, outcome: &str) {
        self.metrics
            .cache_operations
            .with_label_values(&[operation, outcome])
            .inc();
    }
}
