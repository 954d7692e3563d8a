//! Rate limits' Redis operation: one GCRA step over several limits at
//! once, on Redis's clock, all or nothing.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{keys, Redis};
use crate::stores::{StoreError, StoreKind};

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/gcra.lua")));

/// One limit of a check: a unit every `emission_us`, and bursts up to
/// `tolerance_us` ahead.
pub struct GcraLimit<'a> {
    pub name: &'a str,
    pub emission_us: u64,
    pub tolerance_us: u64,
}

/// Where one limit stands after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraState {
    pub allowed: bool,
    pub remaining: u64,
    pub reset_us: u64,
    pub retry_us: u64,
}

impl Redis {
    /// Spends `cost` of every limit under `slot` (a hash tag naming the
    /// tenant, policy and key) when all of them allow it, or only looks
    /// when `consume` is false. Answers whether all allowed it and each
    /// limit's state, in the order given; bounded by `within` rather than
    /// the Redis timeout, since a caller may decide without Redis sooner.
    pub async fn gcra(
        &self,
        slot: &str,
        limits: &[GcraLimit<'_>],
        cost: u64,
        consume: bool,
        within: Duration,
    ) -> Result<(bool, Vec<GcraState>), StoreError> {
        let mut call = GCRA.prepare_invoke();
        for limit in limits {
            call.key(keys::rate_limit(slot, limit.name));
        }
        call.arg(cost).arg(u8::from(consume));
        for limit in limits {
            call.arg(limit.emission_us).arg(limit.tolerance_us);
        }
        let reply: Vec<i64> = self
            .run_within("rate_limit", within, |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        gcra_reply(&reply, limits.len())
    }
}

/// The script's answer: 1 when every limit allowed the cost, then four
/// values per limit.
fn gcra_reply(reply: &[i64], limits: usize) -> Result<(bool, Vec<GcraState>), StoreError> {
    let expected = 1 + 4 * limits;
    if reply.len() != expected {
        return Err(StoreError::failed(
            StoreKind::Redis,
            format!(
                "rate-limit script answered {} values, not {expected}",
                reply.len()
            ),
        ));
    }
    let non_negative = |v: i64| u64::try_from(v).unwrap_or(0);
    let states = reply[1..]
        .chunks_exact(4)
        .map(|values| GcraState {
            allowed: values[0] == 1,
            remaining: non_negative(values[1]),
            reset_us: non_negative(values[2]),
            retry_us: non_negative(values[3]),
        })
        .collect();
    Ok((reply[0] == 1, states))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_per_limit_and_must_have_their_length() {
        let (all, states) = gcra_reply(&[0, 1, 4, 10, 0, 0, 0, 20, 7], 2).unwrap();
        assert!(!all);
        assert_eq!(
            states[0],
            GcraState {
                allowed: true,
                remaining: 4,
                reset_us: 10,
                retry_us: 0
            }
        );
        assert!(!states[1].allowed);
        assert_eq!(states[1].retry_us, 7);
        assert!(gcra_reply(&[1, 1, 4, 10], 2).is_err());
        let (_, negative) = gcra_reply(&[1, 1, -3, -1, -1], 1).unwrap();
        assert_eq!(negative[0].remaining, 0);
    }
}
