//! The cache's Redis operations. A tenant's values and its ledger (each
//! key's expiry and charged size, and the total) share a Redis Cluster slot
//! through the `{tenant}` hash tag, so one script checks the budget and
//! stores atomically.

use std::sync::LazyLock;

use redis::Script;

use super::{keys, Redis};
use crate::stores::StoreError;

static SET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/cache/set.lua")));
static DELETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/cache/delete.lua")));

/// A value to store and the budget it must fit.
pub struct CacheEntry<'a> {
    pub key: &'a str,
    /// The value's JSON text.
    pub value: &'a str,
    pub ttl_secs: u64,
    /// Bytes the value is charged: its own and its keys' bookkeeping.
    pub charged_bytes: usize,
    pub max_keys: u64,
    pub max_bytes: u64,
    /// How long the ledger outlives its last write, in milliseconds.
    pub ledger_ttl_ms: u64,
}

/// What became of a value to store.
#[derive(Debug, PartialEq, Eq)]
pub enum CacheWrite {
    Stored,
    /// The tenant holds `held` keys, its budget.
    OverKeys {
        held: u64,
    },
    /// The tenant's values take `held` bytes; this one would pass the budget.
    OverBytes {
        held: u64,
    },
}

/// The Redis keys of one cached value and of its tenant's ledger.
struct CacheKeys {
    value: String,
    ledger: String,
    sizes: String,
    total: String,
}

fn cache_keys(tenant: &str, key: &str) -> CacheKeys {
    CacheKeys {
        value: keys::cache_value(tenant, key),
        ledger: keys::cache_ledger(tenant),
        sizes: keys::cache_sizes(tenant),
        total: keys::cache_total(tenant),
    }
}

impl Redis {
    pub async fn cache_set(
        &self,
        tenant: &str,
        entry: &CacheEntry<'_>,
    ) -> Result<CacheWrite, StoreError> {
        let keys = cache_keys(tenant, entry.key);
        let mut call = SET.prepare_invoke();
        call.key(&keys.value)
            .key(&keys.ledger)
            .key(&keys.sizes)
            .key(&keys.total)
            .arg(entry.key)
            .arg(entry.value)
            .arg(entry.ttl_secs)
            .arg(entry.charged_bytes)
            .arg(entry.max_keys)
            .arg(entry.max_bytes)
            .arg(entry.ledger_ttl_ms);
        let (outcome, held): (i64, u64) = self
            .run("cache_set", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(match outcome {
            1 => CacheWrite::Stored,
            -1 => CacheWrite::OverKeys { held },
            _ => CacheWrite::OverBytes { held },
        })
    }

    /// A value's JSON text and the milliseconds it has left.
    pub async fn cache_get(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<(String, u64)>, StoreError> {
        let value_key = keys::cache_value(tenant, key);
        // One round trip for the value and its time left; both commands
        // name the same key, so a Redis Cluster sends them to one node.
        let (value, ttl_ms): (Option<String>, i64) = self
            .run("cache_get", |mut c| async move {
                redis::pipe()
                    .get(&value_key)
                    .pttl(&value_key)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(value.map(|value| (value, u64::try_from(ttl_ms).unwrap_or(0))))
    }

    /// Removes a value and its ledger entries; false when there was none.
    pub async fn cache_delete(&self, tenant: &str, key: &str) -> Result<bool, StoreError> {
        let keys = cache_keys(tenant, key);
        let mut call = DELETE.prepare_invoke();
        call.key(&keys.value)
            .key(&keys.ledger)
            .key(&keys.sizes)
            .key(&keys.total)
            .arg(key);
        let deleted: u64 = self
            .run("cache_delete", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_keys_share_one_hash_tag() {
        let keys = cache_keys("acme", "a:{b}/c");
        assert_eq!(keys.value, "sgw:c:{acme}:a:{b}/c");
        for key in [&keys.value, &keys.ledger, &keys.sizes, &keys.total] {
            let tag = &key[key.find('{').unwrap() + 1..key.find('}').unwrap()];
            assert_eq!(tag, "acme", "{key}");
        }
    }
}
