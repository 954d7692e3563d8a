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
use crate::stores::redis::Redis;
use crate::stores::redis_keys;
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

struct Scripts {
    set: redis::Script,
    delete: redis::Script,
}

/// The Redis keys of one cached value and of its tenant's ledger.
struct Keys {
    value: String,
    ledger: String,
    sizes: String,
    total: String,
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
    scripts: Arc<Scripts>,
}

impl Cache {
    pub fn new(redis: Redis, settings: &CacheSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            redis,
            settings: Arc::new(settings.clone()),
            metrics,
            scripts: Arc::new(Scripts {
                set: redis::Script::new(include_str!("scripts/set.lua")),
                delete: redis::Script::new(include_str!("scripts/delete.lua")),
            }),
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
        let keys = self.keys(tenant, key)?;
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
        let charged = encoded.len() + key.len() * 3 + ENTRY_OVERHEAD_BYTES;
        let mut call = self.scripts.set.prepare_invoke();
        call.key(&keys.value)
            .key(&keys.ledger)
            .key(&keys.sizes)
            .key(&keys.total)
            .arg(key)
            .arg(encoded)
            .arg(ttl)
            .arg(charged)
            .arg(self.settings.max_keys_per_tenant)
            .arg(self.settings.max_bytes_per_tenant)
            .arg(self.settings.max_ttl_secs.saturating_add(60) * 1000);
        let (outcome, held): (i64, u64) = self
            .redis
            .run("cache_set", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        match outcome {
            1 => {
                self.count("set", "stored");
                Ok(ttl)
            }
            -1 => {
                self.count("set", "over_budget");
                Err(CacheError::OverBudget(format!(
                    "the tenant holds {held} cached keys, its budget \
                     (cache.max_keys_per_tenant); delete some or let them expire"
                )))
            }
            _ => {
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
        let redis_key = self.keys(tenant, key)?.value;
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
        let keys = self.keys(tenant, key)?;
        let mut call = self.scripts.delete.prepare_invoke();
        call.key(&keys.value)
            .key(&keys.ledger)
            .key(&keys.sizes)
            .key(&keys.total)
            .arg(key);
        let deleted: u64 = self
            .redis
            .run("cache_delete", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        if deleted == 0 {
            self.count("delete", "miss");
            return Err(CacheError::NotFound);
        }
        self.count("delete", "deleted");
        Ok(())
    }

    fn keys(&self, tenant: &TenantId, key: &str) -> Result<Keys, CacheError> {
        if key.is_empty() || key.len() > self.settings.max_key_bytes {
            return Err(CacheError::Invalid(format!(
                "key must be 1 to {} bytes (cache.max_key_bytes)",
                self.settings.max_key_bytes
            )));
        }
        Ok(keys(tenant, key))
    }

    fn count(&self, operation: &str, outcome: &str) {
        self.metrics
            .cache_operations
            .with_label_values(&[operation, outcome])
            .inc();
    }
}

fn keys(tenant: &TenantId, key: &str) -> Keys {
    Keys {
        value: redis_keys::cache_value(tenant.as_str(), key),
        ledger: redis_keys::cache_ledger(tenant.as_str()),
        sizes: redis_keys::cache_sizes(tenant.as_str()),
        total: redis_keys::cache_total(tenant.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_keys_share_one_hash_tag() {
        let tenant = TenantId::parse("acme").unwrap();
        let keys = keys(&tenant, "a:{b}/c");
        assert_eq!(keys.value, "sgw:c:{acme}:a:{b}/c");
        for key in [&keys.value, &keys.ledger, &keys.sizes, &keys.total] {
            let tag = &key[key.find('{').unwrap() + 1..key.find('}').unwrap()];
            assert_eq!(tag, "acme", "{key}");
        }
    }
}
