//! Recently verified keys, so a busy caller does not cost a Postgres query
//! per request, and recently refused key ids, so a caller repeating a made-up
//! or revoked key does not either. An entry is trusted for a bounded time;
//! revoking through this gateway forgets it at once. The two are apart, so a
//! flood of invented ids never pushes out a real key.

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
    refused: Mutex<HashMap<String, Instant>>,
}

impl KeyCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// Whether key `id` was found unknown or revoked within the TTL.
    pub fn was_refused(&self, id: &str) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.get(id).is_some_and(|at| at.elapsed() < self.ttl)
    }

    pub fn remember_refused(&self, id: &str) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        make_room(&mut refused, id, self.capacity, |at| {
            at.elapsed() < self.ttl
        });
        refused.insert(id.to_owned(), Instant::now());
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
        make_room(&mut entries, id, self.capacity, |entry| {
            entry.verified_at.elapsed() < self.ttl
        });
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

/// Makes room in a full map for `id`: expired entries go first; if all are
/// fresh, one entry goes (whichever the map yields first), so the others
/// stay and the map never empties at once.
fn make_room<V>(
    map: &mut HashMap<String, V>,
    id: &str,
    capacity: usize,
    fresh: impl Fn(&V) -> bool,
) {
    if map.len() < capacity || map.contains_key(id) {
        return;
    }
    map.retain(|_, value| fresh(value));
    if map.len() >= capacity {
        if let Some(victim) = map.keys().next().cloned() {
            map.remove(&victim);
        }
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
        assert_eq!(cache.entries.lock().unwrap().len(), 2);
        assert!(cache.get("c").is_some());
        // One went to make room; the other stayed.
        assert_eq!(
            ["a", "b"]
                .iter()
                .filter(|id| cache.get(id).is_some())
                .count(),
            1
        );
    }

    #[test]
    fn refused_ids_are_remembered_apart_from_keys() {
        let cache = KeyCache::new(Duration::from_secs(60), 2);
        cache.insert("real", vec![1], principal("real"));
        for id in ["x1", "x2", "x3", "x4"] {
            cache.remember_refused(id);
        }
        assert!(cache.was_refused("x4"));
        assert!(!cache.was_refused("real"));
        assert!(
            cache.get("real").is_some(),
            "invented ids never push out a key"
        );
        assert!(cache.refused.lock().unwrap().len() <= 2);
    }

    #[test]
    fn a_zero_ttl_disables_it() {
        let cache = KeyCache::new(Duration::ZERO, 10);
        cache.insert("a", vec![], principal("a"));
        assert!(cache.get("a").is_none());
    }
}
