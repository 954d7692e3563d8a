//! Recently verified keys, so a busy caller does not cost a Postgres query
//! per request. An entry is trusted for a bounded time; revoking through
//! this gateway forgets it at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Principal;

struct Entry {
    secret_hash: Vec<u8>,
    principal: Principal,
    verified_at: Instant,
}

pub struct KeyCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl KeyCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The principal of key `id` if it was verified within the TTL, with the
    /// hash it was verified against (compared by the caller).
    pub fn get(&self, id: &str) -> Option<(Vec<u8>, Principal)> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(id)
            .filter(|entry| entry.verified_at.elapsed() < self.ttl)
            .map(|entry| (entry.secret_hash.clone(), entry.principal.clone()))
    }

    pub fn insert(&self, id: &str, secret_hash: Vec<u8>, principal: Principal) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(id) {
            let ttl = self.ttl;
            entries.retain(|_, entry| entry.verified_at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                // Every entry is fresh: start over rather than track use.
                entries.clear();
            }
        }
        entries.insert(
            id.to_owned(),
            Entry {
                secret_hash,
                principal,
                verified_at: Instant::now(),
            },
        );
    }

    pub fn forget(&self, id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TenantId;

    fn principal(key_id: &str) -> Principal {
        Principal {
            tenant: TenantId::parse("t").unwrap(),
            key_id: key_id.into(),
            scopes: vec![],
        }
    }

    #[test]
    fn remembers_within_the_ttl_and_forgets_on_request() {
        let cache = KeyCache::new(Duration::from_secs(60), 10);
        cache.insert("a", vec![1], principal("a"));
        assert_eq!(cache.get("a").unwrap().0, vec![1]);
        cache.forget("a");
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn expired_entries_are_not_returned() {
        let cache = KeyCache::new(Duration::from_millis(1), 10);
        cache.insert("a", vec![1], principal("a"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn stays_within_capacity() {
        let cache = KeyCache::new(Duration::from_secs(60), 2);
        for id in ["a", "b", "c"] {
            cache.insert(id, vec![], principal(id));
        }
        assert!(cache.entries.lock().unwrap().len() <= 2);
        assert!(cache.get("c").is_some());
    }

    #[test]
    fn a_zero_ttl_disables_it() {
        let cache = KeyCache::new(Duration::ZERO, 10);
        cache.insert("a", vec![], principal("a"));
        assert!(cache.get("a").is_none());
    }
}
