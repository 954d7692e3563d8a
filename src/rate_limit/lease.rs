//! Units of a limit already consumed in Redis and not yet spent, held by
//! this gateway for its own per-key limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::TenantId;

/// A reservation is this fraction of the smallest burst of the policy.
pub const SHARE: u64 = 64;
/// Units not spent within this time are dropped, so a reservation never
/// stands in for a check long after it was made.
const LIFETIME: Duration = Duration::from_secs(1);
/// Most keys holding a reservation at once; past it, all are dropped.
const CAPACITY: usize = 10_000;

struct Lease {
    units: u64,
    until: Instant,
}

#[derive(Default)]
pub struct Leases {
    held: Mutex<HashMap<String, Lease>>,
}

pub fn key(tenant: &TenantId, policy: &str, key: &str) -> String {
    format!("{tenant}\u{0}{policy}\u{0}{key}")
}

impl Leases {
    /// Spends one held unit, if there is one still valid.
    pub fn take_one(&self, key: &str) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get_mut(key) {
            Some(lease) if lease.units > 0 && lease.until > Instant::now() => {
                lease.units -= 1;
                true
            }
            Some(_) => {
                held.remove(key);
                false
            }
            None => false,
        }
    }

    /// Adds `units` to what the key holds. Requests that found the key's
    /// lease empty at the same moment each reserved units in Redis: those
    /// are all spent from the limit already, so replacing one reservation
    /// with the next would throw units away and deny the key below its
    /// limit.
    pub fn grant(&self, key: String, units: u64) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.len() >= CAPACITY && !held.contains_key(&key) {
            held.clear();
        }
        let now = Instant::now();
        let lease = held.entry(key).or_insert(Lease {
            units: 0,
            until: now,
        });
        if lease.until <= now {
            lease.units = 0;
        }
        lease.units = lease.units.saturating_add(units);
        lease.until = now + LIFETIME;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_what_was_granted_and_no_more() {
        let leases = Leases::default();
        assert!(!leases.take_one("k"));
        leases.grant("k".into(), 2);
        assert!(leases.take_one("k"));
        assert!(leases.take_one("k"));
        assert!(!leases.take_one("k"));
        assert!(!leases.take_one("other"));
    }

    #[test]
    fn reservations_made_at_once_add_up() {
        let leases = Leases::default();
        leases.grant("k".into(), 2);
        leases.grant("k".into(), 3);
        let spent = std::iter::from_fn(|| leases.take_one("k").then_some(())).count();
        assert_eq!(spent, 5);
    }
}
